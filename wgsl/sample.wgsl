// Next-token choice per row of logits [ROWS, V] (f32, row-major), one workgroup per row. Needs
// wgsl/common.wgsl prepended.
//   TEMP = 0: greedy, the index of the largest logit, ties to the lowest index (torch.argmax).
//   TEMP > 0: a draw from softmax(l / TEMP) by inversion: u ∈ [0, 1) from Philox4x32-10 with
//             counter (row, step, 0, 0) and key (seed, 0), u = (x₀ >> 8)·2⁻²⁴; the token is the
//             smallest v with Σ_{w ≤ v} e^((l_w − m)/TEMP) > u · Σ_w e^((l_w − m)/TEMP).
// The token goes to next[row]; with APPEND also to tokens[row, pos[row] + 1] (when < CAP), and
// pos[row] advances by one: pos holds the position of each row's last token, which the next
// decoding step reads (positions.wgsl, "offset" mode with SEQ 1).
// Logits larger than a binding come in row ranges: ROWS rows from element L_OFF, global rows R0...
override ROWS: u32 = 1u;
override V: u32 = 1u;
override R0: u32 = 0u;
override L_OFF: u32 = 0u;
override TEMP: f32 = 0.0;
override APPEND: bool = false;
override CAP: u32 = 1u;
const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<storage, read> logits: array<f32>;      // [ROWS, V]
@group(0) @binding(1) var<storage, read> params: array<u32>;      // [2]: seed, step
@group(0) @binding(2) var<storage, read_write> next: array<u32>;  // [rows] chosen token
@group(0) @binding(3) var<storage, read_write> tokens: array<u32>; // [rows, CAP] (APPEND)
@group(0) @binding(4) var<storage, read_write> pos: array<u32>;   // [rows] (APPEND)

var<workgroup> red_v: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;
var<workgroup> chosen: atomic<u32>;

fn weight(l: f32, m: f32) -> f32 {
  return exp((l - m) / TEMP);
}

@compute @workgroup_size(WG)
fn sample(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = w.x + w.y * 65535u;
  if (row >= ROWS) { return; }
  let r = R0 + row;
  let o = L_OFF + row * V;
  // Largest logit and its lowest index: each invocation scans its indices in increasing order.
  var best = -3.4e38;
  var bi = NONE;
  for (var v = lid; v < V; v += WG) {
    let l = logits[o + v];
    if (l > best || bi == NONE) { best = l; bi = v; }
  }
  red_v[lid] = best;
  red_i[lid] = bi;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) {
      let v2 = red_v[lid + h];
      let i2 = red_i[lid + h];
      if (i2 != NONE && (red_i[lid] == NONE || v2 > red_v[lid] || (v2 == red_v[lid] && i2 < red_i[lid]))) {
        red_v[lid] = v2;
        red_i[lid] = i2;
      }
    }
    workgroupBarrier();
  }
  var token = red_i[0];
  if (TEMP > 0.0) {
    let m = red_v[0];
    // Each invocation sums the weights of a contiguous chunk; the chunk holding the goal is
    // walked again in the same order.
    let chunk = (V + WG - 1u) / WG;
    let k0 = min(lid * chunk, V);
    let k1 = min(k0 + chunk, V);
    var s = 0.0;
    for (var v = k0; v < k1; v++) { s += weight(logits[o + v], m); }
    workgroupBarrier();
    red_v[lid] = s;
    if (lid == 0u) { atomicStore(&chosen, NONE); }
    workgroupBarrier();
    var prefix = 0.0;
    var total = 0.0;
    var last_nz = 0u;
    for (var i = 0u; i < WG; i++) {
      if (i == lid) { prefix = total; }
      total += red_v[i];
      if (red_v[i] > 0.0) { last_nz = i; }
    }
    let x = philox(vec4<u32>(r, params[1], 0u, 0u), vec2<u32>(params[0], 0u));
    let goal = f32(x.x >> 8u) * 5.9604645e-08 * total;
    // prefix + s as the next invocation's prefix was summed, so exactly one invocation owns it.
    var next_prefix = 0.0;
    for (var i = 0u; i <= lid; i++) { next_prefix += red_v[i]; }
    if (s > 0.0 && prefix <= goal && (goal < next_prefix || lid == last_nz)) {
      var acc = prefix;
      var found = NONE;
      var last = NONE;
      for (var v = k0; v < k1; v++) {
        let e = weight(logits[o + v], m);
        acc += e;
        if (e > 0.0) {
          last = v;
          if (acc > goal) { found = v; break; }
        }
      }
      atomicMin(&chosen, select(last, found, found != NONE));
    }
    workgroupBarrier();
    token = atomicLoad(&chosen);
  }
  if (lid == 0u) {
    next[r] = token;
    if (APPEND) {
      let p = pos[r] + 1u;
      if (p < CAP) { tokens[r * CAP + p] = token; }
      pos[r] = p;
    }
  }
}
