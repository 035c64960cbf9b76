import assert from "node:assert/strict";
import { DEFAULT_CONFIG, type TrainConfig } from "../../src/config.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { initWeights, type SaeWeights } from "../../src/sae/model.ts";
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

/**
 * The step tests' configuration: awkward sizes (d_in 13, d_sae 37, batch 29: multiples of no
 * tile), lr 1e-2, 2 warm-up steps, `over` on top of the built-in defaults.
 */
export function stepConfig(over: Partial<TrainConfig> = {}): TrainConfig {
  return {
    ...DEFAULT_CONFIG,
    d_in: 13,
    d_sae: 37,
    batch: 29,
    lr: 1e-2,
    warmup_steps: 2,
    ...over,
  };
}

/**
 * Random starting weights for the step tests: W_enc perturbed away from W_decᵀ and b_enc of both
 * signs, so every code path runs; with `deadEvery` > 0 every such latent's b_enc is far below zero
 * (it never fires: dead latents for AuxK to rank).
 */
export function stepWeights(cfg: TrainConfig, rng: Rng, deadEvery = 0): SaeWeights {
  const w = initWeights(cfg.d_in, cfg.d_sae, 1, randArray(rng, cfg.d_in, -0.2, 0.2));
  w.wEnc = w.wEnc.map((v) => v + 0.1 * (rng.uniform() - 0.5));
  w.bEnc = randArray(rng, cfg.d_sae, -0.1, 0.1);
  if (deadEvery > 0) {
    for (let i = 0; i < cfg.d_sae; i += deadEvery) {
      w.bEnc[i] = -3 - rng.uniform();
    }
  }
  return w;
}
