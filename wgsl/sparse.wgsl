// Sparse latents: the step's products with f (and dL/dpre, which is zero wherever f is) done over
// the active entries only, once few latents fire. src/kernels/sparse.ts builds them; every list is
// in increasing index order, so the sums run in a fixed order (same seed, same result).
//
//   csr_rows:  per row r of F [R, M]: cnt[r] = #{j : F[r,j] > 0}, idx[r·M ..] = those j, ascending
//   csc_cols:  per column j of F:     cnt[j] = #{r : F[r,j] > 0}, idx[j·R ..] = those r, ascending
//   spmm_rows: O[r, :] = Σ_{j in row r} F[r,j]·Y[j, :] + bias          (x̂ = f·W_dec + b_dec)
//   spmm_cols: O[j, :] = Σ_{r in col j} F[r,j]·Y[r, :]                 (dW = Fᵀ·Y, F = f or dpre)
//   col_stats: per column j of the CSC: fires, Σ F and Σ dL/dpre (the step's feature statistics
//              and dL/db_enc)
//   sddmm_rows: (after zero4 cleared F) for j in row r of the CSR,
//              F[r,j] = Σ_n X[r,n]·Y[j,n] + S[SCALAR_IDX]               (dL/dpre = (dx̂·W_decᵀ + λ1/B)·1[f>0])
//   plan:      nnz = Σ_r cnt[r]; sparse = nnz ≤ MAX_NNZ; args[i] = table[i] where the dispatch's
//              mode (0 dense, 1 sparse) is the chosen one, else 0 (indirect dispatch arguments);
//              acc[ACC_IDX] += 1 when sparse (the logged fraction of sparse steps)
// Rows of Y and O are D4 vec4s long (the width is a multiple of 4).

override R: u32 = 1u;  // rows of F (the batch)
override M: u32 = 1u;  // columns of F (d_sae)
override D4: u32 = 1u; // vec4s per row of Y and O
override SCALAR_IDX: u32 = 0u;
override N_ARGS: u32 = 1u; // indirect dispatches the plan writes
override MAX_NNZ: f32 = 0.0;

@group(0) @binding(0) var<storage, read> F: array<f32>;
@group(0) @binding(1) var<storage, read_write> idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> cnt: array<u32>;
@group(0) @binding(3) var<storage, read> lidx: array<u32>; // a CSR or CSC index list
@group(0) @binding(4) var<storage, read> lcnt: array<u32>; // and its counts
@group(0) @binding(5) var<storage, read> Y4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> O4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> bias4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> S: array<f32>;
@group(0) @binding(9) var<storage, read> X4: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> Fw: array<f32>;
@group(0) @binding(11) var<storage, read> table: array<u32>; // [N_ARGS·3] counts, then [N_ARGS] modes
@group(0) @binding(12) var<storage, read_write> args: array<u32>;
@group(0) @binding(13) var<storage, read_write> acc: array<f32>; // metric accumulators
override ACC_IDX: u32 = 0u; // the slot counting sparse steps

@group(0) @binding(14) var<storage, read> F4: array<vec4<f32>>; // F as vec4s (M % 4 == 0)

var<workgroup> part: array<u32, WG>;

fn nActive(v: vec4<f32>) -> u32 {
  return u32(v.x > 0.0) + u32(v.y > 0.0) + u32(v.z > 0.0) + u32(v.w > 0.0);
}

// The scan of the CSR builders: invocation t's segment holds c active entries of row r; returns
// where in idx its entries go (r·M + the counts of the segments before it) and stores the row's
// count. Called by every invocation of the workgroup (it holds a barrier).
fn segmentStart(r: u32, t: u32, c: u32) -> u32 {
  part[t] = c;
  workgroupBarrier();
  var off = 0u;
  for (var i = 0u; i < t; i++) { off += part[i]; }
  if (r < R && t == WG - 1u) { cnt[r] = off + c; }
  return r * M + off;
}

