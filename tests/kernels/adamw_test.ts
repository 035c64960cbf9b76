import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { adamwKernel, adamwReference } from "../../src/kernels/adamw.ts";
import { packState, type StepState } from "../../src/kernels/common.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray } from "../helpers/check.ts";

for (const [n, scalar] of [[1237, false], [1236, false], [1236, true]] as const) {
  Deno.test(`adamw matches torch.optim.AdamW's formula: ${n} elements, ${n % 4 || scalar ? "scalar" : "vec4"}`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(3);
    const spec = { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.05 };
    const st: StepState = {
      step: 3,
      lr: 0.01,
      b1t: 0.9 ** 3,
      b2t: 0.99 ** 3,
      l1_coef: 0,
      main_phase: 1,
    };
    const p = randArray(rng, n), g = randArray(rng, n), m = randArray(rng, n, -0.1, 0.1);
    const v = randArray(rng, n, 0, 0.05);
    const bufs = {
      p: gpu.upload("p", p),
      g: gpu.upload("g", g),
      m: gpu.upload("m", m),
      v: gpu.upload("v", v),
    };
    const k = await adamwKernel(
      gpu,
      "t",
      n,
      spec,
      bufs,
      gpu.upload("st", packState(st)),
      undefined,
      {
        scalar,
      },
    );
    run(gpu, k);
    const [gp, gm, gv] = await gpu.readMany([{ buf: bufs.p }, { buf: bufs.m }, { buf: bufs.v }]);
    adamwReference(spec, st, p, g, m, v);
    assertClose(gp, p, 1e-5, "p");
    assertClose(gm, m, 1e-5, "m");
    assertClose(gv, v, 1e-5, "v");
  });
}

Deno.test("adamw with per-latent learning-rate factors matches the reference", async () => {
  const gpu = await getGpu();
  const rng = new Rng(4);
  // 24 rows of 7: 168 elements, vec4 invocations straddling rows (each element its own factor).
  const rows = 24, rowLen = 7, n = rows * rowLen;
  const spec = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
  const st: StepState = {
    step: 5,
    lr: 0.02,
    b1t: 0.9 ** 5,
    b2t: 0.999 ** 5,
    l1_coef: 0,
    main_phase: 1,
  };
  const p = randArray(rng, n), g = randArray(rng, n), m = randArray(rng, n, -0.1, 0.1);
  const v = randArray(rng, n, 0, 0.05), scale = randArray(rng, rows, 0.2, 1);
  const bufs = {
    p: gpu.upload("p", p),
    g: gpu.upload("g", g),
    m: gpu.upload("m", m),
    v: gpu.upload("v", v),
  };
  const k = await adamwKernel(gpu, "t", n, spec, bufs, gpu.upload("st", packState(st)), {
    buf: gpu.upload("scale", scale),
    rowLen,
  });
  run(gpu, k);
  const got = await gpu.read(bufs.p);
  const plain = p.slice();
  adamwReference(spec, st, plain, g, m.slice(), v.slice());
  adamwReference(spec, st, p, g, m, v, { values: scale, rowLen });
  assertClose(got, p, 1e-5, "scaled p");
  // The factors matter: the unscaled update differs.
  let diff = 0;
  for (let i = 0; i < n; i++) diff = Math.max(diff, Math.abs(plain[i] - p[i]));
  if (diff < 1e-4) throw new Error("scaling had no effect");
});
