// The paper's per-latent statistics (Section 4) and the orthogonality term's value.
override B: u32 = 64u;             // rows in the batch
override M: u32 = 64u;             // latents
override D: u32 = 64u;             // d_in (ortho_apply)
override GAMMA: f32 = 0.999;       // EMA decay γ (Eq. 1)
override TAU_BASE: f32 = 0.3;      // τ_base (Eq. 2)
override TAU_BETA: f32 = 1.0;      // β (Eq. 2), signed: +β "increase", −β "decrease" (as printed)
// What var(freq(f_i)) of Eq. 2 measures: 0 the batch firing rate's EW variance ("rate"), 1 the
// per-token firing indicator's ("token"; docs/method.md).
override TAU_VARIANCE: u32 = 0u;
override ADAPTIVE: bool = true;    // apply the thresholds
// Steps of the recon-only phase: thresholds are written for the next step, so they use its phase.
override RECON_ONLY_STEPS: u32 = 0u;
override LAMBDA_ORTHO: f32 = 0.1;  // λ_ortho (Eq. 4)
override ORTHO_EPS: f32 = 1e-6;    // ε (Eq. 5)
override ORTHO_IMPORTANCE: bool = true;
// The scale R of Σ_{i≠j} (docs/method.md): 0 sum (R = 1), 1 mean (1/(M(M−1))), 2 per latent
// (1/M), 3 recon (L_recon/M, the batch's reconstruction loss, held constant).
override ORTHO_REDUCTION: u32 = 1u;
override SQUARED: bool = false;    // the reconstruction loss is ‖r‖² (for ORTHO_REDUCTION 3)
override IMPORTANCE_LR: f32 = 0.5; // ρ
// The learning-rate factor's form (docs/method.md): 0 "max" (1 − ρ) + ρ s/s_max, 1 "mean"
// (1 − ρ) + ρ s/mean(s), 2 "inverse" 1 − ρ s/s_max.
override LR_FORM: u32 = 0u;
// Importance s (Eq. 3) is computed only where something uses it: the orthogonality weights or
// the learning-rate factors. Without it the dF GEMM masks dL/df itself and grad_mask is not run.
override IMPORTANCE: bool = true;
// grad_mask over a range of batch rows when [B, M] exceeds one binding (src/gpu/split.ts): dpre and
// f start at element A_OFF of their bindings; a part after the first adds its sum of squares to
// gnorm (ACCUM), and the last takes the square root (FINAL). ortho_apply over a range of W_dec's
// rows: its views start at element A_OFF, and its first row is row I0 of ortho_row.
override A_OFF: u32 = 0u;
override ACCUM: bool = false;
override FINAL: bool = true;
override I0: u32 = 0u;
override ACC_LOSS: u32 = 1u;       // metric accumulator slots (METRIC_INDEX in src/kernels/metrics.ts)
override ACC_ORTHO: u32 = 16u;

