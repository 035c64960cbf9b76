// Splicing an SAE into a language model's forward pass (needs wgsl/common.wgsl): a hook's
// activations act [ROWS, D] f32 are replaced in place where the pass reaches the hook.
//   splice_out: act[t, k] ← x̂[t, k] / SCALE where keep[t] ≠ 0, else left as it is (the SAE's
//               reconstruction in raw units; tokens not kept, e.g. BOS, stay at their own value)
//   zero:       act[t, k] ← 0 for every row (zero ablation)
override ROWS: u32 = 1u;
override D: u32 = 1u;
override SCALE: f32 = 1.0;

@group(0) @binding(0) var<storage, read_write> act: array<f32>; // [ROWS, D]
@group(0) @binding(1) var<storage, read> xhat: array<f32>;      // [ROWS, D] scaled units
@group(0) @binding(2) var<storage, read> keep: array<u32>;      // [ROWS] 0: keep act's row

// One invocation per element.
@compute @workgroup_size(WG)
fn splice_out(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= ROWS * D) { return; }
  if (keep[i / D] != 0u) { act[i] = xhat[i] / SCALE; }
}

// One invocation per element.
@compute @workgroup_size(WG)
fn zero(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= ROWS * D) { return; }
  act[i] = 0.0;
}
