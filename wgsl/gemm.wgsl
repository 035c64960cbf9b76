// The GEMM family, shared part: C[M,N] = epilogue(op(A)[M,K] · op(B)[K,N]). Every GEMM source is
// this file (after wgsl/common.wgsl) plus one path's file; src/kernels/gemm/ picks the path
// (choose.ts) and sets the override constants:
//   gemm_tiled.wgsl    `main_tiled`: block tiles in workgroup memory, register tiles, double-buffered
//                      K steps; any M, N, K; f32 or f16 storage (GPUs).
//   gemm_scalar.wgsl   `main`: a workgroup-memory tiled fallback for any M, N, K (CPU adapters).
//   gemm_vec4.wgsl     `main_v4`: register blocks, vec4 loads, no workgroup memory (CPU adapters'
//                      small GEMMs; vec4 sizes).
//   gemm_pack.wgsl     `pack`, `pack_k`: operands packed into textures for the two paths below.
//   gemm_texture.wgsl  `main_tex`: packed operands, a loop over K (CPU adapters' smaller GEMMs, f16).
//   gemm_bcast.wgsl    `main_bc`: packed operands, shared rows read as broadcasts, K unrolled in
//                      chunks (CPU adapters' large GEMMs).
// Layouts (override constants, resolved when the pipeline is created):
//   TRANS_A = false: A stored [M,K] row-major;  true: A stored [K,M] row-major.
//   TRANS_B = false: B stored [K,N] row-major;  true: B stored [N,K] row-major.
// Epilogues (EPILOGUE; EPILOGUE_CODE in src/kernels/gemm/spec.ts):
//   0: C = acc
//   1: C = acc + E[n]                        (bias)
//   2: C = max(acc + E[n], 0)                (bias + ReLU: the encoder)
//   3: C = (acc + S[SCALAR_IDX]) * (E[m,N+n] > 0)   (dL/dpre from dL/df: + λ1/B, ReLU mask)
//   4: C = v * (v > S[n]), v = acc + E[n]            (encoder with per-latent thresholds S)
//   5: C = S[0]·E[row0+m]·E[n]·acc/(|acc| + S[1]), 0 where row0+m == n (orthogonality coefficients)
//   6: C += acc                                      (accumulate)
//   7: C = gelu_new(acc + E[n])                      (bias + tanh-GELU: GPT-2's MLP in)
//   8: C += acc + E[n]                               (bias, added to C: a residual branch)

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override EPILOGUE: u32 = 0u;
override SCALAR_IDX: u32 = 0u;

