import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import {
  bDecGradKernel,
  bDecGradReference,
  colSumKernel,
  colSumReference,
  featureStatsKernel,
  featureStatsReference,
} from "../../src/kernels/reduce.ts";
import { packState } from "../../src/kernels/common.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";

Deno.test("column sum, b_dec gradient and feature statistics match the reference", async () => {
  const gpu = await getGpu();
  const rng = new Rng(11);
  const B = 77, d = 45, m = 131;
  const a = randArray(rng, B * d), f = randArray(rng, B * m, -1, 1).map((v) => Math.max(v, 0));
  const gBEnc = randArray(rng, m), wEnc = randArray(rng, m * d);
  const sum = poisoned(gpu, "sum", d),
    bdec = poisoned(gpu, "bdec", d),
    bdec0 = poisoned(gpu, "bdec0", d);
  const fstats = poisoned(gpu, "fstats", 2 * m);
  const last = gpu.upload("last", new Uint32Array(m));
  const ab = gpu.upload("a", a), fb = gpu.upload("f", f);
  const state = gpu.upload(
    "st",
    packState({ step: 9, lr: 0, b1t: 1, b2t: 1, l1_coef: 0, main_phase: 0 }),
  );
  const bufs = { dxhat: ab, gBEnc: gpu.upload("gb", gBEnc), wEnc: gpu.upload("w", wEnc) };
  run(gpu, [
    ...await colSumKernel(gpu, "t", B, d, 0.5, ab, sum),
    ...await bDecGradKernel(gpu, B, d, m, true, { ...bufs, out: bdec }),
    ...await bDecGradKernel(gpu, B, d, m, false, { ...bufs, out: bdec0 }),
    ...await featureStatsKernel(gpu, B, m, { f: fb, out: fstats, lastFired: last, state }),
  ]);
  const [s, g1, g0, fs] = await gpu.readMany([{ buf: sum }, { buf: bdec }, { buf: bdec0 }, {
    buf: fstats,
  }]);
  assertClose(s, colSumReference(a, B, d, 0.5), 1e-5, "col sum");
  assertClose(g1, bDecGradReference(a, gBEnc, wEnc, B, d, m, true), 1e-5, "b_dec grad");
  assertClose(g0, bDecGradReference(a, gBEnc, wEnc, B, d, m, false), 1e-5, "b_dec grad (no input)");
  assertClose(fs, featureStatsReference(f, B, m), 1e-5, "feature stats");
  const lf = await gpu.readU32(last);
  const ref = featureStatsReference(f, B, m);
  for (let i = 0; i < m; i++) {
    if (lf[i] !== (ref[2 * i] > 0 ? 9 : 0)) throw new Error(`last_fired[${i}] = ${lf[i]}`);
  }
});
