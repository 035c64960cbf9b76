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
// It stops when that bin is kept whole; a bin cut at full resolution holds equal keys (ties), and
// a second radix select on the ties' indices finds the lowest ones. No pass sorts.
//
//   row_select     per row r of pre [R, M]: keep the top K (among mask[j] != 0 where HAS_MASK);
//                  f[r, :] = kept value or 0; the kept entries, ascending by index, to the lists
//   lists_expand   the [B, K] lists as the sparse path's CSR (wgsl/sparse.wgsl: row r at r·M)
//   bt_*           BatchTopK: the top KB of the whole batch, by the same radix select with the
//                  histograms summed over rows (see the section below)
//   dead_mask, aux_*: AuxK (see its section)

override R: u32 = 1u;        // rows of this dispatch (a part of the batch when split)
override M: u32 = 1u;        // latents per row (d_sae)
override ROW0: u32 = 0u;     // batch index of this dispatch's first row (lists, per-row outputs)
override PRE_OFF: u32 = 0u;  // element offset of row ROW0 in the pre / f / dpre bindings
override F_OFF: u32 = 0u;
override K: u32 = 1u;        // entries kept per row; the lists' row length
override CAP: u32 = 1u;      // power of two ≥ K: capacity of the workgroup's list
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
var<workgroup> wl_idx: array<u32, CAP>;
var<workgroup> wl_val: array<f32, CAP>;
var<workgroup> wl_n: atomic<u32>;
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

// The outcome of a select: keys > hi are kept; of the `cnt` keys in [lo, hi], `left` are
// (all of them when left == cnt); `kept` candidates in all.
struct Sel {
  lo: u32,
  hi: u32,
  left: u32,
  cnt: u32,
  kept: u32,
}

// Where a radix select stands after the digit `fd` at `shift`: finished when the bin is kept whole
// or fully resolved.
fn selDone(prefix: u32, shift: u32, fd: vec4<u32>, kept: u32) -> Sel {
  let lo = prefix << shift;
  return Sel(lo, lo | ((1u << shift) - 1u), fd.y, fd.z, kept);
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
    if (kept == 0u) { return Sel(0u, 0u, 0u, 0u, 0u); }
    if (fd.y == fd.z || shift == 0u) { return selDone(prefix, shift, fd, kept); }
  }
  return Sel(0u, 0u, 0u, 0u, 0u); // not reached: shift reaches 0
}

// Shift of the top digit of an index below M.
fn indexTop() -> u32 {
  let bits = 32u - countLeadingZeros(max(M - 1u, 1u));
  return ((bits - 1u) / 8u) * 8u;
}

// Ties at the boundary kept: those with index ≤ the returned one (M − 1: all of them).
fn lastTie(r: u32, s: Sel, l: Lanes) -> u32 {
  if (s.left == s.cnt) { return M - 1u; }
  let t = rowSelect(r, s.left, 1u, s.lo, indexTop(), l);
  return M - 1u - t.lo;
}

fn keeps(key: u32, j: u32, s: Sel, lastTieIdx: u32) -> bool {
  return s.kept > 0u && (key > s.hi || (key >= s.lo && j <= lastTieIdx));
}

// Sorts the workgroup list (wl_idx with wl_val, CAP entries, unused ones 0xffffffff) ascending by
// index: a bitonic network, one compare-exchange per pair per stage.
fn sortList(l: Lanes) {
  for (var size = 2u; size <= CAP; size <<= 1u) {
    for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
      for (var i = l.lid; i < CAP / 2u; i += WG) {
        let a = 2u * i - (i & (stride - 1u));
        let b = a + stride;
        let ia = wl_idx[a];
        let ib = wl_idx[b];
        if ((ia > ib) == ((a & size) == 0u)) {
          wl_idx[a] = ib;
          wl_idx[b] = ia;
          let va = wl_val[a];
          wl_val[a] = wl_val[b];
          wl_val[b] = va;
        }
      }
      workgroupBarrier();
    }
  }
}

// One workgroup per row (r = w.x + w.y · nw.x).
@compute @workgroup_size(WG)
fn row_select(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, l: Lanes) {
  let r = w.x + w.y * nw.x;
  if (r >= R) { return; }
  let s = rowSelect(r, K, 0u, 0u, 24u, l);
  let lastTieIdx = lastTie(r, s, l);
  if (l.lid == 0u) { atomicStore(&wl_n, 0u); }
  for (var e = l.lid; e < CAP; e += WG) { wl_idx[e] = 0xffffffffu; }
  workgroupBarrier();
  for (var j = l.lid; j < M; j += WG) {
    let v = pre[PRE_OFF + r * M + j];
    let keep = candidate(j) && keeps(orderKey(rankedValue(v)), j, s, lastTieIdx);
    f[F_OFF + r * M + j] = select(0.0, keptValue(v), keep);
    if (keep) {
      let e = atomicAdd(&wl_n, 1u);
      wl_idx[e] = j;
      wl_val[e] = keptValue(v);
    }
  }
  workgroupBarrier();
  sortList(l);
  let n = atomicLoad(&wl_n);
  let row = (ROW0 + r) * K;
  for (var e = l.lid; e < K; e += WG) {
    list_idx[row + e] = select(0u, wl_idx[e], e < n);
    list_val[row + e] = select(0.0, wl_val[e], e < n);
  }
  if (l.lid == 0u) { list_cnt[ROW0 + r] = n; }
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
