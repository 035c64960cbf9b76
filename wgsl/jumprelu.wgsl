// JumpReLU (Rajamanoharan et al. 2024, Gemma Scope) as SAELens trains it (sae_lens/saes/
// jumprelu_sae.py: `JumpReLU`, `Step`, `rectangle`, `JumpReLUTrainingSAE.calculate_aux_loss`;
// docs/architectures.md), built by src/kernels/jumprelu.ts. Needs wgsl/common.wgsl and one of the
// collectives files in front (src/kernels/collectives.ts).
//
//   threshold_act     f = ReLU(pre)·1[pre > θ]; per row the count of pre > θ (its L0). With
//                     θ = exp(log θ) > 0 this is SAELens' JumpReLU.forward, pre·1[pre > θ]; with
//                     a global θ it is BatchTopK at inference (exported as JumpReLU)
//   jumprelu_backward per latent i over the batch, dL/df in dpre (the dF GEMM without a mask):
//                     dpre = dL/df·1[pre > θ]  (JumpReLU.backward's x_grad; no STE for pre)
//                     dL/dlogθ_i = θ_i·Σ_b [ −(θ_i/ε)·rect((pre − θ_i)/ε)·dL/df    (JumpReLU.backward)
//                                          − (1/ε)·rect((pre − θ_i)/ε)·λ/B ]       (Step.backward)
//                     rect(z) = 1 for −1/2 < z < 1/2; λ/B the L0 loss's gradient per entry
//   l0_loss           L0 loss = λ·mean_b Σ_i 1[pre > θ] and the mean L0, from the row counts
//   theta_exp         out = exp(log θ): the thresholds the inference encoder applies

override R: u32 = 1u;        // rows of this dispatch (a part of the batch when split)
override M: u32 = 1u;        // latents (d_sae)
override ROW0: u32 = 0u;     // batch index of this dispatch's first row
override PRE_OFF: u32 = 0u;  // element offset of row ROW0 in the pre, f and dpre bindings
override F_OFF: u32 = 0u;
override DP_OFF: u32 = 0u;
override B_ROWS: u32 = 1u;   // rows of the whole batch
override THETA_MODE: u32 = 1u; // θ_i = theta[i] (0), exp(theta[i]) (1), theta[THETA_IDX] (2)
override THETA_IDX: u32 = 0u;
override BANDWIDTH: f32 = 0.05; // ε
override COEF_IDX: u32 = 0u; // λ (SAELens' l0_coefficient, warmed up by the caller) in coef[]
override OUT_IDX: u32 = 0u;  // l0_loss: out[OUT_IDX] = loss, out[OUT_IDX + 1] = mean L0
override ACCUM: bool = false; // jumprelu_backward: add to g_log_theta (a later part of the rows)

@group(0) @binding(0) var<storage, read> pre: array<f32>;             // [R, M]
@group(0) @binding(1) var<storage, read_write> f: array<f32>;         // [R, M]
@group(0) @binding(2) var<storage, read> theta: array<f32>;           // [M] (or a scalar slot)
@group(0) @binding(3) var<storage, read_write> l0_row: array<u32>;    // [B] entries above θ
@group(0) @binding(4) var<storage, read_write> dpre: array<f32>;      // [R, M] dL/df in, dL/dpre out
@group(0) @binding(5) var<storage, read_write> g_log_theta: array<f32>; // [M]
@group(0) @binding(6) var<storage, read> coef: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

fn thetaAt(i: u32) -> f32 {
  if (THETA_MODE == 1u) { return exp(theta[i]); }
  if (THETA_MODE == 2u) { return theta[THETA_IDX]; }
  return theta[i];
}

// One workgroup per row.
@compute @workgroup_size(WG)
fn threshold_act(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, l: Lanes) {
  let r = w.x + w.y * nw.x;
  if (r >= R) { return; }
  var c = 0u;
  for (var j = l.lid; j < M; j += WG) {
    let x = pre[PRE_OFF + r * M + j];
    let on = x > thetaAt(j);
    f[F_OFF + r * M + j] = select(0.0, max(x, 0.0), on);
    c += u32(on);
  }
  let n = wgc_scan(c, l).y;
  if (l.lid == 0u) { l0_row[ROW0 + r] = n; }
}

// One invocation per latent (THETA_MODE 1: the gradient is for log θ).
@compute @workgroup_size(WG)
fn jumprelu_backward(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= M) { return; }
  let th = thetaAt(i);
  var sg = 0.0; // Σ rect·dL/df
  var sn = 0.0; // Σ rect
  for (var b0 = 0u; b0 < R; b0 += CHUNK) {
    for (var b = b0; b < min(b0 + CHUNK, R); b++) {
      let x = pre[PRE_OFF + b * M + i];
      let d = dpre[DP_OFF + b * M + i];
      dpre[DP_OFF + b * M + i] = select(0.0, d, x > th);
      let z = (x - th) / BANDWIDTH;
      if (z > -0.5 && z < 0.5) {
        sg += d;
        sn += 1.0;
      }
    }
  }
  let dth = -(th / BANDWIDTH) * sg - (1.0 / BANDWIDTH) * (coef[COEF_IDX] / f32(B_ROWS)) * sn;
  let v = th * dth;
  g_log_theta[i] = select(v, g_log_theta[i] + v, ACCUM);
}

// One workgroup (R = B).
@compute @workgroup_size(WG)
fn l0_loss(l: Lanes) {
  var p = 0u;
  for (var r = l.lid; r < R; r += WG) { p += l0_row[r]; }
  let total = f32(wgc_scan(p, l).y);
  if (l.lid == 0u) {
    out[OUT_IDX] = coef[COEF_IDX] * total / f32(R);
    out[OUT_IDX + 1u] = total / f32(R);
  }
}

// One invocation per latent (M latents).
@compute @workgroup_size(WG)
fn theta_exp(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i < M) { out[i] = exp(theta[i]); }
}
