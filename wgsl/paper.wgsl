// The paper's per-latent statistics (Section 4).
override B: u32 = 64u;             // rows in the batch
override M: u32 = 64u;             // latents
override GAMMA: f32 = 0.999;       // EMA decay γ (Eq. 1)
override TAU_BASE: f32 = 0.3;      // τ_base (Eq. 2)
override TAU_BETA: f32 = 1.0;      // β (Eq. 2), signed: +β "increase", −β "decrease" (as printed)
override ADAPTIVE: bool = true;    // apply the thresholds
override LAMBDA_ORTHO: f32 = 0.1;  // λ_ortho (Eq. 4)
override ORTHO_EPS: f32 = 1e-6;    // ε (Eq. 5)
override ORTHO_IMPORTANCE: bool = true;
override ORTHO_MEAN: bool = true;  // average over the M(M−1) ordered pairs instead of summing
override IMPORTANCE_LR: f32 = 0.5; // ρ
// grad_mask over a range of batch rows when [B, M] exceeds one binding (src/gpu/split.ts): dpre and
// f start at element A_OFF of their bindings; a part after the first adds its sum of squares to
// gnorm (ACCUM), and the last takes the square root (FINAL).
override A_OFF: u32 = 0u;
override ACCUM: bool = false;
override FINAL: bool = true;

@group(0) @binding(0) var<storage, read_write> dpre: array<f32>;   // [B, M] dL_recon/df in, dL/dpre out
@group(0) @binding(1) var<storage, read> f: array<f32>;            // [B, M] latents
@group(0) @binding(2) var<storage, read_write> gnorm: array<f32>;  // [M] ‖dL_recon/df_i‖₂ over the batch
@group(0) @binding(3) var<storage, read> fstats: array<f32>;       // [M, 2] fires, Σf
@group(0) @binding(4) var<storage, read_write> freq: array<f32>;   // [M] EMA frequency (Eq. 1)
@group(0) @binding(5) var<storage, read_write> fvar: array<f32>;   // [M] EMA variance of the batch rate
@group(0) @binding(6) var<storage, read_write> tau: array<f32>;    // [M] thresholds for the next step
@group(0) @binding(7) var<storage, read_write> weight: array<f32>; // [M] s_i (or 1) for α_ij
@group(0) @binding(8) var<storage, read_write> lr_scale: array<f32>; // [M] learning-rate factors
@group(0) @binding(9) var<storage, read_write> pscal: array<f32>;  // [4] ortho scale, ε, max freq, max s
@group(0) @binding(10) var<storage, read> st: State;
@group(0) @binding(11) var<storage, read_write> imp: array<f32>;   // [M] importance s_i (Eq. 3)

// One invocation per latent i: gnorm[i] = ‖dL_recon/df_i‖₂ over the batch (the raw gradient, before
// the L1 term and the mask), then dpre = (dL_recon/df + λ1/B)·1[f > 0].
@compute @workgroup_size(WG)
fn grad_mask(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= M) { return; }
  var ss = 0.0;
  for (var r0 = 0u; r0 < B; r0 += CHUNK) {
    let r1 = min(r0 + CHUNK, B);
    for (var r = r0; r < r1; r++) {
      let idx = A_OFF + r * M + i;
      let d = dpre[idx];
      ss += d * d;
      dpre[idx] = select(0.0, d + st.l1_coef, f[idx] > 0.0);
    }
  }
  if (ACCUM) { ss += gnorm[i]; }
  gnorm[i] = select(ss, sqrt(ss), FINAL);
}

// One workgroup of RED_WG invocations (src/kernels/paper.ts: STATS_WG): EMA frequency and
// variance, thresholds, importance, α weights, lr factors.
@compute @workgroup_size(RED_WG)
fn stats(@builtin(local_invocation_index) t: u32) {
  let phase = st.main_phase;
  var fmax = 0.0;
  for (var i = t; i < M; i += RED_WG) {
    // Eq. 1 applied once per step to the batch firing rate r; the variance is the incremental
    // exponentially weighted variance of r around the EMA (docs/method.md).
    let r = fstats[2u * i] / f32(B);
    let diff = r - freq[i];
    let fr = freq[i] + (1.0 - GAMMA) * diff;
    let vr = GAMMA * (fvar[i] + (1.0 - GAMMA) * diff * diff);
    freq[i] = fr;
    fvar[i] = vr;
    // Eq. 2; thresholds apply only in the main phase and never go below 0.
    let th = max(TAU_BASE * (1.0 + TAU_BETA * vr), 0.0);
    tau[i] = select(0.0, th, ADAPTIVE && phase > 0.0);
    fmax = max(fmax, fr);
  }
  fmax = wg_max(fmax, t);
  var smax = 0.0;
  for (var i = t; i < M; i += RED_WG) {
    // Eq. 3.
    let s = select(0.0, gnorm[i] * freq[i] / fmax, fmax > 0.0);
    imp[i] = s;
    smax = max(smax, s);
  }
  smax = wg_max(smax, t);
  for (var i = t; i < M; i += RED_WG) {
    let sn = select(0.0, imp[i] / smax, smax > 0.0);
    lr_scale[i] = select(1.0, (1.0 - IMPORTANCE_LR) + IMPORTANCE_LR * sn, phase > 0.0);
    weight[i] = select(1.0, imp[i], ORTHO_IMPORTANCE);
  }
  if (t == 0u) {
    // max_{k,l} s_k s_l = (max s)² since every s ≥ 0 (Eq. 5); 4λ: d/dw_i of Σ_{i≠j} α c² with α
    // constant counts each unordered pair twice and differentiates c² to 2c.
    var norm = select(1.0, smax * smax, ORTHO_IMPORTANCE);
    if (ORTHO_MEAN) { norm = norm * f32(M) * max(f32(M) - 1.0, 1.0); }
    pscal[0] = select(0.0, 4.0 * LAMBDA_ORTHO * phase / norm, norm > 0.0);
    pscal[1] = ORTHO_EPS;
    pscal[2] = fmax;
    pscal[3] = smax;
  }
}
