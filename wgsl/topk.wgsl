// Top-k selections of the TopK, BatchTopK and AuxK SAEs (src/kernels/topk.ts builds them; the
// definitions they follow, with sources, are in docs/architectures.md). Needs wgsl/common.wgsl and
// one of the collectives files in front (src/kernels/collectives.ts).
//
// Order: an entry ranks above another when its key is larger, or the keys are equal and its index
// is lower; the top k are the first k in this order, so exactly min(k, #candidates) are kept and
// ties at the boundary go to the lowest indices (same input, same selection, on every adapter).
// The key is the f32 (ReLU'd first where RELU_BEFORE) mapped to a u32 of the same order, −0 as +0.
//
// Selection is a radix select on the keys, 8 bits a pass from the top: a histogram of the
// candidates that share the digits found so far, then the digit whose bin holds the rank sought.
// It stops when that bin is kept whole, or holds at most WG candidates: those are gathered and
// ranked directly (key, then index), which settles the last key kept and, among its equal keys, the
// last index. A bin of more than WG equal keys (ties) at full resolution goes to a second radix
// select on those ties' reversed indices. No pass sorts; the kept entries are written in index
// order by a scan over contiguous segments of the row.
//
//   row_select     per row r of pre [R, M]: keep the top K (among mask[j] != 0 where HAS_MASK);
//                  f[r, :] = kept value or 0; the kept entries, ascending by index, to the lists
//   row_select_lane  the same, one invocation per row (CPU adapters)
//   lists_expand   the [B, K] lists as the sparse path's CSR (wgsl/sparse.wgsl: row r at r·M)
//   bt_*           BatchTopK: the top KB of the whole batch, by the same radix select with the
//                  histograms summed over rows (see the section below)
//   bt_theta, theta_spread: BatchTopK's running threshold and its copy into every latent's slot
//   dead_mask, aux_*: AuxK (see its section)

override R: u32 = 1u;        // rows of this dispatch (a part of the batch when split)
override M: u32 = 1u;        // latents per row (d_sae)
override ROW0: u32 = 0u;     // batch index of this dispatch's first row (lists, per-row outputs)
override PRE_OFF: u32 = 0u;  // element offset of row ROW0 in the pre binding (F_OFF: in f)
override F_OFF: u32 = 0u;
override K: u32 = 1u;        // entries kept per row; the lists' row length
override HAS_MASK: bool = false;
override RELU_BEFORE: bool = false; // rank ReLU(pre) (ties at 0 by index) instead of pre
override RELU_AFTER: bool = true;   // kept value ReLU(pre) instead of pre

@group(0) @binding(0) var<storage, read> pre: array<f32>;              // [R, M] pre-activations
@group(0) @binding(1) var<storage, read_write> f: array<f32>;          // [R, M] kept values, else 0
@group(0) @binding(2) var<storage, read> mask: array<u32>;             // [M] nonzero: a candidate
@group(0) @binding(3) var<storage, read_write> list_idx: array<u32>;   // [B, K] kept latents
@group(0) @binding(4) var<storage, read_write> list_val: array<f32>;   // [B, K] their values
@group(0) @binding(5) var<storage, read_write> list_cnt: array<u32>;   // [B] entries kept
@group(0) @binding(6) var<storage, read_write> csr_idx: array<u32>;    // [B, M] (lists_expand)
@group(0) @binding(7) var<storage, read_write> csr_cnt: array<u32>;    // [B]

const NB: u32 = 256u;      // bins of one 8-bit digit
const BPT: u32 = NB / WG;  // bins per invocation in the digit search

var<workgroup> hist: array<atomic<u32>, NB>;
var<workgroup> found: vec4<u32>;   // digit, rank left inside its bin, the bin's count, candidates
var<workgroup> gkey: array<u32, WG>; // a small bin's candidates: keys and indices
var<workgroup> gidx: array<u32, WG>;
var<workgroup> gn: atomic<u32>;
var<workgroup> gfound: vec2<u32>;
var<workgroup> bcast: u32;

