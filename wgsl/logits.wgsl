// Per-row operations on logits [rows, V] (f32, row-major): final soft-capping, log-softmax
// statistics, next-token cross-entropy and KL(p_clean ‖ p). Needs wgsl/common.wgsl prepended.
// A logits buffer larger than one storage binding is processed in row ranges (src/kernels/
// logits.ts): this dispatch's ROWS rows start at element L_OFF (LC_OFF for the clean logits) of
// their bindings and are rows R0.. of the per-row buffers, which are bound whole.
//   softcap:   l ← CAP·tanh(l / CAP)
//   row_stats: stats[r] = (m, lse) with m = max_v l_v, lse = m + log Σ_v exp(l_v − m)
//   cross_entropy: ce[r] = lse_r − l_r[target_r]  (0 where mask[r] = 0)
//   kl:        kl[r] = Σ_v p_clean,v · (log p_clean,v − log p_v), log p = l − lse  (0 where masked)
override ROWS: u32 = 1u;
override V: u32 = 1u;
override R0: u32 = 0u;
override L_OFF: u32 = 0u;
override LC_OFF: u32 = 0u;
override CAP: f32 = 30.0;
override MASKED: bool = false;

@group(0) @binding(0) var<storage, read> logits: array<f32>;           // [ROWS, V]
@group(0) @binding(1) var<storage, read> stats: array<f32>;            // [rows, 2] (m, lse)
@group(0) @binding(2) var<storage, read> targets: array<u32>;          // [rows] next-token ids
@group(0) @binding(3) var<storage, read> mask: array<u32>;             // [rows] 0: skip the row
@group(0) @binding(4) var<storage, read_write> result: array<f32>;     // [rows] CE or KL
@group(0) @binding(5) var<storage, read> clean: array<f32>;            // [ROWS, V] clean logits
@group(0) @binding(6) var<storage, read> clean_stats: array<f32>;      // [rows, 2]

@group(0) @binding(0) var<storage, read_write> logits_w: array<f32>;   // softcap
@group(0) @binding(1) var<storage, read_write> stats_w: array<f32>;    // row_stats

fn row_of(w: vec3<u32>) -> u32 {
  return w.x + w.y * 65535u;
}

fn kept(r: u32) -> bool {
  return !MASKED || mask[r] != 0u;
}

// One invocation per element.
@compute @workgroup_size(WG)
fn softcap(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= ROWS * V) { return; }
  let j = L_OFF + i;
  logits_w[j] = CAP * tanh(clamp(logits_w[j] / CAP, -15.0, 15.0));
}

// One workgroup per row; each invocation a strided share of the row (V / WG iterations: under
// lavapipe's 65535-iteration loop cap up to V ≈ 4M).
@compute @workgroup_size(WG)
fn row_stats(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_of(w);
  if (row >= ROWS) { return; }
  let o = L_OFF + row * V;
  var m = -3.4e38;
  for (var v = lid; v < V; v += WG) { m = max(m, logits[o + v]); }
  m = wg_max4(vec4<f32>(m), lid).x;
  var s = 0.0;
  for (var v = lid; v < V; v += WG) { s += exp(logits[o + v] - m); }
  s = wg_sum4(vec4<f32>(s), lid).x;
  if (lid == 0u) {
    stats_w[(R0 + row) * 2u] = m;
    stats_w[(R0 + row) * 2u + 1u] = m + log(s);
  }
}

// One invocation per row.
@compute @workgroup_size(WG)
fn cross_entropy(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let row = g.x + g.y * nw.x * WG;
  if (row >= ROWS) { return; }
  let r = R0 + row;
  var ce = 0.0;
  if (kept(r)) { ce = stats[r * 2u + 1u] - logits[L_OFF + row * V + min(targets[r], V - 1u)]; }
  result[r] = ce;
}

// w·(e^(−d) − 1 + d) ≥ 0 for weight w = p_clean,v, d = Δ_v, lp = log p_clean,v − d: its Taylor
// series to d⁸ where |d| < 0.5 (relative truncation error < 5e-8; e^(−d) − 1 + d would cancel
// there, losing up to ~2e-5), e^lp − w + w·d elsewhere (w·e^(−d) as one exp: w may underflow
// where e^(−d) overflows).
fn kl_term(w: f32, d: f32, lp: f32) -> f32 {
  if (abs(d) < 0.5) {
    let t = 1.0 / 120.0 - d * (1.0 / 720.0 - d * (1.0 / 5040.0 - d / 40320.0));
    return w * d * d * (0.5 - d * (1.0 / 6.0 - d * (1.0 / 24.0 - d * t)));
  }
  return exp(lp) - w + w * d;
}

// One workgroup per row. With Δ_v = (lc_v − l_v) − (lse_c − lse) (= log p_clean,v − log p_v up to
// the rounding of the two lse, a constant ε) and E the mean under p_clean:
//   KL = E[Δ] + log E[e^(−Δ)] (exact for any constant ε) = E[g] + (log1p(a) − a),
//   g = e^(−Δ) − 1 + Δ ≥ 0,  a = E[e^(−Δ)] − 1 = E[g] − E[Δ] ≈ −ε,
// so KL is a sum of non-negative terms plus a term of order ε², accurate to f32's relative
// precision even where it is tiny (Σ p_clean·(log p_clean − log p) term by term would carry the
// lse roundings, ~1e-6 nats absolute).
@compute @workgroup_size(WG)
fn kl(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_of(w);
  if (row >= ROWS) { return; }
  let r = R0 + row;
  if (!kept(r)) {
    if (lid == 0u) { result[r] = 0.0; }
    return;
  }
  let lse_c = clean_stats[r * 2u + 1u];
  let c = lse_c - stats[r * 2u + 1u];
  let o = L_OFF + row * V;
  let oc = LC_OFF + row * V;
  var s = vec4<f32>(0.0);  // (Σ w, Σ w·Δ, Σ w·g, 0)
  for (var v = lid; v < V; v += WG) {
    let lc = clean[oc + v];
    let lpc = lc - lse_c;
    let pc = exp(lpc);
    let d = (lc - logits[o + v]) - c;
    s += vec4<f32>(pc, pc * d, kl_term(pc, d, lpc - d), 0.0);
  }
  s = wg_sum4(s, lid);
  let e_g = s.z / s.x;
  let a = e_g - s.y / s.x;
  var h = log(1.0 + a) - a;
  if (abs(a) < 0.01) { h = a * a * (-0.5 + a * (1.0 / 3.0 - a * 0.25)); }
  if (lid == 0u) { result[r] = e_g + h; }
}
