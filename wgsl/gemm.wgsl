// GEMM with fused epilogues: C[M,N] = epilogue(op(A)[M,K] · op(B)[K,N]). Entry points:
//   main_v4:  the fast path on GPUs (register-blocked, vec4 loads, no workgroup memory; see below),
//             for K % 4 == 0, M % 4 == 0 when TRANS_A, N % 4 == 0 when !TRANS_B.
//   main_bc:  the fast path on CPU adapters for large GEMMs (same size conditions): rows of one
//             operand shared by a workgroup and read as broadcasts, K unrolled in chunks without a
//             loop, both operands packed along K into rgba32float textures by `pack_k` (or copies)
//             first (see the end of the file).
//   main_tex: the CPU path for smaller GEMMs (and the f16 path on GPUs): both operands read from
//             textures that `pack` (or copies) filled first, rows shared by a workgroup, a loop
//             over K, unrolled for its tile by src/kernels/gemm.ts (see below).
//   main:     a shared-memory tiled fallback for any M, N, K.
// src/kernels/gemm.ts picks one and sets the tile shapes (the override constants).
// Layouts (override constants, resolved when the pipeline is created):
//   TRANS_A = false: A stored [M,K] row-major;  true: A stored [K,M] row-major.
//   TRANS_B = false: B stored [K,N] row-major;  true: B stored [N,K] row-major.
// Epilogues (EPILOGUE):
//   0: C = acc
//   1: C = acc + E[n]                        (bias)
//   2: C = max(acc + E[n], 0)                (bias + ReLU: the encoder)
//   3: C = (acc + S[SCALAR_IDX]) * (E[m,N+n] > 0)   (dL/dpre from dL/df: + λ1/B, ReLU mask)
//   4: C = v * (v > S[n]), v = acc + E[n]            (encoder with per-latent thresholds S)
//   5: C = S[0]·E[row0+m]·E[n]·acc/(|acc| + S[1]), 0 where row0+m == n (orthogonality coefficients)
//   6: C += acc                                      (accumulate)
// main: each workgroup computes a BM x BN tile with WG_X x WG_Y threads, each TM x TN outputs, strided
// by WG_X / WG_Y so neighbouring threads touch neighbouring columns. Out-of-range loads read 0 and
// out-of-range stores are skipped, so any M, N, K works. The K loop runs ceil(K / BK) times.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override EPILOGUE: u32 = 0u;
override SCALAR_IDX: u32 = 0u;
override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override TM: u32 = 4u; // rows per thread (BM = WG_Y * TM)
const TN: u32 = 4u; // cols per thread (BN = WG_X * TN), fixed: one vec4 accumulator per row
const MAX_TM: u32 = 8u; // largest TM the accumulator array holds
override BK: u32 = 16u;

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
  kc: u32, // main_bc: this dispatch's chunk of K (chunks of BC_KC4 texels)
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

var<workgroup> As: array<f32, BK * WG_Y * TM>; // [BK][BM]
var<workgroup> Bs: array<f32, BK * WG_X * TN>; // [BK][BN]

// The epilogue of both paths: C[m, n] from the accumulated dot product.
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
  }
  C[idx] = v;
}

fn loadA(m: u32, k: u32) -> f32 {
  if (m >= p.M || k >= p.K) { return 0.0; }
  if (TRANS_A) { return A[p.offA + k * p.lda + m]; }
  return A[p.offA + m * p.lda + k];
}

