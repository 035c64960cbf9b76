import assert from "node:assert/strict";
import type { TrainConfig } from "../../src/config.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { initWeights } from "../../src/sae/model.ts";
import { Session } from "../../src/sae/session.ts";
import { Rng } from "../../src/rng.ts";
import { randArray } from "./check.ts";

/**
 * Five training steps of `cfg` from a fixed start on fixed batches: the weights, the metrics and
 * the step's dispatch labels. Also asserts that the steps created nothing and read nothing back
 * (one submission each).
 */
export async function fiveSteps(cfg: TrainConfig) {
  const gpu = await getGpu();
  const rng = new Rng(8);
  const w = initWeights(cfg.d_in, cfg.d_sae, 3, randArray(rng, cfg.d_in, -0.2, 0.2));
  const session = await Session.create(gpu, cfg, w, 1);
  const before = { ...gpu.counters };
  for (let i = 0; i < 5; i++) await session.step(randArray(rng, cfg.batch * cfg.d_in, -1, 1));
  await session.sync();
  assert.deepEqual({ ...gpu.counters }, { ...before, submits: before.submits + 5 });
  return {
    w: await session.readWeights(),
    m: (await session.readMetrics()).metrics,
    labels: session.dispatchLabels(),
  };
}
