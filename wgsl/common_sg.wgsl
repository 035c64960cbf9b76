// The workgroup reductions of wgsl/common.wgsl with subgroup operations, for devices with the
// "subgroups" feature: the same names and contracts (every invocation of the RED_WG gets the
// total; call from uniform control flow with `lid` = local_invocation_index). src/kernels/common.ts
// puts these in place of the workgroup-memory versions. Each subgroup reduces its lanes in
// registers and its first lane writes the partial; one barrier later every invocation adds the
// partials, so two barriers in all instead of 2 + log2(RED_WG). The subgroup's size comes from a
// subgroup sum of ones (every lane is active under the uniform-control-flow contract), and
// subgroups are taken to be consecutive runs of local_invocation_index, as every GPU forms them
// for a 1-D workgroup (tests/kernels/collectives_test.ts checks the same assumption); RED_WG is a
// multiple of the subgroup size (64 and 256 are, for sizes 4 to 64).
var<workgroup> wg_red: array<vec4<f32>, RED_WG>; // per-subgroup partials
var<workgroup> wg_red_u32: array<u32, RED_WG>;

fn wg_sum4(v: vec4<f32>, lid: u32) -> vec4<f32> {
  let part = subgroupAdd(v);
  let size = subgroupAdd(1u);
  if (lid % size == 0u) { wg_red[lid / size] = part; }
  workgroupBarrier();
  var total = wg_red[0];
  for (var i = 1u; i < RED_WG / size; i++) { total += wg_red[i]; }
  workgroupBarrier();
  return total;
}

fn wg_max4(v: vec4<f32>, lid: u32) -> vec4<f32> {
  let part = subgroupMax(v);
  let size = subgroupAdd(1u);
  if (lid % size == 0u) { wg_red[lid / size] = part; }
  workgroupBarrier();
  var total = wg_red[0];
  for (var i = 1u; i < RED_WG / size; i++) { total = max(total, wg_red[i]); }
  workgroupBarrier();
  return total;
}

fn wg_sum_u32(v: u32, lid: u32) -> u32 {
  let part = subgroupAdd(v);
  let size = subgroupAdd(1u);
  if (lid % size == 0u) { wg_red_u32[lid / size] = part; }
  workgroupBarrier();
  var total = 0u;
  for (var i = 0u; i < RED_WG / size; i++) { total += wg_red_u32[i]; }
  workgroupBarrier();
  return total;
}
