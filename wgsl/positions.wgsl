// Where a token's position comes from: prepended to the language-model families that need it
// (embed, rope, attention) by withPositions() in src/kernels/positions.ts. Token t = b·SEQ + s.
//   POS_PER_TOKEN = false: pos is u32 [batch], the position of each sequence's first token (0 in a
//                          prefill, p in an incremental decoding step); token t is at pos[b] + s.
//   POS_PER_TOKEN = true:  pos is u32 [batch·SEQ], each token's position.
override POS_PER_TOKEN: bool = false;
override SEQ: u32 = 1u; // tokens per sequence in this dispatch

// (index into pos, addend): token t is at position pos[i.x] + i.y. A function cannot take the
// family's storage buffer, so it returns where to read.
fn pos_index(t: u32) -> vec2<u32> {
  if (POS_PER_TOKEN) { return vec2<u32>(t, 0u); }
  return vec2<u32>(t / SEQ, t % SEQ);
}