// The u32 that orders like the f32 (−0 taken as +0).
fn orderKey(x: f32) -> u32 {
  var b = bitcast<u32>(x);
  if (b == 0x80000000u) { b = 0u; }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn rankedValue(v: f32) -> f32 {
  return select(v, max(v, 0.0), RELU_BEFORE);
}

fn keptValue(v: f32) -> f32 {
  return select(v, max(v, 0.0), RELU_BEFORE || RELU_AFTER);
}

fn candidate(j: u32) -> bool {
  return !HAS_MASK || mask[j] != 0u;
}

// `v` of lane 0 to every lane, uniform for the analysis (so it may steer barriers).
fn uniformU32(v: u32, l: Lanes) -> u32 {
  if (l.lid == 0u) { bcast = v; }
  return workgroupUniformLoad(&bcast);
}

// With this pass's counts in hist: the bin b (from the top) with count(bins above b) < want ≤
// count(bins ≥ b), as found = (b, want − count above, hist[b], total); want is first cut to the
// total, and found = (0, 0, 0, total) when nothing is wanted.
fn pickDigit(want: u32, l: Lanes) -> vec4<u32> {
  var h: array<u32, BPT>;
  var c = 0u;
  for (var i = 0u; i < BPT; i++) {
    h[i] = atomicLoad(&hist[l.lid * BPT + i]);
    c += h[i];
  }
  let s = wgc_scan(c, l);
  let w = min(want, s.y);
  if (l.lid == 0u) { found = vec4<u32>(0u, 0u, 0u, s.y); }
  workgroupBarrier();
  var above = s.y - s.x - c;
  for (var i = BPT; i > 0u; i--) {
    let n = h[i - 1u];
    if (above < w && w <= above + n) { found = vec4<u32>(l.lid * BPT + i - 1u, w - above, n, s.y); }
    above += n;
  }
  return workgroupUniformLoad(&found);
}

fn clearHist(l: Lanes) {
  for (var b = l.lid; b < NB; b += WG) { atomicStore(&hist[b], 0u); }
  workgroupBarrier();
}

// The outcome of a select, `kept` candidates in all: keys > hi are kept, and keys in [lo, hi] at
// indices below `end`; end = TIES: `left` of the `cnt` keys equal to lo = hi, the lowest-index ones
// (a second select finds where they end).
struct Sel {
  lo: u32,
  hi: u32,
  left: u32,
  cnt: u32,
  kept: u32,
  end: u32,
}

const TIES: u32 = 0xffffffffu;

// Where a radix select stands after the digit `fd` at `shift`: the bin kept whole, or a bin of
// equal keys cut.
fn selDone(prefix: u32, shift: u32, fd: vec4<u32>, kept: u32) -> Sel {
  let lo = prefix << shift;
  return Sel(lo, lo | ((1u << shift) - 1u), fd.y, fd.z, kept, select(TIES, M, fd.y == fd.z));
}

// Ranks a bin of at most WG candidates directly: gathers row r's candidates whose key shifted
// right by `shift` is `prefix` (the bin rowSelect just picked), and finds the left-th of them in
// rank order. Kept: keys above its key, and its key at indices up to its own.
fn rankBin(r: u32, src: u32, tie: u32, prefix: u32, shift: u32, left: u32, kept: u32, l: Lanes) -> Sel {
  if (l.lid == 0u) { atomicStore(&gn, 0u); }
  workgroupBarrier();
  for (var j = l.lid; j < M; j += WG) {
    if (candidate(j)) {
      let key = orderKey(rankedValue(pre[PRE_OFF + r * M + j]));
      let k = select(M - 1u - j, key, src == 0u);
      if ((src == 0u || key == tie) && (k >> shift) == prefix) {
        let e = atomicAdd(&gn, 1u);
        gkey[e] = k;
        gidx[e] = j;
      }
    }
  }
  workgroupBarrier();
  let n = atomicLoad(&gn);
  if (l.lid < n) {
    let k = gkey[l.lid];
    let j = gidx[l.lid];
    var rank = 0u;
    for (var e = 0u; e < n; e++) {
      rank += u32(gkey[e] > k || (gkey[e] == k && gidx[e] < j));
    }
    if (rank == left - 1u) { gfound = vec2<u32>(k, j); }
  }
  let g = workgroupUniformLoad(&gfound);
  return Sel(g.x, g.x, left, n, kept, g.y + 1u);
}

// The radix select over row r (local to this dispatch) of pre: src 0 ranks the candidates' keys,
// src 1 the reversed indices M−1−j of the candidates whose key is `tie` (so the lowest indices rank
// first). `top` is the shift of the first digit (keys: 24; indices: the top byte of M−1).
fn rowSelect(r: u32, want: u32, src: u32, tie: u32, top: u32, l: Lanes) -> Sel {
  var prefix = 0u;
  var left = want;
  var kept = 0u;
  for (var shift = top; ; shift -= 8u) {
    clearHist(l);
    for (var j = l.lid; j < M; j += WG) {
      if (candidate(j)) {
        let key = orderKey(rankedValue(pre[PRE_OFF + r * M + j]));
        let ok = src == 0u || key == tie;
        let k = select(M - 1u - j, key, src == 0u);
        if (ok && (shift == top || (k >> (shift + 8u)) == prefix)) {
          atomicAdd(&hist[(k >> shift) & 255u], 1u);
        }
      }
    }
    workgroupBarrier();
    let fd = pickDigit(left, l);
    if (shift == top) { kept = min(want, fd.w); }
    prefix = (prefix << 8u) | fd.x;
    left = fd.y;
    if (kept == 0u) { return Sel(0u, 0u, 0u, 0u, 0u, 0u); }
    if (fd.y == fd.z || (shift == 0u && fd.z > WG)) { return selDone(prefix, shift, fd, kept); }
    if (fd.z <= WG) { return rankBin(r, src, tie, prefix, shift, fd.y, kept, l); }
  }
  return Sel(0u, 0u, 0u, 0u, 0u, 0u); // not reached: shift reaches 0
}

// Shift of the top digit of an index below M.
fn indexTop() -> u32 {
  let bits = 32u - countLeadingZeros(max(M - 1u, 1u));
  return ((bits - 1u) / 8u) * 8u;
}

// Where row r's ties at key `tie` end when the lowest-index `want` of its `ties` are kept: those
// at indices below the returned one (the reversed-index select keeps reversed indices ≥ its lo).
fn tieEnd(r: u32, want: u32, ties: u32, tie: u32, l: Lanes) -> u32 {
  if (want == 0u) { return 0u; }
  if (want == ties) { return M; }
  return M - rowSelect(r, want, 1u, tie, indexTop(), l).lo;
}

fn keeps(key: u32, j: u32, s: Sel) -> bool {
  return s.kept > 0u && (key > s.hi || (key >= s.lo && j < s.end));
}

// One workgroup per row (r = w.x + w.y · nw.x). The kept entries go to the lists in index order:
// each lane counts those of its contiguous segment of the row, a scan places the segments.
@compute @workgroup_size(WG)
fn row_select(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, l: Lanes) {
  let r = w.x + w.y * nw.x;
  if (r >= R) { return; }
  var s = rowSelect(r, K, 0u, 0u, 24u, l);
  if (s.end == TIES) { s.end = tieEnd(r, s.left, s.cnt, s.lo, l); }
  let seg = (M + WG - 1u) / WG;
  let j0 = min(l.lid * seg, M);
  let j1 = min(j0 + seg, M);
  var c = 0u;
  for (var j = j0; j < j1; j++) {
    c += u32(candidate(j) && keeps(orderKey(rankedValue(pre[PRE_OFF + r * M + j])), j, s));
  }
  let at = wgc_scan(c, l);
  let row = (ROW0 + r) * K;
  var o = row + at.x;
  for (var j = j0; j < j1; j++) {
    let v = pre[PRE_OFF + r * M + j];
    let keep = candidate(j) && keeps(orderKey(rankedValue(v)), j, s);
    f[F_OFF + r * M + j] = select(0.0, keptValue(v), keep);
    if (keep) {
      list_idx[o] = j;
      list_val[o] = keptValue(v);
      o++;
    }
  }
  for (var e = at.y + l.lid; e < K; e += WG) {
    list_idx[row + e] = 0u;
    list_val[row + e] = 0.0;
  }
  if (l.lid == 0u) { list_cnt[ROW0 + r] = at.y; }
}

// The same selection with one invocation per row (CPU adapters, where a workgroup's barriers and
// atomics cost more than its lanes save, and rows are many): the radix select on a private
// histogram, all four digits, gives the k-th key T and how many of the keys equal to it are kept;
// one pass in index order then keeps the keys above T and the lowest-index ones equal to it. About
// 5·M loop iterations per invocation: rows up to LANE_MAX_M (src/kernels/topk.ts).
@compute @workgroup_size(WG)
fn row_select_lane(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let r = g.x + g.y * nw.x * WG;
  if (r >= R) { return; }
  var hist: array<u32, NB>;
  var t = 0u;     // the digits of T found so far
  var left = 0u;  // T's rank among the candidates that share them
  var kept = 0u;
  for (var shift = 24u; ; shift -= 8u) {
    for (var b = 0u; b < NB; b++) { hist[b] = 0u; }
    for (var j = 0u; j < M; j++) {
      if (candidate(j)) {
        let key = orderKey(rankedValue(pre[PRE_OFF + r * M + j]));
        if (shift == 24u || (key >> (shift + 8u)) == t) { hist[(key >> shift) & 255u] += 1u; }
      }
    }
    if (shift == 24u) {
      var total = 0u;
      for (var b = 0u; b < NB; b++) { total += hist[b]; }
      kept = min(K, total);
      left = kept;
      if (kept == 0u) { break; }
    }
    var b = NB - 1u;
    while (b > 0u && hist[b] < left) {
      left -= hist[b];
      b -= 1u;
    }
    t = (t << 8u) | b;
    if (shift == 0u) { break; }
  }
  let row = (ROW0 + r) * K;
  var o = 0u;
  var ties = 0u;
  for (var j = 0u; j < M; j++) {
    let v = pre[PRE_OFF + r * M + j];
    var keep = false;
    if (kept > 0u && candidate(j)) {
      let key = orderKey(rankedValue(v));
      keep = key > t || (key == t && ties < left);
      ties += u32(key == t);
    }
    f[F_OFF + r * M + j] = select(0.0, keptValue(v), keep);
    if (keep) {
      list_idx[row + o] = j;
      list_val[row + o] = keptValue(v);
      o++;
    }
  }
  for (var e = o; e < K; e++) {
    list_idx[row + e] = 0u;
    list_val[row + e] = 0.0;
  }
  list_cnt[ROW0 + r] = o;
}

// One invocation per row of the batch (R = B here): the row's listed entries (those with a
// positive value where POS_ONLY) at csr_idx[r·M ..], in order, and their number.
override POS_ONLY: bool = true;

@compute @workgroup_size(WG)
fn lists_expand(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let r = g.x + g.y * nw.x * WG;
  if (r >= R) { return; }
  var c = 0u;
  for (var e = 0u; e < list_cnt[r]; e++) {
    if (!POS_ONLY || list_val[r * K + e] > 0.0) {
      csr_idx[r * M + c] = list_idx[r * K + e];
      c++;
    }
  }
  csr_cnt[r] = c;
}

// --- BatchTopK ---------------------------------------------------------------------------------
// The top KB = floor(k·B) of ReLU(pre) over the whole batch (RELU_BEFORE), by the radix select
// above with the histograms summed over rows:
//   bt_init    clears the selection state
//   bt_hist    (pass PASS) each row's workgroup histograms its entries that share the digits found
//              so far and adds its bins into the state's histogram
//   bt_pick    (pass PASS) one workgroup picks the digit; the select ends when the bin is kept
//              whole or fully resolved (later passes then return at once)
//   bt_ties    where the boundary bin is cut (ties at one key): each row counts its ties
//   bt_quota   a scan over rows gives each row its share of the ties kept, lowest rows first
//   bt_keep    f = ReLU(pre) where kept, else 0; a row whose share is partial keeps its lowest
//              indices (the row's index select); the smallest positive kept value goes to the state
//   bt_theta   the running threshold θ ← KEEP·θ + RATE·(that value) (rules in src/kernels/topk.ts)

override KB: u32 = 1u;       // entries kept over the batch
override PASS: u32 = 0u;     // digit of this bt_hist / bt_pick, 0 the top one
override B_ROWS: u32 = 1u;   // rows of the whole batch

const SEL_PREFIX: u32 = 0u;  // digits found so far
const SEL_LEFT: u32 = 1u;    // rank sought inside the current bin; at the end: entries of [lo, hi] kept
const SEL_DONE: u32 = 2u;
const SEL_LO: u32 = 3u;      // at the end: keys > hi kept, `left` of the `cnt` keys in [lo, hi]
const SEL_HI: u32 = 4u;
const SEL_CNT: u32 = 5u;
const SEL_KEPT: u32 = 6u;    // min(KB, B·M)
const SEL_MINPOS: u32 = 7u;  // bits of the smallest positive kept value (0xffffffff: none)
const SEL_HIST: u32 = 8u;    // NB bins

@group(0) @binding(8) var<storage, read_write> sel: array<atomic<u32>>; // [SEL_HIST + NB]
@group(0) @binding(9) var<storage, read_write> row_ties: array<u32>;    // [2·B_ROWS]: ties, shares

var<workgroup> bt_sh: array<u32, 8>;
var<workgroup> wmin: atomic<u32>;

// The state's words, uniform across the workgroup.
fn btState(l: Lanes) -> array<u32, 8> {
  if (l.lid == 0u) {
    for (var i = 0u; i < 8u; i++) { bt_sh[i] = atomicLoad(&sel[i]); }
  }
  return workgroupUniformLoad(&bt_sh);
}

// One workgroup.
@compute @workgroup_size(WG)
fn bt_init(l: Lanes) {
  for (var i = l.lid; i < SEL_HIST + NB; i += WG) {
    atomicStore(&sel[i], select(0u, 0xffffffffu, i == SEL_MINPOS));
  }
}

// One workgroup per row.
@compute @workgroup_size(WG)
fn bt_hist(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, l: Lanes) {
  let r = w.x + w.y * nw.x;
  if (r >= R) { return; }
  let bs = btState(l);
  if (bs[SEL_DONE] != 0u) { return; }
  let shift = 24u - 8u * PASS;
  clearHist(l);
  for (var j = l.lid; j < M; j += WG) {
    let key = orderKey(rankedValue(pre[PRE_OFF + r * M + j]));
    if (PASS == 0u || (key >> min(shift + 8u, 31u)) == bs[SEL_PREFIX]) {
      atomicAdd(&hist[(key >> shift) & 255u], 1u);
    }
  }
  workgroupBarrier();
  for (var b = l.lid; b < NB; b += WG) {
    let c = atomicLoad(&hist[b]);
    if (c > 0u) { atomicAdd(&sel[SEL_HIST + b], c); }
  }
}

// One workgroup; leaves the state's histogram cleared for the next pass.
@compute @workgroup_size(WG)
fn bt_pick(l: Lanes) {
  let bs = btState(l);
  if (bs[SEL_DONE] != 0u) { return; }
  let shift = 24u - 8u * PASS;
  for (var b = l.lid; b < NB; b += WG) {
    atomicStore(&hist[b], atomicExchange(&sel[SEL_HIST + b], 0u));
  }
  workgroupBarrier();
  let fd = pickDigit(select(bs[SEL_LEFT], KB, PASS == 0u), l);
  if (l.lid == 0u) {
    let kept = select(bs[SEL_KEPT], min(KB, fd.w), PASS == 0u);
    let prefix = (bs[SEL_PREFIX] << 8u) | fd.x;
    atomicStore(&sel[SEL_KEPT], kept);
    atomicStore(&sel[SEL_PREFIX], prefix);
    atomicStore(&sel[SEL_LEFT], fd.y);
    if (kept == 0u || fd.y == fd.z || shift == 0u) {
      let s = selDone(prefix, shift, fd, kept);
      atomicStore(&sel[SEL_LO], s.lo);
      atomicStore(&sel[SEL_HI], s.hi);
      atomicStore(&sel[SEL_CNT], s.cnt);
      atomicStore(&sel[SEL_DONE], 1u);
    }
  }
}

// One workgroup per row.
@compute @workgroup_size(WG)
fn bt_ties(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, l: Lanes) {
  let r = w.x + w.y * nw.x;
  if (r >= R) { return; }
  let bs = btState(l);
  if (bs[SEL_LEFT] == bs[SEL_CNT]) { return; }
  var c = 0u;
  for (var j = l.lid; j < M; j += WG) {
    c += u32(orderKey(rankedValue(pre[PRE_OFF + r * M + j])) == bs[SEL_LO]);
  }
  let total = wgc_scan(c, l).y;
  if (l.lid == 0u) { row_ties[ROW0 + r] = total; }
}

// One workgroup: row r keeps min(ties_r, left − ties of the rows before it) of its ties.
@compute @workgroup_size(WG)
fn bt_quota(l: Lanes) {
  let bs = btState(l);
  if (bs[SEL_LEFT] == bs[SEL_CNT]) { return; }
  let left = bs[SEL_LEFT];
  var carry = 0u;
  for (var base = 0u; base < B_ROWS; base += WG) {
    let r = base + l.lid;
    let c = select(0u, row_ties[r], r < B_ROWS);
    let s = wgc_scan(c, l);
    let before = min(carry + s.x, left);
    if (r < B_ROWS) { row_ties[B_ROWS + r] = min(c, left - before); }
    carry += s.y;
  }
}

// One workgroup per row.
@compute @workgroup_size(WG)
fn bt_keep(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, l: Lanes) {
  let r = w.x + w.y * nw.x;
  if (r >= R) { return; }
  let bs = btState(l);
  // This row's ties at the boundary kept: all, none or its lowest-index `share`.
  var s = Sel(bs[SEL_LO], bs[SEL_HI], bs[SEL_LEFT], bs[SEL_CNT], bs[SEL_KEPT], M);
  if (s.left != s.cnt) {
    let share = uniformU32(row_ties[B_ROWS + ROW0 + r], l);
    s.end = tieEnd(r, share, uniformU32(row_ties[ROW0 + r], l), s.lo, l);
  }
  if (l.lid == 0u) { atomicStore(&wmin, 0xffffffffu); }
  workgroupBarrier();
  var mn = 0xffffffffu;
  for (var j = l.lid; j < M; j += WG) {
    let v = pre[PRE_OFF + r * M + j];
    let keep = keeps(orderKey(rankedValue(v)), j, s);
    let out = keptValue(v);
    f[F_OFF + r * M + j] = select(0.0, out, keep);
    if (keep && out > 0.0) { mn = min(mn, bitcast<u32>(out)); }
  }
  atomicMin(&wmin, mn);
  workgroupBarrier();
  if (l.lid == 0u) {
    let m0 = atomicLoad(&wmin);
    if (m0 != 0xffffffffu) { atomicMin(&sel[SEL_MINPOS], m0); }
  }
}

// The per-row passes with one invocation per row (CPU adapters, rows up to LANE_MAX_M): the same
// state, counts and result as bt_hist, bt_ties and bt_keep. A row whose share of the boundary ties
// is partial keeps its lowest-index `share` of them, counted in index order.
fn btStateLane() -> array<u32, 8> {
  var out: array<u32, 8>;
  for (var i = 0u; i < 8u; i++) { out[i] = atomicLoad(&sel[i]); }
  return out;
}

@compute @workgroup_size(WG)
fn bt_hist_lane(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let r = g.x + g.y * nw.x * WG;
  if (r >= R) { return; }
  let bs = btStateLane();
  if (bs[SEL_DONE] != 0u) { return; }
  let shift = 24u - 8u * PASS;
  var h: array<u32, NB>;
  for (var j = 0u; j < M; j++) {
    let key = orderKey(rankedValue(pre[PRE_OFF + r * M + j]));
    if (PASS == 0u || (key >> min(shift + 8u, 31u)) == bs[SEL_PREFIX]) {
      h[(key >> shift) & 255u] += 1u;
    }
  }
  for (var b = 0u; b < NB; b++) {
    if (h[b] > 0u) { atomicAdd(&sel[SEL_HIST + b], h[b]); }
  }
}

@compute @workgroup_size(WG)
fn bt_ties_lane(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let r = g.x + g.y * nw.x * WG;
  if (r >= R) { return; }
  let bs = btStateLane();
  if (bs[SEL_LEFT] == bs[SEL_CNT]) { return; }
  var c = 0u;
  for (var j = 0u; j < M; j++) {
    c += u32(orderKey(rankedValue(pre[PRE_OFF + r * M + j])) == bs[SEL_LO]);
  }
  row_ties[ROW0 + r] = c;
}

@compute @workgroup_size(WG)
fn bt_keep_lane(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let r = g.x + g.y * nw.x * WG;
  if (r >= R) { return; }
  let bs = btStateLane();
  let lo = bs[SEL_LO];
  let hi = bs[SEL_HI];
  let share = select(M, row_ties[B_ROWS + ROW0 + r], bs[SEL_LEFT] != bs[SEL_CNT]);
  var ties = 0u;
  var mn = 0xffffffffu;
  for (var j = 0u; j < M; j++) {
    let v = pre[PRE_OFF + r * M + j];
    let key = orderKey(rankedValue(v));
    let inBin = key >= lo && key <= hi;
    let keep = bs[SEL_KEPT] > 0u && (key > hi || (inBin && ties < share));
    ties += u32(inBin);
    let out = keptValue(v);
    f[F_OFF + r * M + j] = select(0.0, out, keep);
    if (keep && out > 0.0) { mn = min(mn, bitcast<u32>(out)); }
  }
  if (mn != 0xffffffffu) { atomicMin(&sel[SEL_MINPOS], mn); }
}

override THETA_KEEP: f32 = 0.99;  // weight of the old θ
override THETA_RATE: f32 = 0.01;  // weight of the smallest positive kept value
override THETA_SKIP_EMPTY: bool = true; // SAELens: no update without a positive kept value
override THETA_INIT_NEG: bool = false;  // dictionary_learning: θ < 0 is replaced outright
override THETA_AFTER: u32 = 0u;   // update only once st.step > THETA_AFTER
override THETA_IDX: u32 = 0u;

@group(0) @binding(10) var<storage, read_write> theta: array<f32>;
@group(0) @binding(11) var<storage, read> st: State;

// One invocation.
@compute @workgroup_size(1)
fn bt_theta() {
  let mb = atomicLoad(&sel[SEL_MINPOS]);
  let has = mb != 0xffffffffu;
  if ((THETA_SKIP_EMPTY && !has) || st.step <= THETA_AFTER) { return; }
  let mn = select(0.0, bitcast<f32>(mb), has);
  let th = theta[THETA_IDX];
  theta[THETA_IDX] = select(THETA_KEEP * th + THETA_RATE * mn, mn, THETA_INIT_NEG && th < 0.0);
}

// One invocation per latent: every slot of theta takes slot THETA_IDX's value, so the [M] buffer
// holds the per-latent thresholds the inference encoder reads (R = M here).
@compute @workgroup_size(WG)
fn theta_spread(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i < R && i != THETA_IDX) { theta[i] = theta[THETA_IDX]; }
}