// One workgroup per row r (folded: r = w.x + w.y · nw.x); each invocation counts a contiguous
// segment of the row, the segments' offsets come from a scan of the counts. csr_rows4 reads F a
// vec4 at a time (M % 4 == 0), csr_rows one float.
@compute @workgroup_size(WG)
fn csr_rows4(
  @builtin(workgroup_id) w: vec3<u32>,
  @builtin(num_workgroups) nw: vec3<u32>,
  @builtin(local_invocation_index) t: u32,
) {
  let r = w.x + w.y * nw.x;
  let M4 = M / 4u;
  let seg = (M4 + WG - 1u) / WG;
  let q0 = select(M4, min(t * seg, M4), r < R); // rows past R: empty segments
  let q1 = min(q0 + seg, M4);
  var c = 0u;
  for (var q = q0; q < q1; q++) { c += nActive(F4[r * M4 + q]); }
  var o = segmentStart(r, t, c);
  for (var q = q0; q < q1; q++) {
    let v = F4[r * M4 + q];
    for (var k = 0u; k < 4u; k++) {
      if (v[k] > 0.0) {
        idx[o] = 4u * q + k;
        o++;
      }
    }
  }
}

@compute @workgroup_size(WG)
fn csr_rows(
  @builtin(workgroup_id) w: vec3<u32>,
  @builtin(num_workgroups) nw: vec3<u32>,
  @builtin(local_invocation_index) t: u32,
) {
  let r = w.x + w.y * nw.x;
  let seg = (M + WG - 1u) / WG;
  let j0 = select(M, min(t * seg, M), r < R);
  let j1 = min(j0 + seg, M);
  var c = 0u;
  for (var j = j0; j < j1; j++) { c += u32(F[r * M + j] > 0.0); }
  var o = segmentStart(r, t, c);
  for (var j = j0; j < j1; j++) {
    if (F[r * M + j] > 0.0) {
      idx[o] = j;
      o++;
    }
  }
}

// One invocation per column j.
@compute @workgroup_size(WG)
fn csc_cols(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let j = g.x + g.y * nw.x * WG;
  if (j >= M) { return; }
  var c = 0u;
  for (var r = 0u; r < R; r++) {
    if (F[r * M + j] > 0.0) {
      idx[j * R + c] = r;
      c++;
    }
  }
  cnt[j] = c;
}

// spmm_rows / spmm_cols: one workgroup of SPMM_WG invocations per output row; invocation t owns
// the row's vec4s t, t + SPMM_WG, .. (up to CPL of them), all summed in one pass over the entry
// list, so each entry's index and coefficient are loaded once per invocation (src/kernels/sparse.ts
// picks the fewest invocations that keep CPL ≤ 4).
override SPMM_WG: u32 = 64u;
override CPL: u32 = 1u; // vec4s per invocation: ceil(D4 / SPMM_WG), at most 4

fn c4At(t: u32, i: u32) -> u32 {
  return min(t + i * SPMM_WG, D4 - 1u); // clamped: an idle slot re-reads the last vec4
}

// Invocation t's up to 4 vec4s of one output row.
struct Part {
  a: array<vec4<f32>, 4>,
}

// Row `o` of O: Σ over the list lidx[base ..][..n] of (entry k) F[o, k]·Y[k, :] when byRow, else
// F[k, o]·Y[k, :]: invocation t's vec4s.
fn spmm(o: u32, base: u32, n: u32, byRow: bool, t: u32) -> Part {
  let c0 = c4At(t, 0u);
  let c1 = c4At(t, 1u);
  let c2 = c4At(t, 2u);
  let c3 = c4At(t, 3u);
  var a0 = vec4<f32>();
  var a1 = vec4<f32>();
  var a2 = vec4<f32>();
  var a3 = vec4<f32>();
  for (var e = 0u; e < n; e++) {
    let k = lidx[base + e];
    let v = vec4<f32>(F[select(k * M + o, o * M + k, byRow)]);
    let y = k * D4;
    a0 = fma(v, Y4[y + c0], a0);
    if (CPL > 1u) { a1 = fma(v, Y4[y + c1], a1); }
    if (CPL > 2u) { a2 = fma(v, Y4[y + c2], a2); }
    if (CPL > 3u) { a3 = fma(v, Y4[y + c3], a3); }
  }
  return Part(array<vec4<f32>, 4>(a0, a1, a2, a3));
}

fn storeRow(o: u32, t: u32, p: Part) {
  let sw = SPMM_WG;
  if (t < D4) { O4[o * D4 + t] = p.a[0]; }
  if (CPL > 1u && t + sw < D4) { O4[o * D4 + t + sw] = p.a[1]; }
  if (CPL > 2u && t + 2u * sw < D4) { O4[o * D4 + t + 2u * sw] = p.a[2]; }
  if (CPL > 3u && t + 3u * sw < D4) { O4[o * D4 + t + 3u * sw] = p.a[3]; }
}

