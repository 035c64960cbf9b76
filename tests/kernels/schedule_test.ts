import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { scheduleKernel, scheduleReference } from "../../src/kernels/schedule.ts";
import { initialState, packState, unpackState } from "../../src/kernels/common.ts";

Deno.test("schedule: warmup, bias powers and the recon-only phase follow the reference", async () => {
  const gpu = await getGpu();
  const spec = {
    lr: 3e-4,
    warmupSteps: 7,
    beta1: 0.9,
    beta2: 0.999,
    l1Coef: 0.25,
    reconOnlySteps: 4,
  };
  const buf = gpu.upload("st", packState(initialState()));
  const k = await scheduleKernel(gpu, spec, buf);
  let ref = initialState();
  for (let t = 1; t <= 10; t++) {
    run(gpu, [k]);
    ref = scheduleReference(ref, spec);
    const got = unpackState(await gpu.readU32(buf));
    if (got.step !== t) throw new Error(`step ${got.step} != ${t}`);
    for (const key of ["lr", "b1t", "b2t", "l1_coef", "main_phase"] as const) {
      if (Math.abs(got[key] - ref[key]) > 1e-6 * Math.abs(ref[key]) + 1e-12) {
        throw new Error(`t=${t} ${key}: ${got[key]} != ${ref[key]}`);
      }
    }
    // Independent facts: lr ramps linearly to its peak, L1 starts after the recon-only steps.
    const wantLr = 3e-4 * Math.min(1, t / 7);
    if (Math.abs(got.lr - wantLr) > 1e-9) throw new Error(`lr at ${t}: ${got.lr}`);
    if ((got.l1_coef > 0) !== (t > 4)) throw new Error(`l1 at ${t}: ${got.l1_coef}`);
  }
});