// --- AuxK --------------------------------------------------------------------------------------
// The auxiliary loss of TopK training (Gao et al. 2024 §A.2; SAELens `calculate_topk_aux_loss`):
// the k_aux dead latents with the largest pre-activations in each row (row_select with the dead
// mask, K = k_aux) reconstruct the residual e = x − x̂; the variant computes that reconstruction
// ê = auxf·W_dec (no b_dec) with the GEMM or the sparse kernels.
//   dead_mask  dead[j] = (st.step − last_fired[j] ≥ DEAD_STEPS); aux[AUX_NUM_DEAD] = Σ_j dead[j]
//   aux_var    (NORMALIZE) per column c: Σ_b (e[b, c] − mean_b e[b, c])²
//   aux_rows   per row: d = ê − e; row_loss = Σ d²; g = dL_aux/dê = 2·AUX_COEF·scale·d / (B·denom)
//   aux_total  aux[AUX_LOSS] = AUX_COEF·scale·Σ_r row_loss / (B·denom); aux[AUX_SCALE], [AUX_DENOM]
//   aux_grad   dpre[r, j] += g_r·W_dec[j] over row r's listed latents (· 1[value > 0] where
//              RELU_BEFORE: the selected values were ReLU'd)
//   aux_plan   the indirect workgroup counts of the other AuxK dispatches: as built, or zero on a
//              step without dead latents (their loss and gradient are 0 then: nothing to compute)
// scale = min(num_dead / k_aux, 1) where DEAD_SCALE (SAELens), else 1, and 0 without dead latents;
// denom = Σ_c aux_var / B where NORMALIZE (dictionary_learning, after OpenAI), else 1. A zero
// denominator gives loss and gradient 0 (dictionary_learning's nan_to_num of 0/0).

