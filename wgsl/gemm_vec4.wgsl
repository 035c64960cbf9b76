// The vec4 path (`main_v4`), after wgsl/gemm.wgsl: register-blocked, no workgroup memory. Each
// invocation computes a (4·V_RG)x(4·V_CG) block of C (V_RG, V_CG in {1, 2}) as 4x4 sub-blocks;
// per step of 4 along K it loads a 4x4 fragment of each operand as four vec4s along that
// operand's contiguous dimension (row-major A and transposed B: along K; transposed A: along M;
// row-major B: along N) and transposes where needed (free in llvmpipe's SoA registers).
// Rows/columns past M/N are clamped on load (stay in bounds) and skipped on store.
// Needs K % 4 == 0, and M % 4 == 0 when TRANS_A, N % 4 == 0 when !TRANS_B, and lda, ldb, offA,
// offB multiples of 4 (vec4Ok in src/kernels/gemm/vec4.ts).

override V_WG_X: u32 = 8u;
override V_WG_Y: u32 = 8u;
override V_RG: u32 = 1u; // 4-row groups per invocation (1 or 2)
override V_CG: u32 = 1u; // 4-column groups per invocation (1 or 2)

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

// The (4·V_RG)x(4·V_CG) block of C at row block rb, column block cb.
fn storeBlocks(rb: u32, cb: u32, acc00: mat4x4<f32>, acc01: mat4x4<f32>, acc10: mat4x4<f32>,
               acc11: mat4x4<f32>) {
  storeBlock(rb * 4u, cb * 4u, acc00);
  if (V_CG == 2u) { storeBlock(rb * 4u, cb * 4u + 4u, acc01); }
  if (V_RG == 2u) { storeBlock(rb * 4u + 4u, cb * 4u, acc10); }
  if (V_RG == 2u && V_CG == 2u) { storeBlock(rb * 4u + 4u, cb * 4u + 4u, acc11); }
}

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
