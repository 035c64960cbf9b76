import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import {
  prepareKernel,
  prepareReference,
  residualKernel,
  residualReference,
} from "../../src/kernels/loss.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";

// d 203 takes the one-float kernels, d 204 the vec4 lane kernel (d % 4 == 0).
for (
  const [squared, lane, B, d, applyBDec] of [
    [false, false, 19, 203, true],
    [true, false, 19, 203, true],
    [false, true, 71, 203, true],
    [true, true, 71, 203, false],
    [false, true, 71, 204, true],
    [true, true, 33, 204, false],
  ] as const
) {
  Deno.test(`prepare + residual (${squared ? "squared" : "l2 norm"}, ${lane ? "invocation" : "workgroup"} per row, d ${d}${applyBDec ? "" : ", no b_dec"}) match the reference`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(13);
    const scale = 0.75;
    const x = randArray(rng, B * d, -2, 3), xhat = randArray(rng, B * d);
    const bDec = randArray(rng, d), xmean = randArray(rng, d);
    const spec = { batch: B, dIn: d, scale, applyBDec, squared };
    const bufs = {
      x: gpu.upload("x", x),
      xc: poisoned(gpu, "xc", B * d),
      bDec: gpu.upload("bdec", bDec),
      xhat: gpu.upload("xhat", xhat),
      dxhat: poisoned(gpu, "dxhat", B * d),
      xmean: gpu.upload("xmean", xmean),
      rowstats: poisoned(gpu, "rowstats", B * 3),
    };
    run(gpu, [await prepareKernel(gpu, spec, bufs), await residualKernel(gpu, spec, bufs, lane)]);
    const [gx, gxc, gd, gr] = await gpu.readMany([
      { buf: bufs.x },
      { buf: bufs.xc },
      { buf: bufs.dxhat },
      { buf: bufs.rowstats },
    ]);
    const prep = prepareReference(spec, x, bDec);
    assertClose(gx, prep.x, 1e-6, "scaled x");
    assertClose(gxc, prep.xc, 1e-6, "xc");
    const ref = residualReference(spec, prep.x, xhat, xmean);
    assertClose(gd, ref.dxhat, 1e-5, "dxhat");
    assertClose(gr, ref.rowstats, 1e-5, "rowstats");
  });
}