override DEAD_STEPS: u32 = 1u;
override D: u32 = 4u;              // d_in
override AUX_COEF: f32 = 1.0;
override K_AUX: f32 = 1.0;
override DEAD_SCALE: bool = true;
override NORMALIZE: bool = false;
override DP_OFF: u32 = 0u;         // element offset of row ROW0 in the dpre binding

const AUX_LOSS: u32 = 0u;
const AUX_SCALE: u32 = 1u;
const AUX_NUM_DEAD: u32 = 2u;
const AUX_DENOM: u32 = 3u;

@group(0) @binding(12) var<storage, read> last_fired: array<u32>;  // [M] step a latent last fired
@group(0) @binding(13) var<storage, read_write> dead: array<u32>;  // [M] 1: dead
@group(0) @binding(14) var<storage, read_write> aux: array<f32>;   // [4] AUX_*
@group(0) @binding(15) var<storage, read> x: array<f32>;           // [B, D] the step's input
@group(0) @binding(16) var<storage, read> xhat: array<f32>;        // [B, D] its reconstruction
@group(0) @binding(17) var<storage, read_write> colss: array<f32>; // [D] aux_var's sums
@group(0) @binding(18) var<storage, read> recons: array<f32>;      // [B, D] ê = auxf·W_dec
@group(0) @binding(19) var<storage, read_write> g_aux: array<f32>; // [B, D] dL_aux/dê
@group(0) @binding(20) var<storage, read_write> row_loss: array<f32>; // [B]
@group(0) @binding(21) var<storage, read> w_dec: array<f32>;       // [M, D]
@group(0) @binding(22) var<storage, read_write> dpre: array<f32>;  // [R, M] dL/dpre
@group(0) @binding(23) var<storage, read> g_aux4: array<vec4<f32>>; // g_aux as vec4s (D % 4 == 0)
@group(0) @binding(24) var<storage, read> w_dec4: array<vec4<f32>>; // w_dec as vec4s
@group(0) @binding(25) var<storage, read> plan_table: array<u32>;     // [3·N_ARGS] workgroup counts
@group(0) @binding(26) var<storage, read_write> plan_args: array<u32>; // [3·N_ARGS] indirect args

