// Shared by every kernel family: prepended to a family's source by withCommon()
// (src/kernels/common.ts), so these names are never redefined in a family's file.

// Default workgroup size of the element-wise and row kernels. The one source of truth: TypeScript
// reads it from this line (WG in src/kernels/common.ts) to size its dispatches.
const WG: u32 = 64u;

// Most iterations of one loop: lavapipe caps a loop at 65535, so loops over rows (which a large
// batch or d_sae can exceed) run as an outer loop over chunks of CHUNK.
const CHUNK: u32 = 8192u;

// The step state: one small storage buffer that GPU kernels update and read, so the host does no
// arithmetic inside the step. Mirrored by STATE_INDEX in src/kernels/common.ts (tested).
struct State {
  step: u32,     // optimizer steps taken, this one included (t, from 1)
  lr: f32,       // learning rate of this step (linear warmup)
  b1t: f32,      // beta1^t, for Adam's bias correction
  b2t: f32,      // beta2^t
  l1_coef: f32,  // λ1 / B: added to dL/df of every active latent (0 in a recon-only phase)
  main_phase: f32, // 1 once the recon-only phase is over (paper §4.4 phase 2), else 0
  _pad1: u32,
  _pad2: u32,
}

// Workgroup size of an entry point that calls the reductions below: WG, unless the entry point is
// one wide workgroup looping over many items and its TypeScript sets this to its own size.
override RED_WG: u32 = WG;

// The workgroup reductions wg_sum4, wg_max4 and wg_sum_u32 (contracts below), by workgroup memory
// here. On devices with the "subgroups" feature src/kernels/common.ts puts wgsl/common_sg.wgsl's
// versions (the same names and contracts, subgroup operations) in place of the lines from here
// to the END marker.
// BEGIN workgroup-memory reductions
// Scratch of the workgroup reductions below (module scope: WGSL has no function-local workgroup
// memory; an entry point that never calls them does not allocate it).
var<workgroup> wg_red: array<vec4<f32>, RED_WG>;
var<workgroup> wg_red_u32: array<u32, RED_WG>;

// Sum of `v` over the RED_WG invocations of a workgroup by a tree reduction; every invocation gets
// the total. Call from uniform control flow with `lid` = local_invocation_index.
fn wg_sum4(v: vec4<f32>, lid: u32) -> vec4<f32> {
  wg_red[lid] = v;
  workgroupBarrier();
  for (var h = RED_WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { wg_red[lid] += wg_red[lid + h]; }
    workgroupBarrier();
  }
  let total = wg_red[0];
  workgroupBarrier();
  return total;
}

// Maximum of `v` over the workgroup (same contract as wg_sum4).
fn wg_max4(v: vec4<f32>, lid: u32) -> vec4<f32> {
  wg_red[lid] = v;
  workgroupBarrier();
  for (var h = RED_WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { wg_red[lid] = max(wg_red[lid], wg_red[lid + h]); }
    workgroupBarrier();
  }
  let total = wg_red[0];
  workgroupBarrier();
  return total;
}

// Sum of counts, exact (a float sum loses counts past 2^24).
fn wg_sum_u32(v: u32, lid: u32) -> u32 {
  wg_red_u32[lid] = v;
  workgroupBarrier();
  for (var h = RED_WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { wg_red_u32[lid] += wg_red_u32[lid + h]; }
    workgroupBarrier();
  }
  let total = wg_red_u32[0];
  workgroupBarrier();
  return total;
}
// END workgroup-memory reductions

// One float: the first lane of wg_sum4 (the same additions in the same order).
fn wg_sum(v: f32, lid: u32) -> f32 {
  return wg_sum4(vec4<f32>(v, 0.0, 0.0, 0.0), lid).x;
}

// One float: the first lane of wg_max4.
fn wg_max(v: f32, lid: u32) -> f32 {
  return wg_max4(vec4<f32>(v, 0.0, 0.0, 0.0), lid).x;
}

// tanh-GELU = gelu_new = gelu_pytorch_tanh: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), the
// argument of tanh clamped to ±15 (where tanh is ±1 in f32) so that no backend overflows in it.
// GPT-2's MLP (wgsl/act.wgsl, and the GEMM's bias_gelu epilogue) and Gemma's GeGLU.
fn gelu_tanh(v: f32) -> f32 {
  let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
  return 0.5 * v * (1.0 + tanh(clamp(u, -15.0, 15.0)));
}

// A counter-based generator shared by the families that draw random numbers on the GPU (sample,
// mixing): Philox4x32-10, whose TypeScript twin is philox4x32 in src/kernels/sample.ts.
// (hi, lo) 32-bit halves of the 64-bit product a·b.
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let mid = ((a0 * b0) >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  return vec2<u32>(a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u), a * b);
}

// Philox4x32-10 (Salmon et al. 2011; Random123's constants).
fn philox(counter: vec4<u32>, key0: vec2<u32>) -> vec4<u32> {
  var x = counter;
  var key = key0;
  for (var i = 0u; i < 10u; i++) {
    let p0 = mul_wide(0xD2511F53u, x.x);
    let p1 = mul_wide(0xCD9E8D57u, x.z);
    x = vec4<u32>(p1.x ^ x.y ^ key.x, p1.y, p0.x ^ x.w ^ key.y, p0.y);
    key += vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
  }
  return x;
}