// Encoded by field name in src/kernels/gemm/params.ts (tests/kernels/gemm_test.ts reads every
// field back through a kernel).
struct Params {
  M: u32,
  N: u32,
  K: u32,
  row0: u32, // global row index of this GEMM's row 0 (epilogue 5)
  // Leading dimensions of the stored matrices and where each starts in its binding (elements):
  // a part of a larger GEMM binds views of its operands (src/gpu/split.ts).
  lda: u32,
  ldb: u32,
  ldc: u32,
  offA: u32,
  offB: u32,
  offC: u32,
  eoff: u32, // global column of this GEMM's column 0, for per-column vectors E[n], S[n]
  kc: u32, // main_bc: this dispatch's chunk of K (CH stages of KC4 texels each)
  mode: u32, // main_bc: bit 0 adds C's value (chunks after the first), bit 1 applies EPILOGUE
  // Texture paths: the texel where packed A and B start in At and Bt (operands packed once for
  // several GEMMs, e.g. row blocks of W_dec); pack_k: where its packed copy starts (offAt).
  offAt: u32,
  offBt: u32,
  pad: u32,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<storage, read> E: array<f32>;  // epilogue operand: bias [N] or mask [M,N]
@group(0) @binding(4) var<storage, read> S: array<f32>;  // step scalars (see src/sae/state.ts)
@group(0) @binding(5) var<uniform> p: Params;
// A and B read as vec4 arrays (vec4 path, packing kernels): offsets and leading dimensions are
// multiples of 4 there.
@group(0) @binding(0) var<storage, read> A4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B4: array<vec4<f32>>;

// The epilogue of every path: C[m, n] from the accumulated dot product.
fn epilogue(m: u32, n: u32, acc: f32) {
  var v = acc;
  let idx = p.offC + m * p.ldc + n;
  let ng = p.eoff + n;
  if (EPILOGUE == 1u) {
    v = v + E[ng];
  } else if (EPILOGUE == 2u) {
    v = max(v + E[ng], 0.0);
  } else if (EPILOGUE == 3u) {
    v = select(0.0, v + S[SCALAR_IDX], E[idx] > 0.0);
  } else if (EPILOGUE == 4u) {
    // Adaptive masking (paper §4.1): keep the latent only above its threshold τ_n = S[n] ≥ 0.
    v = v + E[ng];
    v = select(0.0, v, v > max(S[ng], 0.0));
  } else if (EPILOGUE == 5u) {
    // Orthogonality coefficients (paper Eqs. 4-5, α constant): for the Gram entry c = w_i·w_j,
    // i = row0 + m, j = eoff + n: S[0]·E[i]·E[j]·c/(|c| + S[1]), 0 on the diagonal.
    let i = p.row0 + m;
    v = select(S[0] * E[i] * E[ng] * v / (abs(v) + S[1]), 0.0, i == ng);
  } else if (EPILOGUE == 6u) {
    v = C[idx] + v;
  } else if (EPILOGUE == 7u) {
    v = gelu_tanh(v + E[ng]);
  } else if (EPILOGUE == 8u) {
    v = C[idx] + (v + E[ng]);
  }
  C[idx] = v;
}

// 4x4 blocks of the vec4 and texture paths. A fragment is a mat4x4 whose column i is row i of the
// block of op(A) (4 values along K), or row kk (along K) of the block of op(B).

// acc[i] += Σ_kk a[i][kk] · b[kk]  (row i of the 4x4 output block), as explicit FMAs.
fn mac(acc: mat4x4<f32>, a: mat4x4<f32>, b: mat4x4<f32>) -> mat4x4<f32> {
  var r = acc;
  r[0] = fma(vec4<f32>(a[0].x), b[0], r[0]);
  r[1] = fma(vec4<f32>(a[1].x), b[0], r[1]);
  r[2] = fma(vec4<f32>(a[2].x), b[0], r[2]);
  r[3] = fma(vec4<f32>(a[3].x), b[0], r[3]);
  r[0] = fma(vec4<f32>(a[0].y), b[1], r[0]);
  r[1] = fma(vec4<f32>(a[1].y), b[1], r[1]);
  r[2] = fma(vec4<f32>(a[2].y), b[1], r[2]);
  r[3] = fma(vec4<f32>(a[3].y), b[1], r[3]);
  r[0] = fma(vec4<f32>(a[0].z), b[2], r[0]);
  r[1] = fma(vec4<f32>(a[1].z), b[2], r[1]);
  r[2] = fma(vec4<f32>(a[2].z), b[2], r[2]);
  r[3] = fma(vec4<f32>(a[3].z), b[2], r[3]);
  r[0] = fma(vec4<f32>(a[0].w), b[3], r[0]);
  r[1] = fma(vec4<f32>(a[1].w), b[3], r[1]);
  r[2] = fma(vec4<f32>(a[2].w), b[3], r[2]);
  r[3] = fma(vec4<f32>(a[3].w), b[3], r[3]);
  return r;
}

fn storeRow(m: u32, n: u32, acc: vec4<f32>) {
  if (m >= p.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    if (n + j < p.N) { epilogue(m, n + j, acc[j]); }
  }
}

// The 4x4 block of C from (m, n), through the epilogue; rows and columns past M, N skipped.
fn storeBlock(m: u32, n: u32, acc: mat4x4<f32>) {
  storeRow(m, n, acc[0]);
  storeRow(m + 1u, n, acc[1]);
  storeRow(m + 2u, n, acc[2]);
  storeRow(m + 3u, n, acc[3]);
}
