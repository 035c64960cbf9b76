// The mixing buffer of live training (needs wgsl/common.wgsl): N activation rows [N, D] f32 from
// which the SAE's batches are drawn, as SAELens' activation store mixes its buffer. Refilled half
// at a time: serving round r hands out the H = N/2 slots slot(r, 0..H−1), a random half of the
// buffer in random order; fill round r + 1 then writes fresh rows into exactly those slots, so
// each round mixes new rows with old ones. Fill round 0 writes all N slots in order.
//
// slot(r, p) is a pseudo-random permutation of [0, N) keyed by (SEED, r): a 4-round Feistel
// network on 2·HB bits (4^HB ≥ N) whose round function is Philox4x32-10, cycle-walked until the
// value falls inside [0, N). Its TypeScript twin is mixSlot in src/kernels/mixing.ts.
//
// Counters live in `st` (u32 [4]): [serve round, serve position, fill round, fill position], read
// by gather and scatter and advanced by `advance`, so the host writes nothing per batch.
override N: u32 = 2u;
override H: u32 = 1u;
override D: u32 = 1u;
override HB: u32 = 1u;
override SEED: u32 = 0u;
const NO_SLOT: u32 = 0xffffffffu;
// Philox key word 1 and counter word 3 of the mixing draws (other families use other words).
const MIX_KEY: u32 = 0x6d697862u;

fn mix_slot(round: u32, p: u32) -> u32 {
  let mask = (1u << HB) - 1u;
  var v = p;
  loop {
    var l = v >> HB;
    var r = v & mask;
    for (var i = 0u; i < 4u; i++) {
      let f = philox(vec4<u32>(r, i, round, MIX_KEY), vec2<u32>(SEED, MIX_KEY)).x & mask;
      let t = l ^ f;
      l = r;
      r = t;
    }
    v = (l << HB) | r;
    if (v < N) { break; }
  }
  return v;
}

// ---- gather: x [ROWS, D] ← the next ROWS served rows -----------------------------------------
// PART 0 writes the rows that fall in the current serving round, PART 1 those past its end (the
// next round's first rows, served after the refill between the two dispatches).
override ROWS: u32 = 1u;
override PART: u32 = 0u;

@group(0) @binding(0) var<storage, read> g_buf: array<f32>;       // [N, D]
@group(0) @binding(1) var<storage, read> g_st: array<u32>;        // [4]
@group(0) @binding(2) var<storage, read_write> g_x: array<f32>;   // [ROWS, D]

var<workgroup> wg_slot: u32;

// One workgroup per row: its first invocation finds the slot, all copy the row.
@compute @workgroup_size(WG)
fn gather(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = w.x + w.y * 65535u;
  if (i >= ROWS) { return; }
  if (lid == 0u) {
    let g = g_st[1] + i;
    var s = NO_SLOT;
    if (PART == 0u && g < H) { s = mix_slot(g_st[0], g); }
    if (PART == 1u && g >= H) { s = mix_slot(g_st[0] + 1u, g - H); }
    wg_slot = s;
  }
  let s = workgroupUniformLoad(&wg_slot);
  if (s == NO_SLOT) { return; }
  for (var k = lid; k < D; k += WG) { g_x[i * D + k] = g_buf[s * D + k]; }
}

// ---- scatter: the hook's rows of CTX contexts of SEQ tokens into the next fill slots ----------
// Position 0 of each context (BOS) is left out, as harvested activations leave it out: row j of
// the fill is position j mod (SEQ − 1) + 1 of context ⌊j / (SEQ − 1)⌋.
override CTX: u32 = 1u;
override SEQ: u32 = 2u;

@group(0) @binding(3) var<storage, read> s_act: array<f32>;       // [CTX, SEQ, D]
@group(0) @binding(4) var<storage, read> s_st: array<u32>;        // [4]
@group(0) @binding(5) var<storage, read_write> s_buf: array<f32>; // [N, D]

@compute @workgroup_size(WG)
fn scatter(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let j = w.x + w.y * 65535u;
  let kept = SEQ - 1u;
  if (j >= CTX * kept) { return; }
  if (lid == 0u) {
    let p = s_st[3] + j;
    let fr = s_st[2];
    if (fr == 0u) { wg_slot = p; } else { wg_slot = mix_slot(fr - 1u, p); }
  }
  let s = workgroupUniformLoad(&wg_slot);
  let src = ((j / kept) * SEQ + 1u + j % kept) * D;
  for (var k = lid; k < D; k += WG) { s_buf[s * D + k] = s_act[src + k]; }
}

// ---- advance: the counters after SERVE rows served or FILL rows filled -------------------------
// A fill round holds N rows (round 0) or H; callers never cross more than one round boundary.
override SERVE: u32 = 0u;
override FILL: u32 = 0u;

@group(0) @binding(6) var<storage, read_write> a_st: array<u32>;  // [4]

@compute @workgroup_size(1)
fn advance() {
  if (SERVE > 0u) {
    a_st[1] += SERVE;
    if (a_st[1] >= H) {
      a_st[1] -= H;
      a_st[0] += 1u;
    }
  }
  if (FILL > 0u) {
    a_st[3] += FILL;
    let size = select(H, N, a_st[2] == 0u);
    if (a_st[3] >= size) {
      a_st[3] -= size;
      a_st[2] += 1u;
    }
  }
}
