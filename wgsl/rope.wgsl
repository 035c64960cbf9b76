// Rotary position embedding, in place on one matrix x [T, LD] whose heads start at element OFF of
// each row (q [T, n_heads·hd], k [T, n_kv·hd], or either part of a fused QKV row). Pair i < ROT/2
// of a head at position p is rotated by the angle p·inv_freq[i]:
//   (x1, x2) ← (x1·cos − x2·sin, x2·cos + x1·sin)
// with (x1, x2) = (x[i], x[i + ROT/2]) ("rotate-half", Hugging Face) or (x[2i], x[2i + 1])
// (interleaved pairs, llama2.c / Meta's checkpoints). Dimensions from ROT to HD are left as they are.
// Needs wgsl/common.wgsl and wgsl/positions.wgsl prepended.
override T: u32 = 1u;        // tokens (batch·SEQ)
override HEADS: u32 = 1u;    // heads in x
override HD: u32 = 2u;       // head_dim
override ROT: u32 = 2u;      // rotated dimensions per head (even, ≤ HD)
override LD: u32 = 2u;       // row stride of x (elements)
override OFF: u32 = 0u;      // element of each row where head 0 starts
override INTERLEAVED: bool = false;

@group(0) @binding(0) var<storage, read_write> x: array<f32>;   // [T, LD]
@group(0) @binding(1) var<storage, read> inv_freq: array<f32>;  // [ROT/2] f32
@group(0) @binding(2) var<storage, read> pos: array<u32>;       // positions (positions.wgsl)

// cos and sin of an f32 angle `a` ≥ 0 as accurately as of a small one: a is reduced to [−π, π]
// first (Cody–Waite, 2π in three parts of at most 9 significant bits each, so k·C1 and k·C2 are
// exact for k < 2^15: angles up to ~2·10^5 rad), because GPU sin/cos lose accuracy far from 0.
fn cos_sin(a: f32) -> vec2<f32> {
  let k = round(a * 0.15915494);
  var r = a - k * 6.28125;
  r -= k * 0.001934051513671875;
  r -= k * 1.2556659e-06;
  return vec2<f32>(cos(r), sin(r));
}

// One invocation per rotated pair.
@compute @workgroup_size(WG)
fn rope(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let half = ROT / 2u;
  let n = g.x + g.y * nw.x * WG;
  if (n >= T * HEADS * half) { return; }
  let i = n % half;
  let h = (n / half) % HEADS;
  let t = n / (half * HEADS);
  let pi = pos_index(t);
  let cs = cos_sin(f32(pos[pi.x] + pi.y) * inv_freq[i]);
  let base = t * LD + OFF + h * HD;
  let a = base + select(i, 2u * i, INTERLEAVED);
  let b = base + select(i + half, 2u * i + 1u, INTERLEAVED);
  let x1 = x[a];
  let x2 = x[b];
  x[a] = x1 * cs.x - x2 * cs.y;
  x[b] = x2 * cs.x + x1 * cs.y;
}
