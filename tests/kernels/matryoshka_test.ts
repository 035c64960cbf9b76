import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import {
  maskGradKernel,
  prefixResidualKernel,
  prefixResidualReference,
} from "../../src/kernels/matryoshka.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";

for (const squared of [true, false]) {
  Deno.test(`matryoshka prefix residuals match the reference (${squared ? "squared" : "l2"} loss)`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(squared ? 3 : 4);
    for (const [B, d, levels] of [[29, 13, 3], [70, 6, 1]]) {
      const s = { B, d, levels, squared };
      const x = randArray(rng, B * d);
      const xhatP = randArray(rng, levels * B * d);
      // One row reconstructed exactly at level 0: the l2 loss's gradient there is 0, not NaN.
      xhatP.set(x.subarray(0, d), 0);
      const dxhat0 = randArray(rng, B * d);
      const negT = poisoned(gpu, "negT", levels * B * d);
      const dxhat = gpu.upload("dxhat", dxhat0);
      run(gpu, [
        await prefixResidualKernel(gpu, s, {
          x: gpu.upload("x", x),
          xhatP: gpu.upload("xhatP", xhatP),
          negT,
          dxhat,
        }),
      ]);
      const want = prefixResidualReference(s, x, xhatP, dxhat0);
      assertClose(await gpu.read(negT, levels * B * d * 4), want.negT, 1e-5, "negT");
      assertClose(await gpu.read(dxhat, B * d * 4), want.dxhat, 1e-5, "dxhat");
      // negT is cumulative: the last level's is minus everything added to dxhat.
      const last = want.negT.subarray((levels - 1) * B * d);
      assertClose(want.dxhat.map((v, i) => dxhat0[i] - v), last, 1e-5, "sum");
    }
  });
}

Deno.test("matryoshka mask: dpre kept where f > 0, zero elsewhere (−0 and negatives included)", async () => {
  const gpu = await getGpu();
  const rng = new Rng(5);
  const n = 1003;
  const f = randArray(rng, n).map((v) => v < -0.5 ? -0 : v);
  const g = randArray(rng, n, -2, 2);
  const dpre = gpu.upload("dpre", g);
  run(gpu, [await maskGradKernel(gpu, n, { f: gpu.upload("f", f), dpre })]);
  const got = await gpu.read(dpre, n * 4);
  for (let i = 0; i < n; i++) assert.equal(got[i], f[i] > 0 ? g[i] : 0, `at ${i}`);
});
