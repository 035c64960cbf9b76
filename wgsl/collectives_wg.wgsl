// Workgroup collectives, workgroup-memory version: what every adapter runs. wgsl/collectives_sg.wgsl
// defines the same names with subgroup operations; src/kernels/collectives.ts picks one of the
// two and prepends it (after wgsl/common.wgsl), so a kernel is written once against these names.
//
//   Lanes                    the builtins the collectives need: an entry point that calls them takes
//                            `l: Lanes` as a parameter and uses l.lid as its local_invocation_index
//   wgc_scan(v, l)           (exclusive prefix sum of v over the lanes in lid order, total)
//   wgc_sum_f(v, l)          Σ v over the workgroup, to every lane
// Call both from uniform control flow (they hold barriers).

struct Lanes {
  @builtin(local_invocation_index) lid: u32,
}

var<workgroup> wgc_buf: array<u32, WG>;

// Hillis-Steele scan: log2(WG) rounds of reading the partial sum d lanes back.
fn wgc_scan(v: u32, l: Lanes) -> vec2<u32> {
  var x = v;
  wgc_buf[l.lid] = x;
  workgroupBarrier();
  for (var d = 1u; d < WG; d <<= 1u) {
    var y = 0u;
    if (l.lid >= d) { y = wgc_buf[l.lid - d]; }
    workgroupBarrier();
    x += y;
    wgc_buf[l.lid] = x;
    workgroupBarrier();
  }
  let total = wgc_buf[WG - 1u];
  workgroupBarrier();
  return vec2<u32>(x - v, total);
}

fn wgc_sum_f(v: f32, l: Lanes) -> f32 {
  return wg_sum4(vec4<f32>(v, 0.0, 0.0, 0.0), l.lid).x;
}