override N_ARGS: u32 = 1u;          // aux_plan: dispatches planned

// One workgroup.
@compute @workgroup_size(WG)
fn dead_mask(l: Lanes) {
  var c = 0u;
  for (var j = l.lid; j < M; j += WG) {
    let d = u32(st.step - last_fired[j] >= DEAD_STEPS);
    dead[j] = d;
    c += d;
  }
  let n = wgc_scan(c, l).y;
  if (l.lid == 0u) { aux[AUX_NUM_DEAD] = f32(n); }
}

// One invocation per planned dispatch.
@compute @workgroup_size(WG)
fn aux_plan(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= N_ARGS) { return; }
  let on = aux[AUX_NUM_DEAD] > 0.0;
  for (var c = 0u; c < 3u; c++) { plan_args[3u * i + c] = select(0u, plan_table[3u * i + c], on); }
}

fn residual(i: u32) -> f32 {
  return x[i] - xhat[i];
}

// One invocation per column (R = B).
@compute @workgroup_size(WG)
fn aux_var(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let c = gid.x + gid.y * nw.x * WG;
  if (c >= D) { return; }
  var s = 0.0;
  for (var b0 = 0u; b0 < R; b0 += CHUNK) {
    for (var b = b0; b < min(b0 + CHUNK, R); b++) { s += residual(b * D + c); }
  }
  let mu = s / f32(R);
  var v = 0.0;
  for (var b0 = 0u; b0 < R; b0 += CHUNK) {
    for (var b = b0; b < min(b0 + CHUNK, R); b++) {
      let e = residual(b * D + c) - mu;
      v += e * e;
    }
  }
  colss[c] = v;
}

