// Unit-norm decoder constraint, one workgroup per decoder row (the paper's "decoder column"
// w_i = W_dec[i, :], stored [M, D] row-major as SAELens does).
override D: u32 = 64u;
override M: u32 = 64u;
// A part over a range of rows of a W_dec larger than one binding (src/gpu/split.ts): w and g
// start at element OFF of their bindings.
override OFF: u32 = 0u;

@group(0) @binding(0) var<storage, read_write> w: array<f32>; // W_dec [M, D]
@group(0) @binding(1) var<storage, read_write> g: array<f32>; // dL/dW_dec [M, D]

fn row_of(wid: vec3<u32>) -> u32 {
  return wid.x + wid.y * 65535u;
}

// g_i ← g_i − (g_i·w_i) w_i: removes the gradient component that would change ‖w_i‖ (w_i unit).
@compute @workgroup_size(WG)
fn project_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let i = row_of(wid);
  if (i >= M) { return; }
  let o = OFF + i * D;
  var s = 0.0;
  for (var k = t; k < D; k += WG) { s += g[o + k] * w[o + k]; }
  let dot = wg_sum(s, t);
  for (var k = t; k < D; k += WG) { g[o + k] -= dot * w[o + k]; }
}

// w_i ← w_i / ‖w_i‖ (rows of norm 0 are left as they are).
@compute @workgroup_size(WG)
fn normalize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let i = row_of(wid);
  if (i >= M) { return; }
  let o = OFF + i * D;
  var s = 0.0;
  for (var k = t; k < D; k += WG) { s += w[o + k] * w[o + k]; }
  let n = sqrt(wg_sum(s, t));
  if (n > 0.0) {
    for (var k = t; k < D; k += WG) { w[o + k] /= n; }
  }
}

// The same two constraints with one invocation per row and no workgroup memory: on CPU adapters a
// workgroup barrier is a context switch per SIMD group, which costs more than the row's arithmetic
// (src/kernels/decoder.ts picks these there).
fn lane_row(g: vec3<u32>, nw: vec3<u32>) -> u32 {
  return g.x + g.y * nw.x * WG;
}

@compute @workgroup_size(WG)
fn project_grad_lane(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = lane_row(gid, nw);
  if (i >= M) { return; }
  let o = OFF + i * D;
  var s = 0.0;
  for (var k = 0u; k < D; k++) { s += g[o + k] * w[o + k]; }
  for (var k = 0u; k < D; k++) { g[o + k] -= s * w[o + k]; }
}

@compute @workgroup_size(WG)
fn normalize_lane(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = lane_row(gid, nw);
  if (i >= M) { return; }
  let o = OFF + i * D;
  var s = 0.0;
  for (var k = 0u; k < D; k++) { s += w[o + k] * w[o + k]; }
  let n = sqrt(s);
  if (n > 0.0) {
    for (var k = 0u; k < D; k++) { w[o + k] /= n; }
  }
}

// project_grad_lane4 / normalize_lane4: the lane kernels a vec4 at a time (D and OFF multiples of
// 4): a quarter of the per-lane storage accesses, each row's sums in four interleaved partials.
@group(0) @binding(0) var<storage, read_write> w4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> g4: array<vec4<f32>>;

fn hsum(v: vec4<f32>) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

@compute @workgroup_size(WG)
fn project_grad_lane4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = lane_row(gid, nw);
  if (i >= M) { return; }
  let D4 = D / 4u;
  let o = OFF / 4u + i * D4;
  var s = vec4<f32>();
  for (var k = 0u; k < D4; k++) { s += g4[o + k] * w4[o + k]; }
  let dot = hsum(s);
  for (var k = 0u; k < D4; k++) { g4[o + k] -= dot * w4[o + k]; }
}

@compute @workgroup_size(WG)
fn normalize_lane4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = lane_row(gid, nw);
  if (i >= M) { return; }
  let D4 = D / 4u;
  let o = OFF / 4u + i * D4;
  var s = vec4<f32>();
  for (var k = 0u; k < D4; k++) { s += w4[o + k] * w4[o + k]; }
  let n = sqrt(hsum(s));
  if (n > 0.0) {
    for (var k = 0u; k < D4; k++) { w4[o + k] /= n; }
  }
}
