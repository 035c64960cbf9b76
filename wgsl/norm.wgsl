// Row normalisations of the residual stream x [ROWS, D] into out [ROWS, D] (f32, row-major):
//   KIND 0, RMSNorm (Llama):        out = x / sqrt(mean(x²) + EPS) · w
//   KIND 1, Gemma's RMSNorm:        out = x / sqrt(mean(x²) + EPS) · (1 + w)
//   KIND 2, LayerNorm (GPT-2):      out = (x − mean(x)) / sqrt(var(x) + EPS) · w + b  (biased var)
// ACCUM adds the result to out instead (Gemma-2's post-attention and post-feedforward norms feed
// the residual stream: resid += norm(y)). Needs wgsl/common.wgsl prepended.
override ROWS: u32 = 1u;
override D: u32 = 1u;
override KIND: u32 = 0u;
override EPS: f32 = 1e-5;
override ACCUM: bool = false;

@group(0) @binding(0) var<storage, read> x: array<f32>;          // [ROWS, D]
@group(0) @binding(1) var<storage, read> w: array<f32>;          // [D] weight
@group(0) @binding(2) var<storage, read> b: array<f32>;          // [D] bias (LayerNorm)
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [ROWS, D]

fn gain(k: u32) -> f32 {
  return select(w[k], 1.0 + w[k], KIND == 1u);
}

fn shift(k: u32) -> f32 {
  return select(0.0, b[k], KIND == 2u);
}

fn put(i: u32, v: f32) {
  out[i] = select(v, out[i] + v, ACCUM);
}

// One workgroup per row.
@compute @workgroup_size(WG)
fn norm_row(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * 65535u;
  if (row >= ROWS) { return; }
  let o = row * D;
  var mean = 0.0;
  if (KIND == 2u) {
    var s = 0.0;
    for (var k = lid; k < D; k += WG) { s += x[o + k]; }
    mean = wg_sum4(vec4<f32>(s, 0.0, 0.0, 0.0), lid).x / f32(D);
  }
  var ss = 0.0;
  for (var k = lid; k < D; k += WG) {
    let c = x[o + k] - mean;
    ss += c * c;
  }
  let r = 1.0 / sqrt(wg_sum4(vec4<f32>(ss, 0.0, 0.0, 0.0), lid).x / f32(D) + EPS);
  for (var k = lid; k < D; k += WG) {
    put(o + k, (x[o + k] - mean) * r * gain(k) + shift(k));
  }
}

// The same with one invocation per row and no workgroup memory (CPU adapters, where a barrier is
// a context switch per SIMD group; src/kernels/norm.ts picks it there).
@compute @workgroup_size(WG)
fn norm_lane(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let row = g.x + g.y * nw.x * WG;
  if (row >= ROWS) { return; }
  let o = row * D;
  var mean = 0.0;
  if (KIND == 2u) {
    var s = 0.0;
    for (var k = 0u; k < D; k++) { s += x[o + k]; }
    mean = s / f32(D);
  }
  var ss = 0.0;
  for (var k = 0u; k < D; k++) {
    let c = x[o + k] - mean;
    ss += c * c;
  }
  let r = 1.0 / sqrt(ss / f32(D) + EPS);
  for (var k = 0u; k < D; k++) {
    put(o + k, (x[o + k] - mean) * r * gain(k) + shift(k));
  }
}

// norm_lane a vec4 at a time (D % 4 == 0): a quarter of the per-invocation loads.
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn norm_lane4(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let row = g.x + g.y * nw.x * WG;
  if (row >= ROWS) { return; }
  let d4 = D / 4u;
  let o = row * d4;
  var mean = 0.0;
  if (KIND == 2u) {
    var s = vec4<f32>(0.0);
    for (var k = 0u; k < d4; k++) { s += x4[o + k]; }
    mean = ((s.x + s.y) + (s.z + s.w)) / f32(D);
  }
  var ss = vec4<f32>(0.0);
  for (var k = 0u; k < d4; k++) {
    let c = x4[o + k] - mean;
    ss += c * c;
  }
  let r = 1.0 / sqrt(((ss.x + ss.y) + (ss.z + ss.w)) / f32(D) + EPS);
  for (var k = 0u; k < d4; k++) {
    let gain = select(w4[k], 1.0 + w4[k], KIND == 1u);
    let y = (x4[o + k] - mean) * r * gain + select(vec4<f32>(0.0), b4[k], KIND == 2u);
    out4[o + k] = select(y, out4[o + k] + y, ACCUM);
  }
}
