// Row copies of activations [B, SEQ, D] f32 (needs wgsl/common.wgsl): out gets every row of x
// except the first SKIP of each sequence, in order: out [B, SEQ − SKIP, D]. SKIP = 0 is a plain
// copy (a hook's activations kept apart from the residual stream that goes on changing); SKIP = 1
// drops the BOS position of each context, whose activation is left out of harvested data.
override B: u32 = 1u;
override SEQ: u32 = 1u;
override D: u32 = 1u;
override SKIP: u32 = 0u;

@group(0) @binding(0) var<storage, read> x: array<f32>;         // [B, SEQ, D]
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // [B, SEQ − SKIP, D]

// One invocation per element of out.
@compute @workgroup_size(WG)
fn copy_rows(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  let kept = SEQ - SKIP;
  if (i >= B * kept * D) { return; }
  let r = i / D;
  out[i] = x[((r / kept) * SEQ + SKIP + r % kept) * D + i % D];
}