@group(0) @binding(0) var<storage, read_write> dpre: array<f32>;   // [B, M] dL_recon/df in, dL/dpre out
@group(0) @binding(1) var<storage, read> f: array<f32>;            // [B, M] latents
@group(0) @binding(2) var<storage, read_write> gnorm: array<f32>;  // [M] ‖dL_recon/df_i‖₂ over the batch
@group(0) @binding(3) var<storage, read> fstats: array<f32>;       // [M, 2] fires, Σf
@group(0) @binding(4) var<storage, read_write> freq: array<f32>;   // [M] EMA frequency (Eq. 1)
@group(0) @binding(5) var<storage, read_write> fvar: array<f32>;   // [M] EMA variance (Eq. 2's var)
@group(0) @binding(6) var<storage, read_write> tau: array<f32>;    // [M] thresholds for the next step
@group(0) @binding(7) var<storage, read_write> weight: array<f32>; // [M] s_i (or 1) for α_ij
@group(0) @binding(8) var<storage, read_write> lr_scale: array<f32>; // [M] learning-rate factors
@group(0) @binding(9) var<storage, read_write> pscal: array<f32>;  // [2] ortho scale S0, ε
@group(0) @binding(10) var<storage, read> st: State;
@group(0) @binding(11) var<storage, read_write> imp: array<f32>;   // [M] importance s_i (Eq. 3)
@group(0) @binding(12) var<storage, read> rowstats: array<f32>;    // [B, 3] ‖r‖, ‖r‖², ‖x − x̄‖²
@group(0) @binding(13) var<storage, read> w_dec: array<f32>;       // [M, D] W_dec (a view of rows)
@group(0) @binding(14) var<storage, read_write> g_dec: array<f32>; // [M, D] dL/dW_dec
@group(0) @binding(15) var<storage, read> g_ortho: array<f32>;     // [M, D] the penalty's gradient
@group(0) @binding(16) var<storage, read_write> ortho_row: array<f32>; // [M] w_i·(∂P/∂w_i)
@group(0) @binding(17) var<storage, read_write> acc: array<f32>;   // metric accumulators

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
// variance, thresholds, importance, α weights, lr factors, the orthogonality scale.
@compute @workgroup_size(RED_WG)
fn stats(@builtin(local_invocation_index) t: u32) {
  let phase = st.main_phase;
  let next_main = ADAPTIVE && st.step + 1u > RECON_ONLY_STEPS;
  var fmax = 0.0;
  for (var i = t; i < M; i += RED_WG) {
    // Eq. 1 applied once per step to the batch firing rate r; the variance is the incremental
    // exponentially weighted variance of r around the EMA, or (TAU_VARIANCE 1) of the B per-token
    // indicators, whose squared deviations from the old EMA average (r − freq)² + r(1 − r).
    let r = fstats[2u * i] / f32(B);
    let diff = r - freq[i];
    let dev = select(diff * diff, diff * diff + r * (1.0 - r), TAU_VARIANCE == 1u);
    let fr = freq[i] + (1.0 - GAMMA) * diff;
    let vr = GAMMA * (fvar[i] + (1.0 - GAMMA) * dev);
    freq[i] = fr;
    fvar[i] = vr;
    // Eq. 2, for the next step: thresholds apply only in the main phase and never go below 0.
    let th = max(TAU_BASE * (1.0 + TAU_BETA * vr), 0.0);
    tau[i] = select(0.0, th, next_main);
    fmax = max(fmax, fr);
  }
  fmax = wg_max(fmax, t);
  var smax = 0.0;
  var ssum = 0.0;
  if (IMPORTANCE) {
    for (var i = t; i < M; i += RED_WG) {
      // Eq. 3.
      let s = select(0.0, gnorm[i] * freq[i] / fmax, fmax > 0.0);
      imp[i] = s;
      smax = max(smax, s);
      ssum += s;
    }
  }
  smax = wg_max(smax, t);
  let smean = wg_sum(ssum, t) / f32(M);
  for (var i = t; i < M; i += RED_WG) {
    let sn = select(0.0, imp[i] / smax, smax > 0.0);
    var factor = (1.0 - IMPORTANCE_LR) + IMPORTANCE_LR * sn;
    if (LR_FORM == 1u) {
      factor = select(1.0, (1.0 - IMPORTANCE_LR) + IMPORTANCE_LR * imp[i] / smean, smean > 0.0);
    } else if (LR_FORM == 2u) {
      factor = 1.0 - IMPORTANCE_LR * sn;
    }
    lr_scale[i] = select(1.0, factor, phase > 0.0);
    weight[i] = select(1.0, imp[i], ORTHO_IMPORTANCE);
  }
  if (t == 0u) {
    // S0 = 4λR / max_{k,l} s_k s_l, with that maximum (s_max)² since every s ≥ 0 (Eq. 5); 4: d/dw_i
    // of Σ_{i≠j} α c² with α constant counts each unordered pair twice and differentiates c² to 2c.
    // R's denominator joins `norm` and its numerator (L_recon under "recon") is `r`.
    var norm = select(1.0, smax * smax, ORTHO_IMPORTANCE);
    var r = 1.0;
    if (ORTHO_REDUCTION == 1u) {
      norm = norm * f32(M) * max(f32(M) - 1.0, 1.0);
    } else if (ORTHO_REDUCTION == 2u) {
      norm = norm * f32(M);
    } else if (ORTHO_REDUCTION == 3u) {
      norm = norm * f32(M);
      var recon = 0.0;
      for (var b = 0u; b < B; b++) {
        recon += select(rowstats[3u * b], rowstats[3u * b + 1u], SQUARED);
      }
      r = recon / f32(B);
    }
    pscal[0] = select(0.0, 4.0 * LAMBDA_ORTHO * r * phase / norm, norm > 0.0);
    pscal[1] = ORTHO_EPS;
  }
}

// After the orthogonality GEMMs wrote its gradient g_ortho = ∂P/∂W_dec (src/kernels/paper.ts):
// dL/dW_dec += g_ortho, and ortho_row[i] = w_i·g_ortho_i. P is a homogeneous quartic in W_dec with α
// held constant, so Σ_i w_i·∂P/∂w_i = 4P (Euler): ortho_total reads the penalty off these dots.
// One workgroup per row of this part (the row index spread over x and y as in decoder.wgsl).
@compute @workgroup_size(WG)
fn ortho_apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let i = wid.x + wid.y * 65535u;
  if (i >= M) { return; }
  let o = A_OFF + i * D;
  var s = 0.0;
  for (var k = t; k < D; k += WG) {
    let g = g_ortho[o + k];
    g_dec[o + k] += g;
    s += w_dec[o + k] * g;
  }
  let dot = wg_sum(s, t);
  if (t == 0u) { ortho_row[I0 + i] = dot; }
}

// The same with one invocation per row and no workgroup memory (CPU adapters, as in decoder.wgsl).
@compute @workgroup_size(WG)
fn ortho_apply_lane(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = gid.x + gid.y * nw.x * WG;
  if (i >= M) { return; }
  let o = A_OFF + i * D;
  var s = 0.0;
  for (var k = 0u; k < D; k++) {
    let g = g_ortho[o + k];
    g_dec[o + k] += g;
    s += w_dec[o + k] * g;
  }
  ortho_row[I0 + i] = s;
}

// One workgroup of RED_WG invocations: P = ¼ Σ_i ortho_row[i] (the penalty λ R Σ_{i≠j} α_ij c_ij²
// of this step, 0 in the recon-only phase) into the logged loss and its own column.
@compute @workgroup_size(RED_WG)
fn ortho_total(@builtin(local_invocation_index) t: u32) {
  var s = 0.0;
  for (var i = t; i < M; i += RED_WG) { s += ortho_row[i]; }
  let p = 0.25 * wg_sum(s, t);
  if (t == 0u) {
    acc[ACC_LOSS] += p;
    acc[ACC_ORTHO] += p;
  }
}
