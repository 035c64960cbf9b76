import assert from "node:assert/strict";
import { DEFAULT_CONFIG, mergeConfig, type TrainConfig } from "../../src/config.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { initWeights, PARAM_NAMES } from "../../src/sae/model.ts";
import { Session } from "../../src/sae/session.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray } from "../helpers/check.ts";

async function fiveSteps(cfg: TrainConfig) {
  const gpu = await getGpu();
  const rng = new Rng(8);
  const w = initWeights(cfg.d_in, cfg.d_sae, 3, randArray(rng, cfg.d_in, -0.2, 0.2));
  const session = await Session.create(gpu, cfg, w, 1);
  for (let i = 0; i < 5; i++) await session.step(randArray(rng, cfg.batch * cfg.d_in, -1, 1));
  await session.sync();
  return { w: await session.readWeights(), m: (await session.readMetrics()).metrics };
}

for (const variant of ["baseline", "paper"] as const) {
  Deno.test(`gemm_f16: a ${variant} step with f16 GEMM operands stays within f16 error of f32`, async () => {
    const base = mergeConfig(DEFAULT_CONFIG, {
      variant,
      d_in: 24,
      d_sae: 72,
      batch: 40,
      lr: 1e-3,
      recon_only_steps: 2,
      lambda_ortho: 0.1,
    });
    const f32 = await fiveSteps(base);
    const f16 = await fiveSteps({ ...base, gemm_f16: true });
    let differs = false;
    for (const n of PARAM_NAMES) {
      assertClose(f16.w[n], f32.w[n], 2e-2, n);
      differs ||= f16.w[n].some((v, i) => v !== f32.w[n][i]);
    }
    assert.ok(differs, "f16 storage changed nothing: the option is not wired");
    assert.ok(Math.abs(f16.m.loss - f32.m.loss) <= 1e-2 * Math.abs(f32.m.loss));
  });
}
