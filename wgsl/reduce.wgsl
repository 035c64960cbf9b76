// Column reductions over row-major [R, C] matrices, one invocation per column; loops over rows run
// in chunks of CHUNK (wgsl/common.wgsl).
override R: u32 = 64u;          // rows
override C: u32 = 64u;          // columns
override OUT_SCALE: f32 = 1.0;  // col_sum: out = OUT_SCALE · Σ_r in[r, c]
override APPLY_B_DEC: bool = true;
override K2: u32 = 64u;         // bdec_grad: rows of W_enc (d_sae) in this part
// A dispatch over part of a large buffer (src/gpu/split.ts): `a` / `w_enc` start at element A_OFF /
// W_OFF of their bindings; ACCUM adds this part's sums to `out` instead of overwriting it, and
// I0 is the index of this part's first W_enc row in g_benc.
override ACCUM: bool = false;
override A_OFF: u32 = 0u;
override W_OFF: u32 = 0u;
override I0: u32 = 0u;

@group(0) @binding(0) var<storage, read> a: array<f32>;            // [R, C]
@group(0) @binding(1) var<storage, read_write> out: array<f32>;    // col_sum: [C]; feature_stats: [C, 2]
@group(0) @binding(2) var<storage, read> g_benc: array<f32>;       // [K2] dL/db_enc
@group(0) @binding(3) var<storage, read> w_enc: array<f32>;        // [K2, C]
@group(0) @binding(4) var<storage, read_write> last_fired: array<u32>; // [C] step a latent last fired
@group(0) @binding(5) var<storage, read> st: State;

fn column(g: vec3<u32>, nw: vec3<u32>) -> u32 {
  return g.x + g.y * nw.x * WG;
}

fn col_total(c: u32) -> f32 {
  var s = 0.0;
  for (var r0 = 0u; r0 < R; r0 += CHUNK) {
    let r1 = min(r0 + CHUNK, R);
    for (var r = r0; r < r1; r++) { s += a[A_OFF + r * C + c]; }
  }
  return s;
}

// out[c] = OUT_SCALE · Σ_r a[r, c]: the batch mean of x, dL/db_enc = Σ_b dL/dpre.
@compute @workgroup_size(WG)
fn col_sum(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let c = column(g, nw);
  if (c >= C) { return; }
  let v = OUT_SCALE * col_total(c);
  out[c] = select(v, out[c] + v, ACCUM);
}

// dL/db_dec = Σ_b dL/dx̂_b − W_encᵀ·(dL/db_enc): b_dec reaches the loss through x̂ and, when it is
// subtracted from the input, through the encoder (dL/dxc summed over the batch is dL/db_enc·W_enc).
@compute @workgroup_size(WG)
fn bdec_grad(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let c = column(g, nw);
  if (c >= C) { return; }
  var s = 0.0;
  if (ACCUM) { s = out[c]; } else { s = col_total(c); }
  if (APPLY_B_DEC) {
    var t = 0.0;
    for (var i0 = 0u; i0 < K2; i0 += CHUNK) {
      let i1 = min(i0 + CHUNK, K2);
      for (var i = i0; i < i1; i++) { t += g_benc[I0 + i] * w_enc[W_OFF + i * C + c]; }
    }
    s -= t;
  }
  out[c] = s;
}

// Per latent c of f [R, C]: out[c] = (number of rows with f > 0, Σ_r f); last_fired[c] = step.
@compute @workgroup_size(WG)
fn feature_stats(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let c = column(g, nw);
  if (c >= C) { return; }
  var n = 0.0;
  var s = 0.0;
  for (var r0 = 0u; r0 < R; r0 += CHUNK) {
    let r1 = min(r0 + CHUNK, R);
    for (var r = r0; r < r1; r++) {
      let v = a[A_OFF + r * C + c];
      n += select(0.0, 1.0, v > 0.0);
      s += v;
    }
  }
  if (ACCUM) {
    out[2u * c] += n;
    out[2u * c + 1u] += s;
  } else {
    out[2u * c] = n;
    out[2u * c + 1u] = s;
  }
  if (n > 0.0) { last_fired[c] = st.step; }
}
