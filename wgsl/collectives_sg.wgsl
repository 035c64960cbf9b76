// Workgroup collectives with subgroup operations (adapters with the "subgroups" feature): the
// names and contracts of wgsl/collectives_wg.wgsl. Each subgroup scans or sums its lanes in
// registers; the subgroups' totals meet in workgroup memory. Subgroups are taken to be consecutive
// runs of local_invocation_index (subgroup lid / size), as every GPU forms them for a 1-D
// workgroup; tests/kernels/collectives_test.ts checks it wherever this file runs.

struct Lanes {
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_size) size: u32,
}

var<workgroup> wgc_part: array<u32, WG>;   // per-subgroup totals (at most WG subgroups)
var<workgroup> wgc_partf: array<f32, WG>;

fn wgc_scan(v: u32, l: Lanes) -> vec2<u32> {
  let incl = subgroupInclusiveAdd(v);
  let sg = l.lid / l.size;
  if (l.lane == l.size - 1u || l.lid == WG - 1u) { wgc_part[sg] = incl; }
  workgroupBarrier();
  var before = 0u;
  var total = 0u;
  for (var i = 0u; i < (WG + l.size - 1u) / l.size; i++) {
    let p = wgc_part[i];
    before += select(0u, p, i < sg);
    total += p;
  }
  workgroupBarrier();
  return vec2<u32>(before + incl - v, total);
}

fn wgc_sum_f(v: f32, l: Lanes) -> f32 {
  let s = subgroupAdd(v);
  if (l.lane == 0u) { wgc_partf[l.lid / l.size] = s; }
  workgroupBarrier();
  var total = 0.0;
  for (var i = 0u; i < (WG + l.size - 1u) / l.size; i++) { total += wgc_partf[i]; }
  workgroupBarrier();
  return total;
}
