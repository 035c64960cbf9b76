import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { kernel, run } from "../../src/gpu/dispatch.ts";
import { WG, withCommon } from "../../src/kernels/common.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";

// One workgroup per row of x [rows, 4·n]: every invocation writes the workgroup's sum and max of
// its strided share, so a lane that got a stale total fails the comparison.
const probe = `
override N: u32 = 1u; // vec4s per row
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>; // [rows, WG, 2]
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  var s = vec4<f32>(0.0);
  var m = vec4<f32>(-3.4e38);
  for (var k = t; k < N; k += WG) { s += x[w.x * N + k]; m = max(m, x[w.x * N + k]); }
  let total = wg_sum4(s, t);
  let big = wg_max4(m, t);
  out[(w.x * WG + t) * 2u] = total;
  out[(w.x * WG + t) * 2u + 1u] = big;
}`;

Deno.test("common WGSL: WG is read from common.wgsl; wg_sum4 and wg_max4 give every lane the totals", async () => {
  assert.equal(WG, 64);
  const gpu = await getGpu();
  const rng = new Rng(3);
  for (const n of [1, 37, 133]) {
    const rows = 5;
    const x = randArray(rng, rows * 4 * n, -2, 3);
    const out = poisoned(gpu, "out", rows * WG * 8);
    run(gpu, [
      await kernel(gpu, {
        label: "common probe",
        code: withCommon(probe),
        constants: { N: n },
        buffers: [gpu.upload("x", x), out],
        groups: [rows, 1, 1],
      }),
    ]);
    const got = await gpu.read(out);
    const want = new Float32Array(rows * WG * 8);
    for (let r = 0; r < rows; r++) {
      const s = [0, 0, 0, 0], m = [-Infinity, -Infinity, -Infinity, -Infinity];
      for (let k = 0; k < n; k++) {
        for (let c = 0; c < 4; c++) {
          const v = x[(r * n + k) * 4 + c];
          s[c] += v;
          m[c] = Math.max(m[c], v);
        }
      }
      for (let t = 0; t < WG; t++) {
        want.set(s, (r * WG + t) * 8);
        want.set(m, (r * WG + t) * 8 + 4);
      }
    }
    assertClose(got, want, 1e-5, `n=${n}`);
  }
});
