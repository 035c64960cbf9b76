// Packed operands of the texture and broadcast paths, after wgsl/gemm.wgsl. On llvmpipe a
// storage-buffer load is a loop over the SIMD lanes with a branch and a bounds check per lane and
// component; a load from a read-only storage texture is a branch-free gather of whole texels, ~2.5x
// cheaper per vec4 (bench/RESULTS.md). So those paths first copy each operand into a texture:
//   `pack` as stored, densely (texel t = floats 4t .. 4t+3 of the dense row-major matrix), for
//     `main_tex`: A is [K, M/4] texels when TRANS_A, else [M, K/4]; B is [N, K/4] when TRANS_B,
//     else [K, N/4];
//   `pack_k` along K, for `main_bc`: op(X) [rows, K] with K4P texels per row, zero past K.
// Texel t is at (t % TEX_W, t / TEX_W). The texture format is rgba32float as written here, or
// rgba16float for f16 operand storage (src/kernels/gemm/pack.ts replaces the name).
override TEX_W: u32 = 8192u; // texels per texture row (a power of two)
override PACK_T: bool = false; // pack_k: the source is stored [K, rows] instead of [rows, K]
override K4P: u32 = 1u; // pack_k, main_bc: texels per packed row: K/4 padded to whole chunks
@group(0) @binding(6) var At: texture_storage_2d<rgba32float, read>;
@group(0) @binding(7) var Bt: texture_storage_2d<rgba32float, read>;
@group(0) @binding(8) var Pt: texture_storage_2d<rgba32float, write>;

fn texel(t: u32) -> vec2<u32> {
  return vec2<u32>(t % TEX_W, t / TEX_W);
}

// pack: texel (r, c4) of the dense copy = A[offA + r·lda + 4c4 .. +3], r < p.M rows, c4 < p.N
// texels per row (the source is bound as A; lda and offA multiples of 4).
@compute @workgroup_size(WG, 1, 1)
fn pack(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let c4 = gid.x;
  let r = gid.y + gid.z * nwg.y;
  if (c4 >= p.N || r >= p.M) { return; }
  textureStore(Pt, texel(r * p.N + c4), A4[p.offA / 4u + r * (p.lda / 4u) + c4]);
}

// pack_k: op(X) [rows, K] along K, from texel p.offAt on. X is bound as A (A4): rows = p.M,
// K = p.K, leading dimension p.lda and offset p.offA (multiples of 4). Without PACK_T an
// invocation copies one texel; with it, a 4x4 block (4 rows of op(X)) from 4 vec4 loads of X,
// transposed.
@compute @workgroup_size(WG, 1, 1)
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
