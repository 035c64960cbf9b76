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

// Each lane sums the values of the lanes before it: WG reads of one broadcast word per lane and
// two barriers, fewer steps than a log-depth scan's 2·log2(WG) barriers at WG = 64 (on llvmpipe
// every barrier switches all lanes; on a GPU the reads are broadcasts).
fn wgc_scan(v: u32, l: Lanes) -> vec2<u32> {
  wgc_buf[l.lid] = v;
  workgroupBarrier();
  var before = 0u;
  var total = 0u;
  for (var i = 0u; i < WG; i++) {
    let p = wgc_buf[i];
    before += select(0u, p, i < l.lid);
    total += p;
  }
  workgroupBarrier();
  return vec2<u32>(before, total);
}

fn wgc_sum_f(v: f32, l: Lanes) -> f32 {
  return wg_sum4(vec4<f32>(v, 0.0, 0.0, 0.0), l.lid).x;
}
