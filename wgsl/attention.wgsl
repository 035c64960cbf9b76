// Causal self-attention with grouped-query heads over a KV cache, and the kernel that writes new
// keys and values into the cache. Needs wgsl/common.wgsl and wgsl/positions.wgsl prepended.
//
// Shapes (f32, row-major; T = B·SEQ query tokens, token t = b·SEQ + s, at position p(t)):
//   q        [T, LDQ]            head h at columns OFFQ + h·HD ..; RoPE already applied
//   k_cache  [B, MAX_SEQ, NKV·HD] row p of sequence b holds the key at position p
//   v_cache  [B, MAX_SEQ, NKV·HD]
//   out      [T, NH·HD]
// Query head h reads KV head h / (NH/NKV). Key j is visible from a query at position p iff
// j ≤ p and (WINDOW = 0 or p − WINDOW < j). Score s = SCALE·q·k, then SOFTCAP·tanh(s/SOFTCAP) when
// SOFTCAP > 0; out = Σ_j softmax(s)_j v_j over the visible keys. A prefill is SEQ = context with
// positions 0..SEQ−1; an incremental decoding step is SEQ = 1 with the position of the new token,
// its key and value written to the cache first (kv_write).
override B: u32 = 1u;
override MAX_SEQ: u32 = 1u;
override NH: u32 = 1u;
override NKV: u32 = 1u;
override HD: u32 = 1u;
override SCALE: f32 = 1.0;
override SOFTCAP: f32 = 0.0;
override WINDOW: u32 = 0u;
override LDQ: u32 = 1u;
override OFFQ: u32 = 0u;
override LDK: u32 = 1u;   // kv_write: k_new [T, LDK], this head's keys from column OFFK
override OFFK: u32 = 0u;
override LDV: u32 = 1u;
override OFFV: u32 = 0u;
// Tile of attend: R query rows (a row = one query token × one head of a KV group) by BK keys.
override R: u32 = 16u;
override BK: u32 = 32u;
// Row stride of the key/value tile: one more than HD, so the lanes of a warp reading the same
// dimension of consecutive keys (the scores) hit different shared-memory banks.
override KS: u32 = HD + 1u;
// Output elements per invocation at most: R·HD ≤ WG·E_MAX (checked by src/kernels/attention.ts).
const E_MAX: u32 = 16u;
const NONE: u32 = 0xffffffffu;
const NEG: f32 = -1e30; // running max before any visible key (finite: WGSL may assume no infinities)

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k_cache: array<f32>;
@group(0) @binding(2) var<storage, read> v_cache: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<u32>;       // positions (positions.wgsl)
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@group(0) @binding(1) var<storage, read_write> k_cache_w: array<f32>; // kv_write's views of the cache
@group(0) @binding(2) var<storage, read_write> v_cache_w: array<f32>;
@group(0) @binding(5) var<storage, read> k_new: array<f32>;     // [T, LDK]
@group(0) @binding(6) var<storage, read> v_new: array<f32>;     // [T, LDV]

@group(0) @binding(0) var<storage, read> q4: array<vec4<f32>>;  // attend_lane's vec4 views
@group(0) @binding(1) var<storage, read> k4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>;

fn position(t: u32) -> u32 {
  let i = pos_index(t);
  return pos[i.x] + i.y;
}

// k_cache[b, p(t)] ← k_new[t], v_cache[b, p(t)] ← v_new[t]; one invocation per element. Positions
// ≥ MAX_SEQ are not written.
@compute @workgroup_size(WG)
fn kv_write(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  let kvw = NKV * HD;
  if (i >= B * SEQ * kvw) { return; }
  let t = i / kvw;
  let c = i % kvw;
  let p = position(t);
  if (p >= MAX_SEQ) { return; }
  let dst = ((t / SEQ) * MAX_SEQ + p) * kvw + c;
  k_cache_w[dst] = k_new[t * LDK + OFFK + c];
  v_cache_w[dst] = v_new[t * LDV + OFFV + c];
}

