import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { adamwKernel, adamwReference } from "../../src/kernels/adamw.ts";
import { packState, type StepState } from "../../src/sae/state.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray } from "../helpers/check.ts";

Deno.test("adamw matches torch.optim.AdamW's formula on an awkward length", async () => {
  const gpu = await getGpu();
  const rng = new Rng(3);
  const n = 1237;
  const spec = { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.05 };
  const st: StepState = { step: 3, lr: 0.01, b1t: 0.9 ** 3, b2t: 0.99 ** 3, l1_coef: 0 };
  const p = randArray(rng, n), g = randArray(rng, n), m = randArray(rng, n, -0.1, 0.1);
  const v = randArray(rng, n, 0, 0.05);
  const bufs = {
    p: gpu.upload("p", p),
    g: gpu.upload("g", g),
    m: gpu.upload("m", m),
    v: gpu.upload("v", v),
  };
  run(gpu, [await adamwKernel(gpu, "t", n, spec, bufs, gpu.upload("st", packState(st)))]);
  const [gp, gm, gv] = await gpu.readMany([{ buf: bufs.p }, { buf: bufs.m }, { buf: bufs.v }]);
  adamwReference(spec, st, p, g, m, v);
  assertClose(gp, p, 1e-5, "p");
  assertClose(gm, m, 1e-5, "m");
  assertClose(gv, v, 1e-5, "v");
});
