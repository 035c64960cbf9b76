// The scalar path (`main`), after wgsl/gemm.wgsl: the fallback for any M, N, K. Each workgroup
// computes a BM x BN tile with WG_X x WG_Y threads, each TM x TN outputs, strided by WG_X / WG_Y so
// neighbouring threads touch neighbouring columns. Out-of-range loads read 0 and out-of-range
// stores are skipped, so any M, N, K works. The K loop runs ceil(K / BK) times.

override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override TM: u32 = 4u; // rows per thread (BM = WG_Y * TM)
const TN: u32 = 4u; // cols per thread (BN = WG_X * TN), fixed: one vec4 accumulator per row
const MAX_TM: u32 = 8u; // largest TM the accumulator array holds
override BK: u32 = 16u;

var<workgroup> As: array<f32, BK * WG_Y * TM>; // [BK][BM]
var<workgroup> Bs: array<f32, BK * WG_X * TN>; // [BK][BN]

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