var<workgroup> qs: array<f32, R * HD>;    // the tile's queries, times SCALE
var<workgroup> kvs: array<f32, BK * KS>;  // a block of keys, then of values (row stride KS)
var<workgroup> ps: array<f32, R * BK>;    // the block's scores, then exp(s − running max)
var<workgroup> m_row: array<f32, R>;      // running max of each row's visible scores
var<workgroup> l_row: array<f32, R>;      // running Σ exp(s − m_row)
var<workgroup> a_row: array<f32, R>;      // exp(old max − new max): rescales the accumulators
var<workgroup> p_row: array<u32, R>;      // each row's query position (NONE past the last row)
var<workgroup> span: vec2<u32>;           // first and last key any row of the tile sees

fn visible(p: u32, j: u32) -> bool {
  return p != NONE && j <= p && (WINDOW == 0u || j + WINDOW > p);
}

// Flash-attention style: workgroup (x, y, z) takes rows x·R .. x·R + R − 1 of the SEQ·G rows of
// sequence z and KV head y (G = NH/NKV query heads share it; row = s·G + head in group), walks the
// keys the rows see in blocks of BK with an online softmax, and holds one R×BK block of scores at
// a time. Invocation i accumulates output elements i, i + WG, ... of the R×HD tile.
@compute @workgroup_size(WG)
fn attend(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let G = NH / NKV;
  let rows = SEQ * G;
  let kvh = w.y;
  let b = w.z;
  let row0 = w.x * R;
  let kvw = NKV * HD;
  for (var e = lid; e < R * HD; e += WG) {
    let gr = row0 + e / HD;
    var v = 0.0;
    if (gr < rows) {
      let t = b * SEQ + gr / G;
      v = q[t * LDQ + OFFQ + (kvh * G + gr % G) * HD + e % HD] * SCALE;
    }
    qs[e] = v;
  }
  if (lid < R) {
    let gr = row0 + lid;
    p_row[lid] = select(NONE, position(b * SEQ + gr / G), gr < rows);
    m_row[lid] = NEG;
    l_row[lid] = 0.0;
  }
  workgroupBarrier();
  if (lid == 0u) {
    var lo = NONE;
    var hi = 0u;
    for (var r = 0u; r < R; r++) {
      let p = p_row[r];
      if (p != NONE) {
        hi = max(hi, p);
        lo = min(lo, select(0u, p + 1u - WINDOW, WINDOW > 0u && p + 1u > WINDOW));
      }
    }
    span = vec2<u32>(lo, min(hi, MAX_SEQ - 1u));
  }
  let sp = workgroupUniformLoad(&span);
  var acc: array<f32, E_MAX>;
  for (var j0 = sp.x; j0 <= sp.y; j0 += BK) {
    for (var e = lid; e < BK * HD; e += WG) {
      let j = j0 + e / HD;
      var v = 0.0;
      if (j <= sp.y) { v = k_cache[(b * MAX_SEQ + j) * kvw + kvh * HD + e % HD]; }
      kvs[(e / HD) * KS + e % HD] = v;
    }
    workgroupBarrier();
    for (var e = lid; e < R * BK; e += WG) {
      let r = e / BK;
      let jj = e % BK;
      var s = 0.0;
      for (var d = 0u; d < HD; d++) { s += qs[r * HD + d] * kvs[jj * KS + d]; }
      if (SOFTCAP > 0.0) { s = SOFTCAP * tanh(clamp(s / SOFTCAP, -15.0, 15.0)); }
      ps[e] = s;
    }
    workgroupBarrier();
    // Online softmax, one invocation per row, while the others load the block's values.
    if (lid < R) {
      let p = p_row[lid];
      let m_old = m_row[lid];
      var m = m_old;
      for (var jj = 0u; jj < BK; jj++) {
        if (visible(p, j0 + jj)) { m = max(m, ps[lid * BK + jj]); }
      }
      let a = exp(m_old - m);
      var l = l_row[lid] * a;
      for (var jj = 0u; jj < BK; jj++) {
        var e = 0.0;
        if (visible(p, j0 + jj)) { e = exp(ps[lid * BK + jj] - m); }
        ps[lid * BK + jj] = e;
        l += e;
      }
      m_row[lid] = m;
      l_row[lid] = l;
      a_row[lid] = a;
    }
    for (var e = lid; e < BK * HD; e += WG) {
      let j = j0 + e / HD;
      var v = 0.0;
      if (j <= sp.y) { v = v_cache[(b * MAX_SEQ + j) * kvw + kvh * HD + e % HD]; }
      kvs[(e / HD) * KS + e % HD] = v;
    }
    workgroupBarrier();
    for (var i = 0u; i < E_MAX; i++) {
      let e = lid + i * WG;
      if (e < R * HD) {
        let r = e / HD;
        let d = e % HD;
        var o = acc[i] * a_row[r];
        for (var jj = 0u; jj < BK; jj++) { o += ps[r * BK + jj] * kvs[jj * KS + d]; }
        acc[i] = o;
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < E_MAX; i++) {
    let e = lid + i * WG;
    let gr = row0 + e / HD;
    if (e < R * HD && gr < rows) {
      let t = b * SEQ + gr / G;
      out[t * NH * HD + (kvh * G + gr % G) * HD + e % HD] = acc[i] / l_row[e / HD];
    }
  }
}

// attend_lane: the same attention with one invocation per (sequence, head, query), the queries of
// one head adjacent so that neighbouring invocations read the same keys, a vec4 at a time
// (HD, LDQ and OFFQ multiples of 4), and no workgroup memory or barriers: for CPU adapters, where
// a barrier is a context switch per SIMD group and every load of attend's shared tiles a gather
// (src/kernels/attention.ts picks it there). The online softmax runs key by key; the loop over
// keys is cut into chunks of at most CHUNK trips (lavapipe caps a loop at 65535).
const HD4_MAX: u32 = 64u; // head_dim ≤ 256

@compute @workgroup_size(WG)
fn attend_lane(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i >= B * NH * SEQ) { return; }
  let s = i % SEQ;
  let h = (i / SEQ) % NH;
  let b = i / (SEQ * NH);
  let t = b * SEQ + s;
  let p = position(t);
  let kvh = h / (NH / NKV);
  let hd4 = HD / 4u;
  var qv: array<vec4<f32>, HD4_MAX>;
  var acc: array<vec4<f32>, HD4_MAX>;
  let qo = (t * LDQ + OFFQ + h * HD) / 4u;
  for (var d = 0u; d < hd4; d++) { qv[d] = q4[qo + d] * SCALE; }
  let hi = min(p, MAX_SEQ - 1u);
  let lo = select(0u, p + 1u - WINDOW, WINDOW > 0u && p + 1u > WINDOW);
  var m = NEG;
  var l = 0.0;
  for (var j0 = lo; j0 <= hi; j0 += CHUNK) {
    let j1 = min(hi, j0 + CHUNK - 1u);
    for (var j = j0; j <= j1; j++) {
      let ko = ((b * MAX_SEQ + j) * NKV + kvh) * hd4;
      var dot4 = vec4<f32>(0.0);
      for (var d = 0u; d < hd4; d++) { dot4 += qv[d] * k4[ko + d]; }
      var sc = (dot4.x + dot4.y) + (dot4.z + dot4.w);
      if (SOFTCAP > 0.0) { sc = SOFTCAP * tanh(clamp(sc / SOFTCAP, -15.0, 15.0)); }
      let m_new = max(m, sc);
      let a = exp(m - m_new);
      let e = exp(sc - m_new);
      l = l * a + e;
      for (var d = 0u; d < hd4; d++) { acc[d] = acc[d] * a + e * v4[ko + d]; }
      m = m_new;
    }
  }
  let oo = (t * NH + h) * hd4;
  for (var d = 0u; d < hd4; d++) { out4[oo + d] = acc[d] / l; }
}
