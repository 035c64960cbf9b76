// Batched text generation, one step's bookkeeping after sampling (needs wgsl/common.wgsl): each row
// of the batch is one sequence of its own; the sampled token is appended to the row's history and
// becomes its next input, or, when it ends the document (EOS or BOS) or the context is full, the
// row starts a new document from BOS at position 0. The host reads the history once per round of
// steps, so many steps run in one submission.
override BATCH: u32 = 1u;
override STEPS: u32 = 1u;      // history slots per row (steps per round)
override MAX_SEQ: u32 = 1u;    // positions 0..MAX_SEQ−1 fit the KV cache
override BOS: u32 = 0u;        // input that starts a document
override EOS: u32 = 0u;        // a sampled EOS ends it (as does a sampled BOS)
override STEP_PARAMS: bool = false; // advance the sampler's step (params[1]) once per step
const CUT: u32 = 0x80000000u;  // history flag: the document was cut at the context length

@group(0) @binding(0) var<storage, read> next: array<u32>;        // [BATCH] sampled ids
@group(0) @binding(1) var<storage, read_write> ids: array<u32>;   // [BATCH] next step's inputs
@group(0) @binding(2) var<storage, read_write> pos: array<u32>;   // [BATCH] their positions
@group(0) @binding(3) var<storage, read_write> hist: array<u32>;  // [BATCH, STEPS] sampled ids
@group(0) @binding(4) var<storage, read_write> count: array<u32>; // [BATCH] history entries
@group(0) @binding(5) var<storage, read_write> params: array<u32>; // sampler (seed, step)

// One invocation per row.
@compute @workgroup_size(WG)
fn advance(@builtin(global_invocation_id) g: vec3<u32>) {
  let b = g.x;
  if (b >= BATCH) { return; }
  if (STEP_PARAMS && b == 0u) { params[1] += 1u; }
  let t = next[b];
  let p = pos[b] + 1u;
  let ends = t == EOS || t == BOS;
  let full = !ends && p >= MAX_SEQ;
  let n = count[b];
  if (n < STEPS) {
    hist[b * STEPS + n] = select(t, t | CUT, full);
    count[b] = n + 1u;
  }
  if (ends || full) {
    ids[b] = BOS;
    pos[b] = 0u;
  } else {
    ids[b] = t;
    pos[b] = p;
  }
}
