import assert from "node:assert/strict";
import type { TrainConfig } from "../../src/config.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { PARAM_NAMES, type SaeWeights } from "../../src/sae/model.ts";
import {
  archRefState,
  referenceJumpReluStep,
  referenceTopKFamilyStep,
} from "../../src/sae/reference_archs.ts";
import { Session } from "../../src/sae/session.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray } from "../helpers/check.ts";
import { stepConfig, stepWeights } from "../helpers/steps.ts";

/** dead_steps 2 so that AuxK has dead latents within the test's steps. */
const tinyConfig = (over: Partial<TrainConfig>) => stepConfig({ dead_steps: 2, k: 5, ...over });
/** A few latents far below zero never fire, so AuxK has dead latents to rank. */
const randomWeights = (cfg: TrainConfig, rng: Rng) => stepWeights(cfg, rng, 5);

function copy(w: SaeWeights): SaeWeights {
  return { wEnc: w.wEnc.slice(), bEnc: w.bEnc.slice(), wDec: w.wDec.slice(), bDec: w.bDec.slice() };
}

/** `steps` GPU steps against the reference; returns the reference state for further checks. */
async function compare(cfg: TrainConfig, steps: number, tol = 2e-4) {
  const gpu = await getGpu();
  const rng = new Rng(31);
  const w0 = randomWeights(cfg, rng);
  const session = await Session.create(gpu, cfg, w0, 1);
  const ref = copy(w0);
  const st = archRefState(cfg);
  const refStep = cfg.variant === "jumprelu" ? referenceJumpReluStep : referenceTopKFamilyStep;
  let refLoss = 0;
  for (let s = 0; s < steps; s++) {
    const x = randArray(rng, cfg.batch * cfg.d_in, -1, 1);
    await session.step(x);
    refLoss += refStep(cfg, ref, st, x.slice());
  }
  const { metrics, state } = await session.readMetrics();
  assert.equal(state.step, steps);
  assertClose([metrics.loss], [refLoss / steps], 1e-5, "mean loss");
  const snap = await session.snapshot();
  for (const n of PARAM_NAMES) {
    assertClose(snap.weights[n], ref[n], tol, `param ${n}`);
    assertClose(snap.adamM[n], st.opt.m[n], tol, `adam m ${n}`);
    assertClose(snap.adamV[n], st.opt.v[n], tol, `adam v ${n}`);
  }
  assert.deepEqual([...snap.lastFired], [...st.lastFired], "last fired");
  return { snap, st };
}

for (
  const [name, over] of [
    ["topk, SAELens' AuxK", { variant: "topk" }],
    // dead_steps 1: every latent counts as dead, so ReLU(pre) > 0 is selected and gets a gradient.
    ["topk, dictionary_learning's AuxK, l2 loss, b_dec not in the input", {
      variant: "topk",
      auxk: "dictionary_learning",
      dead_steps: 1,
      recon_loss: "l2",
      apply_b_dec_to_input: false,
    }],
    ["topk, no AuxK, k_aux 3", { variant: "topk", auxk: "off", k_aux: 3 }],
    ["topk, k_aux 3", { variant: "topk", k_aux: 3 }],
  ] as const
) {
  Deno.test(`${name}: 4 GPU steps match the reference step`, async () => {
    await compare(tinyConfig(over as Partial<TrainConfig>), 4);
  });
}

for (
  const [name, over] of [
    ["batchtopk, SAELens' θ", { variant: "batchtopk", k: 4.5 }],
    ["batchtopk, dictionary_learning's θ and AuxK", {
      variant: "batchtopk",
      topk_threshold: "dictionary_learning",
      threshold_start_step: 1,
      auxk: "dictionary_learning",
    }],
  ] as const
) {
  Deno.test(`${name}: 4 GPU steps and θ match the reference step`, async () => {
    const { snap, st } = await compare(tinyConfig(over as Partial<TrainConfig>), 4);
    assertClose(snap.extra.threshold, st.threshold, 1e-5, "θ");
    assert.ok(st.threshold[0] > 0, "θ moved");
  });
}

for (
  const [name, over] of [
    ["matryoshka, 3 levels", { variant: "matryoshka", matryoshka_fractions: "0.25,0.25,0.5" }],
    ["matryoshka, 4 levels, l2 loss, no AuxK", {
      variant: "matryoshka",
      matryoshka_fractions: "0.1,0.2,0.3,0.4",
      recon_loss: "l2",
      auxk: "off",
    }],
  ] as const
) {
  Deno.test(`${name}: 4 GPU steps match the reference step`, async () => {
    const { snap, st } = await compare(tinyConfig(over as Partial<TrainConfig>), 4);
    assertClose(snap.extra.threshold, st.threshold, 1e-5, "θ");
  });
}

for (
  const [name, over] of [
    ["jumprelu, SAELens' defaults", { variant: "jumprelu", jumprelu_init_threshold: 0.05 }],
    // A wide rectangle and a strong L0 penalty so the thresholds move a lot in 4 steps.
    ["jumprelu, ε 0.3, λ 5", {
      variant: "jumprelu",
      jumprelu_bandwidth: 0.3,
      l0_coefficient: 5,
      jumprelu_init_threshold: 0.05,
    }],
  ] as const
) {
  Deno.test(`${name}: 4 GPU steps, log θ and its moments match the reference step`, async () => {
    const { snap, st } = await compare(tinyConfig(over as Partial<TrainConfig>), 4);
    assertClose(snap.extra.log_threshold, st.logTheta, 1e-4, "log θ");
    assertClose(snap.extra.log_threshold_adam_m, st.thetaM, 1e-4, "log θ adam m");
    assertClose(snap.extra.threshold, st.threshold, 1e-4, "θ");
    const theta0 = Math.log(0.05);
    assert.ok(st.logTheta.some((v) => Math.abs(v - theta0) > 1e-3), "log θ moved");
  });
}

Deno.test("the architectures' steps create nothing and read nothing back", async () => {
  const gpu = await getGpu();
  for (const variant of ["topk", "batchtopk", "jumprelu", "matryoshka"] as const) {
    const cfg = tinyConfig({ variant, matryoshka_fractions: "0.5,0.5" });
    const session = await Session.create(gpu, cfg, randomWeights(cfg, new Rng(1)), 1);
    const before = { ...gpu.counters };
    const x = randArray(new Rng(2), cfg.batch * cfg.d_in);
    for (let i = 0; i < 3; i++) await session.step(x);
    await session.sync();
    assert.deepEqual({ ...gpu.counters }, { ...before, submits: before.submits + 3 }, variant);
  }
});