@compute @workgroup_size(SPMM_WG)
fn spmm_rows(
  @builtin(workgroup_id) w: vec3<u32>,
  @builtin(num_workgroups) nw: vec3<u32>,
  @builtin(local_invocation_index) t: u32,
) {
  let r = w.x + w.y * nw.x;
  if (r >= R) { return; }
  var p = spmm(r, r * M, lcnt[r], true, t);
  for (var i = 0u; i < 4u; i++) { p.a[i] += bias4[c4At(t, i)]; }
  storeRow(r, t, p);
}

@compute @workgroup_size(SPMM_WG)
fn spmm_cols(
  @builtin(workgroup_id) w: vec3<u32>,
  @builtin(num_workgroups) nw: vec3<u32>,
  @builtin(local_invocation_index) t: u32,
) {
  let j = w.x + w.y * nw.x;
  if (j < M) { storeRow(j, t, spmm(j, j * R, lcnt[j], false, t)); }
}

// zero4: O4[i] = 0 for i < D4 (one invocation per vec4): clears dL/dpre before sddmm_rows.
@compute @workgroup_size(WG)
fn zero4(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i < D4) { O4[i] = vec4<f32>(); }
}

// One workgroup per row r (zeroed before by zero4): one invocation per listed entry computes its
// dot product (X row r is the same for all of them).
@compute @workgroup_size(WG)
fn sddmm_rows(
  @builtin(workgroup_id) w: vec3<u32>,
  @builtin(num_workgroups) nw: vec3<u32>,
  @builtin(local_invocation_index) t: u32,
) {
  let r = w.x + w.y * nw.x;
  if (r >= R) { return; }
  // zero4 cleared whole vec4s: the last row clears the R·M % 4 floats after them.
  let tail = (R * M) % 4u;
  if (r == R - 1u && t < tail) { Fw[R * M - 1u - t] = 0.0; }
  storageBarrier();
  let n = lcnt[r];
  for (var e = t; e < n; e += WG) {
    let j = lidx[r * M + e];
    var acc = vec4<f32>();
    for (var c4 = 0u; c4 < D4; c4++) {
      acc = fma(X4[r * D4 + c4], Y4[j * D4 + c4], acc);
    }
    Fw[r * M + j] = (acc.x + acc.y) + (acc.z + acc.w) + S[SCALAR_IDX];
  }
}

// col_stats: per latent j over its CSC list, the feature statistics and dL/db_enc the dense step
// gets from full column passes:
// stats[j] = (fires, Σ_r f[r,j]); db_enc[j] = Σ_r dpre[r,j]; last_fired[j] = step if it fired.
@group(0) @binding(15) var<storage, read> Dp: array<f32>;              // dL/dpre [R, M]
@group(0) @binding(16) var<storage, read_write> stats: array<f32>;     // [M, 2]
@group(0) @binding(17) var<storage, read_write> db_enc: array<f32>;    // [M]
@group(0) @binding(18) var<storage, read_write> last_fired: array<u32>; // [M]
@group(0) @binding(19) var<storage, read> st: State;

@compute @workgroup_size(WG)
fn col_stats(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let j = g.x + g.y * nw.x * WG;
  if (j >= M) { return; }
  let n = lcnt[j];
  var sf = 0.0;
  var sd = 0.0;
  for (var e = 0u; e < n; e++) {
    let i = lidx[j * R + e] * M + j;
    sf += F[i];
    sd += Dp[i];
  }
  stats[2u * j] = f32(n);
  stats[2u * j + 1u] = sf;
  db_enc[j] = sd;
  if (n > 0u) { last_fired[j] = st.step; }
}

// One workgroup: chooses the path for this step and writes the indirect dispatch arguments.
@compute @workgroup_size(WG)
fn plan(@builtin(local_invocation_index) t: u32) {
  var s = 0u;
  for (var r = t; r < R; r += WG) { s += lcnt[r]; }
  let nnz = wg_sum_u32(s, t);
  let mode = select(0u, 1u, f32(nnz) <= MAX_NNZ);
  if (t == 0u) { acc[ACC_IDX] += f32(mode); }
  for (var i = t; i < N_ARGS; i += WG) {
    let on = table[3u * N_ARGS + i] == mode;
    for (var c = 0u; c < 3u; c++) {
      args[3u * i + c] = select(0u, table[3u * i + c], on);
    }
  }
}
