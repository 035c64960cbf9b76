// The adapter's limits, measured in the same run as the kernels they are compared with
// (bench/kernels_bench.ts):
//   fma_peak: 3 independent vec4 FMA chains per invocation, 8 FMAs per chain per loop trip, no
//             memory traffic inside the loop: 192 FLOPs per invocation per trip.
//   copy:     out[i] = src[i] over vec4s: bytes moved = 2 · 16 · N4.
override ITERS: u32 = 4096u;
override N4: u32 = 1u; // vec4 elements copied
const WG: u32 = 64u;

@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn fma_peak(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let x = vec4<f32>(0.999);
  let y = vec4<f32>(1e-4);
  var a0 = vec4<f32>(f32(lid) * 1e-3);
  var a1 = a0 + vec4<f32>(1e-3);
  var a2 = a0 + vec4<f32>(2e-3);
  for (var i = 0u; i < ITERS; i++) {
    a0 = fma(a0, x, y); a1 = fma(a1, x, y); a2 = fma(a2, x, y);
    a0 = fma(a0, x, y); a1 = fma(a1, x, y); a2 = fma(a2, x, y);
    a0 = fma(a0, x, y); a1 = fma(a1, x, y); a2 = fma(a2, x, y);
    a0 = fma(a0, x, y); a1 = fma(a1, x, y); a2 = fma(a2, x, y);
    a0 = fma(a0, x, y); a1 = fma(a1, x, y); a2 = fma(a2, x, y);
    a0 = fma(a0, x, y); a1 = fma(a1, x, y); a2 = fma(a2, x, y);
    a0 = fma(a0, x, y); a1 = fma(a1, x, y); a2 = fma(a2, x, y);
    a0 = fma(a0, x, y); a1 = fma(a1, x, y); a2 = fma(a2, x, y);
  }
  out[gid.x] = a0 + a1 + a2;
}

@compute @workgroup_size(WG)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = gid.x + gid.y * nw.x * WG;
  if (i < N4) { out[i] = src[i]; }
}
