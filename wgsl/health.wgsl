// Parameter health check, once per step after the update: flags accumulator word 12
// (METRIC_INDEX.params_bad in src/kernels/metrics.ts) when any parameter is infinite or NaN. Each
// thread scans a grid-strided share of every parameter with integer tests on the bits and touches
// the flag (an atomic max) only when it found a bad value, so a healthy step writes nothing.
override N_WENC: u32 = 1u;
override N_BENC: u32 = 1u;
override N_WDEC: u32 = 1u;
override N_BDEC: u32 = 1u;
override STRIDE: u32 = 256u; // workgroups × HEALTH_WG
// A part over ranges of W_enc and W_dec larger than one binding (src/gpu/split.ts): they start at
// elements OFF_ENC / OFF_DEC of their bindings.
override OFF_ENC: u32 = 0u;
override OFF_DEC: u32 = 0u;
// Wider than WG: the grid (src/kernels/health.ts: ~16 elements an invocation, at most 1024
// workgroups) then needs a quarter of the workgroups.
const HEALTH_WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> w_enc: array<f32>;
@group(0) @binding(1) var<storage, read> b_enc: array<f32>;
@group(0) @binding(2) var<storage, read> w_dec: array<f32>;
@group(0) @binding(3) var<storage, read> b_dec: array<f32>;
@group(0) @binding(4) var<storage, read_write> acc: array<atomic<u32>>;

// 0 finite; the bit patterns of 1.0 (infinite) and 2.0 (NaN), so the host reads the word as f32
// and an atomic max on the bits is a max on the values.
fn code(x: f32) -> u32 {
  let bits = bitcast<u32>(x);
  if ((bits & 0x7f800000u) != 0x7f800000u) { return 0u; }
  return select(0x3f800000u, 0x40000000u, (bits & 0x007fffffu) != 0u);
}

@compute @workgroup_size(HEALTH_WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var m = 0u;
  for (var i = gid.x; i < N_WENC; i += STRIDE) { m = max(m, code(w_enc[OFF_ENC + i])); }
  for (var i = gid.x; i < N_BENC; i += STRIDE) { m = max(m, code(b_enc[i])); }
  for (var i = gid.x; i < N_WDEC; i += STRIDE) { m = max(m, code(w_dec[OFF_DEC + i])); }
  for (var i = gid.x; i < N_BDEC; i += STRIDE) { m = max(m, code(b_dec[i])); }
  if (m != 0u) { atomicMax(&acc[12], m); }
}