// (scale, denom) of this step, every lane.
fn auxScale(l: Lanes) -> vec2<f32> {
  let nd = aux[AUX_NUM_DEAD];
  let scale = select(0.0, select(1.0, min(nd / K_AUX, 1.0), DEAD_SCALE), nd > 0.0);
  var denom = 1.0;
  if (NORMALIZE) {
    var p = 0.0;
    for (var c = l.lid; c < D; c += WG) { p += colss[c]; }
    denom = wgc_sum_f(p, l) / f32(R);
  }
  return vec2<f32>(scale, denom);
}

// One workgroup per row (R = B).
@compute @workgroup_size(WG)
fn aux_rows(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, l: Lanes) {
  let r = w.x + w.y * nw.x;
  if (r >= R) { return; }
  let sd = auxScale(l);
  let factor = select(0.0, 2.0 * AUX_COEF * sd.x / (f32(R) * sd.y), sd.y > 0.0);
  var s = 0.0;
  for (var c = l.lid; c < D; c += WG) {
    let i = r * D + c;
    let d = recons[i] - residual(i);
    s += d * d;
    g_aux[i] = factor * d;
  }
  let total = wgc_sum_f(s, l);
  if (l.lid == 0u) { row_loss[r] = total; }
}

// One workgroup (R = B).
@compute @workgroup_size(WG)
fn aux_total(l: Lanes) {
  let sd = auxScale(l);
  var p = 0.0;
  for (var r = l.lid; r < R; r += WG) { p += row_loss[r]; }
  let total = wgc_sum_f(p, l);
  if (l.lid == 0u) {
    aux[AUX_LOSS] = select(0.0, AUX_COEF * sd.x * total / (f32(R) * sd.y), sd.y > 0.0);
    aux[AUX_SCALE] = sd.x;
    aux[AUX_DENOM] = sd.y;
  }
}

