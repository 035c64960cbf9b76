// Dead-latent resampling (dictionary_learning's `resample_steps`; src/kernels/resample.ts builds
// these, src/sae/resample.ts picks the latents and rows on the host at a resample step):
//   alive_norm  one workgroup: scal[0] = mean over the alive latents (dead[i] == 0) of ‖W_enc[i]‖
//   rows        one invocation per pair p < pairs[0] of (latent j, row r) = pairs[1 + 2p ..]:
//               v = x_c[r] (the step's encoder input); W_dec[j] = v/‖v‖;
//               W_enc[j] = ENC_SCALE·scal[0]·v/‖v‖ (NORMALIZE_ENC) or ENC_SCALE·scal[0]·v;
//               b_enc[j] = 0. A zero row leaves the latent as it was.
//   zero_rows   per pair: the Adam moments of latent j's row (ROW_LEN elements) set to 0

override M: u32 = 1u;       // latents
override D: u32 = 1u;       // d_in
override PAIRS: u32 = 1u;   // most pairs (the batch)
override ENC_SCALE: f32 = 0.2;
override NORMALIZE_ENC: bool = true;
override ROW_LEN: u32 = 1u; // zero_rows: elements per latent of the parameter

@group(0) @binding(0) var<storage, read_write> w_enc: array<f32>;  // [M, D]
@group(0) @binding(1) var<storage, read_write> b_enc: array<f32>;  // [M]
@group(0) @binding(2) var<storage, read_write> w_dec: array<f32>;  // [M, D]
@group(0) @binding(3) var<storage, read> xc: array<f32>;           // [B, D]
@group(0) @binding(4) var<storage, read> pairs: array<u32>;        // [1 + 2·PAIRS]: count, (j, r)…
@group(0) @binding(5) var<storage, read> dead: array<u32>;         // [M] 1: dead
@group(0) @binding(6) var<storage, read_write> scal: array<f32>;   // [1] mean alive ‖W_enc[i]‖
@group(0) @binding(7) var<storage, read_write> mom_m: array<f32>;  // [M·ROW_LEN] Adam m
@group(0) @binding(8) var<storage, read_write> mom_v: array<f32>;  // [M·ROW_LEN] Adam v

@compute @workgroup_size(RED_WG)
fn alive_norm(@builtin(local_invocation_index) t: u32) {
  var acc = vec4<f32>(0.0);
  for (var i = t; i < M; i += RED_WG) {
    if (dead[i] == 0u) {
      var s = 0.0;
      for (var k = 0u; k < D; k++) { s += w_enc[i * D + k] * w_enc[i * D + k]; }
      acc += vec4<f32>(sqrt(s), 1.0, 0.0, 0.0);
    }
  }
  let total = wg_sum4(acc, t);
  if (t == 0u) { scal[0] = select(0.0, total.x / total.y, total.y > 0.0); }
}

@compute @workgroup_size(WG)
fn rows(@builtin(global_invocation_id) g: vec3<u32>) {
  let p = g.x;
  if (p >= min(pairs[0], PAIRS)) { return; }
  let j = pairs[1u + 2u * p];
  let r = pairs[2u + 2u * p];
  var ss = 0.0;
  for (var k = 0u; k < D; k++) { ss += xc[r * D + k] * xc[r * D + k]; }
  if (!(ss > 0.0)) { return; }
  let inv = 1.0 / sqrt(ss);
  let enc = ENC_SCALE * scal[0] * select(1.0, inv, NORMALIZE_ENC);
  for (var k = 0u; k < D; k++) {
    let v = xc[r * D + k];
    w_dec[j * D + k] = v * inv;
    w_enc[j * D + k] = v * enc;
  }
  b_enc[j] = 0.0;
}

@compute @workgroup_size(WG)
fn zero_rows(@builtin(global_invocation_id) g: vec3<u32>) {
  let p = g.x;
  if (p >= min(pairs[0], PAIRS)) { return; }
  let j = pairs[1u + 2u * p];
  for (var k = 0u; k < ROW_LEN; k++) {
    mom_m[j * ROW_LEN + k] = 0.0;
    mom_v[j * ROW_LEN + k] = 0.0;
  }
}