fn loadB(k: u32, n: u32) -> f32 {
  if (n >= p.N || k >= p.K) { return 0.0; }
  if (TRANS_B) { return B[p.offB + n * p.ldb + k]; }
  return B[p.offB + k * p.ldb + n];
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let BM = WG_Y * TM;
  let BN = WG_X * TN;
  let nthreads = WG_X * WG_Y;
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;

  // acc[i] holds row (lid.y + i*WG_Y), columns 4*lid.x .. 4*lid.x+3 of this thread's block.
  var acc: array<vec4<f32>, MAX_TM>;
  for (var i = 0u; i < TM; i++) { acc[i] = vec4<f32>(0.0); }

  let ktiles = (p.K + BK - 1u) / BK;
  for (var kt = 0u; kt < ktiles; kt++) {
    let k0 = kt * BK;
    // Stage the A tile as As[k][m]; walk memory contiguously for either layout.
    for (var l = tid; l < BM * BK; l += nthreads) {
      var mm: u32;
      var kk: u32;
      if (TRANS_A) { mm = l % BM; kk = l / BM; } else { kk = l % BK; mm = l / BK; }
      As[kk * BM + mm] = loadA(m0 + mm, k0 + kk);
    }
    for (var l = tid; l < BN * BK; l += nthreads) {
      var nn: u32;
      var kk: u32;
      if (TRANS_B) { kk = l % BK; nn = l / BK; } else { nn = l % BN; kk = l / BN; }
      Bs[kk * BN + nn] = loadB(k0 + kk, n0 + nn);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let bo = kk * BN + lid.x * 4u;
      let b = vec4<f32>(Bs[bo], Bs[bo + 1u], Bs[bo + 2u], Bs[bo + 3u]);
      for (var i = 0u; i < TM; i++) {
        acc[i] = fma(vec4<f32>(As[kk * BM + lid.y + i * WG_Y]), b, acc[i]);
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < TM; i++) {
    let m = m0 + lid.y + i * WG_Y;
    if (m >= p.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n >= p.N) { continue; }
      epilogue(m, n, acc[i][j]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// main_v4: register-blocked, no workgroup memory. Each invocation computes a (4·V_RG)x(4·V_CG)
// block of C (V_RG, V_CG in {1, 2}) as 4x4 sub-blocks; per step of 4 along K it loads a 4x4
// fragment of each operand as four vec4s along that operand's contiguous dimension (row-major A
// and transposed B: along K; transposed A: along M; row-major B: along N) and transposes where
// needed (free in llvmpipe's SoA registers). A[M,K] and B as vec4 arrays alias bindings 0 and 1.
// Rows/columns past M/N are clamped on load (stay in bounds) and skipped on store.
// Needs K % 4 == 0, and M % 4 == 0 when TRANS_A, N % 4 == 0 when !TRANS_B, and lda, ldb, offA,
// offB multiples of 4 (gemm.ts checks).
@group(0) @binding(0) var<storage, read> A4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B4: array<vec4<f32>>;

override V_WG_X: u32 = 8u;
override V_WG_Y: u32 = 8u;


fn storeRow(m: u32, n: u32, acc: vec4<f32>) {
  if (m >= p.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    if (n + j < p.N) { epilogue(m, n + j, acc[j]); }
  }
}

// A fragment for rows r0..r0+3 (column i = A[r0+i, 4k4 .. 4k4+3]). `ro` holds the (clamped) row
// offsets in vec4s for row-major A; `rc` the (clamped) vec4 index of the row block for transposed A.
fn fragA(ro: vec4<u32>, rc: u32, k4: u32) -> mat4x4<f32> {
  if (TRANS_A) {
    let M4 = p.lda / 4u;
    let base = p.offA / 4u + 4u * k4 * M4 + rc;
    let r0 = A4[base];
    let r1 = A4[base + M4];
    let r2 = A4[base + 2u * M4];
    let r3 = A4[base + 3u * M4];
    return transpose(mat4x4<f32>(r0, r1, r2, r3));
  }
  return mat4x4<f32>(A4[ro.x + k4], A4[ro.y + k4], A4[ro.z + k4], A4[ro.w + k4]);
}

// B fragment for columns c0..c0+3 (column kk = B[4k4+kk, c0 .. c0+3]).
fn fragB(co: vec4<u32>, cc: u32, k4: u32) -> mat4x4<f32> {
  if (TRANS_B) {
    let c0 = B4[co.x + k4];
    let c1 = B4[co.y + k4];
    let c2 = B4[co.z + k4];
    let c3 = B4[co.w + k4];
    return transpose(mat4x4<f32>(c0, c1, c2, c3));
  }
  let N4 = p.ldb / 4u;
  let base = p.offB / 4u + 4u * k4 * N4 + cc;
  return mat4x4<f32>(B4[base], B4[base + N4], B4[base + 2u * N4], B4[base + 3u * N4]);
}

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

fn rowOffs(m: u32) -> vec4<u32> {
  let last = p.M - 1u;
  return vec4<u32>(min(m, last), min(m + 1u, last), min(m + 2u, last), min(m + 3u, last)) *
    (p.lda / 4u) + vec4<u32>(p.offA / 4u);
}

fn colOffs(n: u32) -> vec4<u32> {
  let last = p.N - 1u;
  return vec4<u32>(min(n, last), min(n + 1u, last), min(n + 2u, last), min(n + 3u, last)) *
    (p.ldb / 4u) + vec4<u32>(p.offB / 4u);
}

fn storeBlock(m: u32, n: u32, acc: mat4x4<f32>) {
  storeRow(m, n, acc[0]);
  storeRow(m + 1u, n, acc[1]);
  storeRow(m + 2u, n, acc[2]);
  storeRow(m + 3u, n, acc[3]);
}

// The (4·V_RG)x(4·V_CG) block of C at row block rb, column block cb.
fn storeBlocks(rb: u32, cb: u32, acc00: mat4x4<f32>, acc01: mat4x4<f32>, acc10: mat4x4<f32>,
               acc11: mat4x4<f32>) {
  storeBlock(rb * 4u, cb * 4u, acc00);
  if (V_CG == 2u) { storeBlock(rb * 4u, cb * 4u + 4u, acc01); }
  if (V_RG == 2u) { storeBlock(rb * 4u + 4u, cb * 4u, acc10); }
  if (V_RG == 2u && V_CG == 2u) { storeBlock(rb * 4u + 4u, cb * 4u + 4u, acc11); }
}

override V_RG: u32 = 1u; // 4-row groups per invocation (1 or 2)
override V_CG: u32 = 1u; // 4-column groups per invocation (1 or 2)

@compute @workgroup_size(V_WG_X, V_WG_Y, 1)
fn main_v4(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let K4 = p.K / 4u;
  let lastRB = max(p.M / 4u, 1u) - 1u;
  let lastCB = max(p.N / 4u, 1u) - 1u;
  let rb = (wid.y * V_WG_Y + lid.y) * V_RG; // first row block: rows 4rb ..
  let cb = (wid.x * V_WG_X + lid.x) * V_CG; // first column block: columns 4cb ..
  let ro0 = rowOffs(rb * 4u);
  let ro1 = rowOffs(rb * 4u + 4u);
  let co0 = colOffs(cb * 4u);
  let co1 = colOffs(cb * 4u + 4u);
  let rc0 = min(rb, lastRB);
  let rc1 = min(rb + 1u, lastRB);
  let cc0 = min(cb, lastCB);
  let cc1 = min(cb + 1u, lastCB);
  let zero = mat4x4<f32>();
  var acc00 = zero;
  var acc01 = zero;
  var acc10 = zero;
  var acc11 = zero;
  for (var k4 = 0u; k4 < K4; k4++) {
    let a0 = fragA(ro0, rc0, k4);
    let b0 = fragB(co0, cc0, k4);
    acc00 = mac(acc00, a0, b0);
    if (V_CG == 2u) {
      let b1 = fragB(co1, cc1, k4);
      acc01 = mac(acc01, a0, b1);
      if (V_RG == 2u) {
        let a1 = fragA(ro1, rc1, k4);
        acc10 = mac(acc10, a1, b0);
        acc11 = mac(acc11, a1, b1);
      }
    } else if (V_RG == 2u) {
      let a1 = fragA(ro1, rc1, k4);
      acc10 = mac(acc10, a1, b0);
    }
  }
  storeBlocks(rb, cb, acc00, acc01, acc10, acc11);
}

// ---------------------------------------------------------------------------------------------
// Texture path (CPU adapters). On llvmpipe a storage-buffer load is a loop over the SIMD lanes
// with a branch and a bounds check per lane and component; a load from a read-only storage
// texture is a branch-free gather of whole texels, ~2.5x cheaper per vec4 (bench/RESULTS.md).
// `pack` copies each operand densely into an rgba32float texture (texel t = floats 4t .. 4t+3 of
// the dense row-major matrix, folded at TEX_W texels per texture row); `main_tex` reads its
// fragments from the packed A (At) and B (Bt) with fragAt / fragBt. The packed matrices have no
// leading dimension or offset: A is [K, M/4] texels when TRANS_A, else [M, K/4]; B is [N, K/4]
// when TRANS_B, else [K, N/4].
override TEX_W: u32 = 8192u; // texels per texture row (a power of two)
@group(0) @binding(6) var At: texture_storage_2d<rgba32float, read>;
@group(0) @binding(7) var Bt: texture_storage_2d<rgba32float, read>;
@group(0) @binding(8) var Pt: texture_storage_2d<rgba32float, write>;

fn texel(t: u32) -> vec2<u32> {
  return vec2<u32>(t % TEX_W, t / TEX_W);
}

// pack: texel (r, c4) of the dense copy = A[offA + r·lda + 4c4 .. +3], r < p.M rows, c4 < p.N
// texels per row (the source is bound as A; lda and offA multiples of 4).
@compute @workgroup_size(64, 1, 1)
fn pack(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let c4 = gid.x;
  let r = gid.y + gid.z * nwg.y;
  if (c4 >= p.N || r >= p.M) { return; }
  textureStore(Pt, texel(r * p.N + c4), A4[p.offA / 4u + r * (p.lda / 4u) + c4]);
}

fn tA(t: u32) -> vec4<f32> {
  return textureLoad(At, texel(p.offAt + t));
}

fn tB(t: u32) -> vec4<f32> {
  return textureLoad(Bt, texel(p.offBt + t));
}

// As fragA: `ro` the (clamped) rows' first texels for row-major A, `rc` the (clamped) texel
// column of the row block for transposed A.
fn fragAt(ro: vec4<u32>, rc: u32, k4: u32) -> mat4x4<f32> {
  if (TRANS_A) {
    let M4 = p.M / 4u;
    let t = 4u * k4 * M4 + rc;
    return transpose(mat4x4<f32>(tA(t), tA(t + M4), tA(t + 2u * M4), tA(t + 3u * M4)));
  }
  return mat4x4<f32>(tA(ro.x + k4), tA(ro.y + k4), tA(ro.z + k4), tA(ro.w + k4));
}

// As fragB, from the packed B.
fn fragBt(co: vec4<u32>, cc: u32, k4: u32) -> mat4x4<f32> {
  if (TRANS_B) {
    return transpose(mat4x4<f32>(tB(co.x + k4), tB(co.y + k4), tB(co.z + k4), tB(co.w + k4)));
  }
  let N4 = p.N / 4u;
  let t = 4u * k4 * N4 + cc;
  return mat4x4<f32>(tB(t), tB(t + N4), tB(t + 2u * N4), tB(t + 3u * N4));
}

// First texels of rows i .. i+3 (clamped to `last`) of a packed matrix with n4 texels per row.
fn rowTexels(i: u32, last: u32, n4: u32) -> vec4<u32> {
  return min(vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last)) * n4;
}

// main_tex (entry point generated by texEntry in src/kernels/gemm.ts, appended to this file:
// a small specialization step, since llvmpipe keeps per-invocation arrays in memory unless every
// index is a constant): each workgroup computes 4·RG rows of C (the same rows for all its T_WG
// invocations) by T_WG·4·CG columns; each invocation a 4·RG x 4·CG block, in RG·CG 4x4 `mac`
// blocks. Per step of 4 along K an invocation first loads all its fragments (RG of A via fragAt,
// CG of B via fragBt: 4·(RG + CG) texels), then does 16·4·RG·CG FMAs: on llvmpipe texel loads
// interleaved with the FMAs cost far more (bench/RESULTS.md).
override T_WG: u32 = 64u; // invocations per workgroup

// ---------------------------------------------------------------------------------------------
// Broadcast path (CPU adapters): C = op(A)·op(B) as A'·B'ᵀ with A' = op(A) [M,K] and B' = op(B)ᵀ
// [N,K], both packed along K by `pack_k` (texel r·K4P + c4 = row r, floats 4c4 .. 4c4+3, zero past
// K; folded TEX_W texels wide like `pack`'s). What llvmpipe (Mesa 22.3) makes of WGSL decides the
// shape (bench/RESULTS.md has the measurements):
//   - a load is a scalar load plus a broadcast only when its address is a constant and it runs
//     outside any loop or branch (any other load of storage or workgroup memory is a loop over the
//     SIMD lanes); so a workgroup first copies BC_R rows of one operand (the "shared rows") for a
//     chunk of K into workgroup memory, and then reads them at constant indices;
//   - inside a loop every value carried from one trip to the next is blended with the lane mask
//     and LLVM schedules the unrolled chains one after another (an FMA loop runs at half the rate
//     of the same FMAs without one); so the chunk of K (BC_KC4 texels) is unrolled into straight
//     code, and a GEMM with more chunks is one dispatch per chunk, each adding to C;
//   - each invocation ("lane") gathers its own row of the other operand, one texel (4 values of
//     K) at a time, and uses each texel for all BC_R shared rows (12 accumulators and the texel
//     fill the 16 AVX2 registers).
// The entry point `main_bc` is generated by bcEntry (src/kernels/gemm.ts) and appended to this
// file, with the workgroup array it stages into. BC_SWAP puts the shared rows in B' (columns of C)
// and the lanes along M, for GEMMs whose N is narrower than a workgroup.
override BC_T: u32 = 256u; // lanes (invocations) per workgroup
override BC_SWAP: bool = false;
override PACK_T: bool = false; // pack_k: the source is stored [K, rows] instead of [rows, K]
override K4P: u32 = 1u; // texels per packed row: K/4 padded to whole chunks

// pack_k: op(X) [rows, K] along K. X is bound as A (A4): rows = p.M, K = p.K, leading dimension
// p.lda and offset p.offA (multiples of 4). Without PACK_T an invocation copies one texel; with it,
// a 4x4 block (4 rows of op(X)) from 4 vec4 loads of X, transposed.
@compute @workgroup_size(64, 1, 1)
fn pack_k(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let c4 = gid.x;
  let y = gid.y + gid.z * nwg.y; // row, or 4-row block with PACK_T
  if (c4 >= K4P) { return; }
  let K4 = p.K / 4u;
  let ld4 = p.lda / 4u;
  let off4 = p.offA / 4u;
  if (!PACK_T) {
    if (y >= p.M) { return; }
    var v = vec4<f32>(0.0);
    if (c4 < K4) { v = A4[off4 + y * ld4 + c4]; }
    textureStore(Pt, texel(p.offAt + y * K4P + c4), v);
    return;
  }
  if (4u * y >= p.M) { return; }
  // Column i of `blk` = X[4c4 + i, 4y .. 4y+3]; its transpose's column j is row 4y + j of op(X).
  var blk = mat4x4<f32>();
  if (c4 < K4) {
    let b = off4 + 4u * c4 * ld4 + y;
    blk = transpose(mat4x4<f32>(A4[b], A4[b + ld4], A4[b + 2u * ld4], A4[b + 3u * ld4]));
  }
  for (var j = 0u; j < 4u; j++) {
    textureStore(Pt, texel(p.offAt + (4u * y + j) * K4P + c4), blk[j]);
  }
}

// The broadcast path's store of one C entry: `row` indexes the shared rows, `lane` the lanes.
// Chunks after the first add C's value; the last applies the epilogue.
fn bcStore(row: u32, lane: u32, acc: f32) {
  var m = row;
  var n = lane;
  if (BC_SWAP) {
    m = lane;
    n = row;
  }
  if (m >= p.M || n >= p.N) { return; }
  let idx = p.offC + m * p.ldc + n;
  var v = acc;
  if ((p.mode & 1u) != 0u) { v += C[idx]; }
  if ((p.mode & 2u) != 0u) {
    epilogue(m, n, v);
  } else {
    C[idx] = v;
  }
}