// One workgroup per row of this part, one invocation per listed latent: its dot product with the
// row's g over W_dec's row, read a vec4 at a time (aux_grad4, D % 4 == 0) or a float.
fn auxDot(row: u32, j: u32) -> f32 {
  var acc = 0.0;
  for (var c = 0u; c < D; c++) { acc += g_aux[row * D + c] * w_dec[j * D + c]; }
  return acc;
}

fn auxDot4(row: u32, j: u32) -> f32 {
  let D4 = D / 4u;
  var acc = vec4<f32>();
  for (var c = 0u; c < D4; c++) { acc = fma(g_aux4[row * D4 + c], w_dec4[j * D4 + c], acc); }
  return (acc.x + acc.y) + (acc.z + acc.w);
}

// The latent of row `row`'s entry e, or M where it gets no gradient (a ReLU'd zero).
fn auxEntry(row: u32, e: u32) -> u32 {
  if (RELU_BEFORE && !(list_val[row * K + e] > 0.0)) { return M; }
  return list_idx[row * K + e];
}

@compute @workgroup_size(WG)
fn aux_grad(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, l: Lanes) {
  let r = w.x + w.y * nw.x;
  if (r >= R) { return; }
  for (var e = l.lid; e < list_cnt[ROW0 + r]; e += WG) {
    let j = auxEntry(ROW0 + r, e);
    if (j < M) { dpre[DP_OFF + r * M + j] += auxDot(ROW0 + r, j); }
  }
}

@compute @workgroup_size(WG)
fn aux_grad4(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, l: Lanes) {
  let r = w.x + w.y * nw.x;
  if (r >= R) { return; }
  for (var e = l.lid; e < list_cnt[ROW0 + r]; e += WG) {
    let j = auxEntry(ROW0 + r, e);
    if (j < M) { dpre[DP_OFF + r * M + j] += auxDot4(ROW0 + r, j); }
  }
}
