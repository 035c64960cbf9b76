// MLP activations and the residual add, element-wise on row-major f32 matrices. Needs
// wgsl/common.wgsl prepended.
//   glu:  out[r, i] = act(gate[r, i]) · up[r, i], act = SiLU (SwiGLU, Llama) or tanh-GELU
//         (GeGLU, Gemma's gelu_pytorch_tanh); gate and up may be parts of one fused row.
//   gelu: x ← gelu_new(x) in place (GPT-2's MLP).
//   add:  x ← x + y (the residual stream).
// tanh-GELU = gelu_new = gelu_pytorch_tanh: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (gelu_tanh
// in wgsl/common.wgsl: the GEMM's bias_gelu epilogue applies it too).
// SiLU(x) = x / (1 + exp(−x)).
override N: u32 = 1u;        // elements: rows · W
override W: u32 = 1u;        // glu: output width (hidden)
override GELU: bool = false; // glu: tanh-GELU instead of SiLU
override LDG: u32 = 1u;      // glu: row stride of gate, and column where its row part starts
override OFFG: u32 = 0u;
override LDU: u32 = 1u;      // glu: the same for up
override OFFU: u32 = 0u;

@group(0) @binding(0) var<storage, read> gate: array<f32>;       // [rows, LDG]
@group(0) @binding(1) var<storage, read> up: array<f32>;         // [rows, LDU]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // [rows, W]

@group(0) @binding(0) var<storage, read_write> x: array<f32>;    // gelu, add: [N]
@group(0) @binding(1) var<storage, read> y: array<f32>;          // add: [N]

// vec4 views for the *4 entry points (N, W and the layouts multiples of 4): a quarter of the
// loads, each of which is a gather over the SIMD lanes on CPU adapters.
@group(0) @binding(0) var<storage, read> gate4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> up4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(0) var<storage, read_write> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> y4: array<vec4<f32>>;

fn silu(v: f32) -> f32 {
  return v / (1.0 + exp(min(-v, 88.0)));
}

fn silu4(v: vec4<f32>) -> vec4<f32> {
  return v / (1.0 + exp(min(-v, vec4<f32>(88.0))));
}

fn gelu_tanh4(v: vec4<f32>) -> vec4<f32> {
  let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
  return 0.5 * v * (1.0 + tanh(clamp(u, vec4<f32>(-15.0), vec4<f32>(15.0))));
}

fn index(g: vec3<u32>, nw: vec3<u32>) -> u32 {
  return g.x + g.y * nw.x * WG;
}

@compute @workgroup_size(WG)
fn glu(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = index(g, nw);
  if (i >= N) { return; }
  let r = i / W;
  let c = i % W;
  let a = gate[r * LDG + OFFG + c];
  out[i] = select(silu(a), gelu_tanh(a), GELU) * up[r * LDU + OFFU + c];
}

@compute @workgroup_size(WG)
fn gelu(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = index(g, nw);
  if (i >= N) { return; }
  x[i] = gelu_tanh(x[i]);
}

@compute @workgroup_size(WG)
fn add(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = index(g, nw);
  if (i >= N) { return; }
  x[i] = x[i] + y[i];
}

@compute @workgroup_size(WG)
fn glu4(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = index(g, nw);
  if (i >= N / 4u) { return; }
  let w4 = W / 4u;
  let r = i / w4;
  let c = i % w4;
  let a = gate4[(r * LDG + OFFG) / 4u + c];
  out4[i] = select(silu4(a), gelu_tanh4(a), GELU) * up4[(r * LDU + OFFU) / 4u + c];
}

@compute @workgroup_size(WG)
fn gelu4(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = index(g, nw);
  if (i >= N / 4u) { return; }
  x4[i] = gelu_tanh4(x4[i]);
}

@compute @workgroup_size(WG)
fn add4(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = index(g, nw);
  if (i >= N / 4u) { return; }
  x4[i] = x4[i] + y4[i];
}
