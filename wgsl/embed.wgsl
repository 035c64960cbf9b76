// Token embedding gather: out[t, i] = SCALE · E[ids[t], i] (+ wpe[position(t), i] with learned
// positions, GPT-2). Needs wgsl/common.wgsl and wgsl/positions.wgsl prepended.
// E may exceed one storage binding: the host splits it by row ranges (src/gpu/split.ts), one
// dispatch per range [R0, R1), each writing the rows of the tokens whose id lies in its range; the
// LAST part also writes the tokens whose id is ≥ VOCAB (as SCALE·0, i.e. zeros, plus positions),
// so every output row is written exactly once.
override T: u32 = 1u;          // tokens (batch·seq)
override D: u32 = 1u;          // d_model
override VOCAB: u32 = 1u;
override R0: u32 = 0u;         // first row of E this part binds
override R1: u32 = 1u;         // one past its last row
override LAST: bool = true;
override DTYPE: u32 = 0u;      // E storage: 0 f32, 1 f16, 2 bf16 (two halves per u32, low half first)
override E_OFF: u32 = 0u;      // word in the binding of E holding element R0·D (its low half for f16/bf16)
override E_ODD: u32 = 0u;      // f16/bf16: 1 when element R0·D is the high half of that word
override SCALE: f32 = 1.0;     // Gemma: √d_model
override LEARNED_POS: bool = false;

@group(0) @binding(0) var<storage, read> ids: array<u32>;        // [T] token ids
@group(0) @binding(1) var<storage, read> table: array<u32>;      // E rows [R0, R1) of [VOCAB, D]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // [T, D] f32
@group(0) @binding(3) var<storage, read> wpe: array<f32>;        // [n_ctx, D] f32 (LEARNED_POS)
@group(0) @binding(4) var<storage, read> pos: array<u32>;        // positions (LEARNED_POS)

// Element e of E counted from element R0·D.
fn table_at(e: u32) -> f32 {
  if (DTYPE == 0u) { return bitcast<f32>(table[E_OFF + e]); }
  let h = e + E_ODD;
  let w = table[E_OFF + h / 2u];
  if (DTYPE == 1u) {
    let two = unpack2x16float(w);
    return select(two.x, two.y, (h & 1u) == 1u);
  }
  return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (h & 1u) == 1u));
}

// One invocation per element of out.
@compute @workgroup_size(WG)
fn embed(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= T * D) { return; }
  let t = i / D;
  let c = i % D;
  let id = ids[t];
  var v = 0.0;
  if (id >= R0 && id < R1) {
    v = SCALE * table_at((id - R0) * D + c);
  } else if (!(LAST && id >= VOCAB)) {
    return;
  }
  if (LEARNED_POS) {
    let pi = pos_index(t);
    v += wpe[(pos[pi.x] + pi.y) * D + c];
  }
  out[i] = v;
}
