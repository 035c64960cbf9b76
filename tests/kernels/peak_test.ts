import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { copyKernel, fmaPeakKernel, fmaPeakReference, PEAK_WG } from "../../src/kernels/peak.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";

Deno.test("copy kernel copies every vec4 of an awkward size onto a poisoned output", async () => {
  const gpu = await getGpu();
  const n4 = 1237, extra = 64; // 20 workgroups of 64: 43 invocations past the end
  const data = randArray(new Rng(9), 4 * (n4 + extra));
  const src = gpu.upload("src", data);
  const out = poisoned(gpu, "out", 4 * (n4 + extra));
  const { dispatch, bytes } = await copyKernel(gpu, n4, src, out);
  assert.equal(bytes, 32 * n4);
  assert.deepEqual(dispatch.cost, { flops: 0, bytes });
  run(gpu, [dispatch]);
  const got = await gpu.read(out, 16 * (n4 + extra));
  assert.deepEqual(got.subarray(0, 4 * n4), data.subarray(0, 4 * n4));
  assert.ok(got.subarray(4 * n4).every(Number.isNaN), "wrote past N4");
});

for (const form of ["loop", "straight"] as const) {
  Deno.test(`FMA kernel (${form}) computes its chains (vs a TypeScript reference)`, async () => {
    const gpu = await getGpu();
    const groups = 2, iters = 37;
    const out = poisoned(gpu, "out", 4 * groups * PEAK_WG);
    const { dispatch, flops } = await fmaPeakKernel(gpu, groups, iters, out, form);
    assert.equal(flops, groups * PEAK_WG * iters * 192);
    assert.deepEqual(dispatch.cost, { flops, bytes: 16 * groups * PEAK_WG });
    run(gpu, [dispatch]);
    const got = await gpu.read(out, 16 * groups * PEAK_WG);
    const want = new Float32Array(4 * groups * PEAK_WG);
    for (let g = 0; g < groups * PEAK_WG; g++) {
      want.fill(fmaPeakReference(g % PEAK_WG, iters), 4 * g, 4 * g + 4);
    }
    assertClose(got, want, 1e-5, `fma peak ${form}`);
  });
}
