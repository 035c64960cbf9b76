import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import {
  normalizeKernel,
  normalizeReference,
  projectGradKernel,
  projectGradReference,
} from "../../src/kernels/decoder.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray } from "../helpers/check.ts";

for (const lane of [false, true]) {
  Deno.test(`decoder normalize and gradient projection match the reference (${lane ? "invocation" : "workgroup"} per row)`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(5);
    // d % 4 == 0 (130 no, 132 yes) takes the vec4 lane kernels.
    for (const [m, d] of [[37, 130], [3, 7], [131, 9], [37, 132], [5, 4]]) {
      const w = randArray(rng, m * d), g = randArray(rng, m * d);
      const wb = gpu.upload("w", w), gb = gpu.upload("g", g);
      run(gpu, [
        ...await normalizeKernel(gpu, m, d, wb, lane),
        ...await projectGradKernel(gpu, m, d, wb, gb, lane),
      ]);
      const [gw, gg] = await gpu.readMany([{ buf: wb }, { buf: gb }]);
      normalizeReference(w, m, d);
      projectGradReference(w, g, m, d);
      assertClose(gw, w, 1e-5, "w");
      assertClose(gg, g, 1e-5, "g");
      // Properties: rows unit norm; projected gradient orthogonal to its row.
      for (let i = 0; i < m; i++) {
        let n = 0, dot = 0;
        for (let k = 0; k < d; k++) {
          n += gw[i * d + k] ** 2;
          dot += gw[i * d + k] * gg[i * d + k];
        }
        if (Math.abs(n - 1) > 1e-5 || Math.abs(dot) > 1e-5) {
          throw new Error(`row ${i}: ${n} ${dot}`);
        }
      }
    }
  });
}
