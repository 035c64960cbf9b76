// Input preparation and the reconstruction loss with its gradient. Row-major [B, D] tensors.
override D: u32 = 64u;          // d_in
override B: u32 = 64u;          // rows in the batch
override SCALE: f32 = 1.0;      // input normalisation factor (1 = none)
override APPLY_B_DEC: bool = true;
override SQUARED: bool = false; // false: L = mean_b ‖r_b‖₂ (paper Eq. 4); true: mean_b ‖r_b‖₂²

@group(0) @binding(0) var<storage, read_write> x: array<f32>;     // [B, D] in: raw, out: scaled
@group(0) @binding(1) var<storage, read_write> xc: array<f32>;    // [B, D] encoder input
@group(0) @binding(2) var<storage, read> b_dec: array<f32>;       // [D]
@group(0) @binding(3) var<storage, read> xhat: array<f32>;        // [B, D]
@group(0) @binding(4) var<storage, read_write> dxhat: array<f32>; // [B, D] dL/dx̂
@group(0) @binding(5) var<storage, read> xmean: array<f32>;       // [D] batch mean of x
@group(0) @binding(6) var<storage, read_write> rowstats: array<f32>; // [B, 3]: ‖r‖, ‖r‖², ‖x−x̄‖²

// x ← SCALE·x;  xc ← x − b_dec (or x). One invocation per element.
@compute @workgroup_size(WG)
fn prepare(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= B * D) { return; }
  let v = x[i] * SCALE;
  x[i] = v;
  xc[i] = select(v, v - b_dec[i % D], APPLY_B_DEC);
}

// One workgroup per row b: r = x̂ − x, dL/dx̂ and the row's statistics.
@compute @workgroup_size(WG)
fn residual(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let row = w.x + w.y * 65535u;
  if (row >= B) { return; }
  let o = row * D;
  var s = vec4<f32>(0.0);
  for (var k = t; k < D; k += WG) {
    let r = xhat[o + k] - x[o + k];
    let c = x[o + k] - xmean[k];
    s += vec4<f32>(r * r, c * c, 0.0, 0.0);
  }
  let sums = wg_sum4(s, t); // ‖r‖², ‖x − x̄‖²
  let ss = sums.x;
  let norm = sqrt(ss);
  // d‖r‖/dr = r/‖r‖; at r = 0 the subgradient 0 is used.
  var coef = 2.0 / f32(B);
  if (!SQUARED) { coef = select(0.0, 1.0 / (f32(B) * norm), norm > 0.0); }
  for (var k = t; k < D; k += WG) {
    dxhat[o + k] = coef * (xhat[o + k] - x[o + k]);
  }
  if (t == 0u) {
    rowstats[row * 3u] = norm;
    rowstats[row * 3u + 1u] = ss;
    rowstats[row * 3u + 2u] = sums.y;
  }
}

// The same with one invocation per row and no workgroup memory (CPU adapters: a barrier there is a
// context switch per SIMD group; src/kernels/loss.ts picks this entry point there).
@compute @workgroup_size(WG)
fn residual_lane(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let row = g.x + g.y * nw.x * WG;
  if (row >= B) { return; }
  let o = row * D;
  var ss = 0.0;
  var cc = 0.0;
  for (var k = 0u; k < D; k++) {
    let r = xhat[o + k] - x[o + k];
    let c = x[o + k] - xmean[k];
    ss += r * r;
    cc += c * c;
  }
  let norm = sqrt(ss);
  var coef = 2.0 / f32(B);
  if (!SQUARED) { coef = select(0.0, 1.0 / (f32(B) * norm), norm > 0.0); }
  for (var k = 0u; k < D; k++) {
    dxhat[o + k] = coef * (xhat[o + k] - x[o + k]);
  }
  rowstats[row * 3u] = norm;
  rowstats[row * 3u + 1u] = ss;
  rowstats[row * 3u + 2u] = cc;
}

// residual_lane4: residual_lane a vec4 at a time (D % 4 == 0): a quarter of the per-lane storage
// accesses; each row's sums in four interleaved partials.
@group(0) @binding(0) var<storage, read_write> x4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> xhat4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dxhat4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> xmean4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn residual_lane4(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let row = g.x + g.y * nw.x * WG;
  if (row >= B) { return; }
  let D4 = D / 4u;
  let o = row * D4;
  var ss4 = vec4<f32>();
  var cc4 = vec4<f32>();
  for (var k = 0u; k < D4; k++) {
    let r = xhat4[o + k] - x4[o + k];
    let c = x4[o + k] - xmean4[k];
    ss4 += r * r;
    cc4 += c * c;
  }
  let ss = (ss4.x + ss4.y) + (ss4.z + ss4.w);
  let norm = sqrt(ss);
  var coef = 2.0 / f32(B);
  if (!SQUARED) { coef = select(0.0, 1.0 / (f32(B) * norm), norm > 0.0); }
  for (var k = 0u; k < D4; k++) {
    dxhat4[o + k] = coef * (xhat4[o + k] - x4[o + k]);
  }
  rowstats[row * 3u] = norm;
  rowstats[row * 3u + 1u] = ss;
  rowstats[row * 3u + 2u] = (cc4.x + cc4.y) + (cc4.z + cc4.w);
}
