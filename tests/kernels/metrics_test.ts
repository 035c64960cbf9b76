import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { packState, type StepState } from "../../src/kernels/common.ts";
import {
  METRIC_INDEX,
  METRIC_WORDS,
  metricsKernel,
  metricsReference,
  type MetricsSpec,
  summarize,
} from "../../src/kernels/metrics.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray } from "../helpers/check.ts";

const I = METRIC_INDEX;

/**
 * Runs the metrics kernel once over random statistics on top of random earlier accumulators and
 * compares every word with the reference, each on its own scale. `bad` puts NaN or ∞ into the
 * named statistic at a random row or latent.
 */
async function check(
  s: MetricsSpec,
  seed: number,
  bad?: { where: "recon" | "l1" | "input"; value: number },
) {
  const gpu = await getGpu();
  const rng = new Rng(seed);
  const B = s.batch, M = s.dSae;
  const rowstats = randArray(rng, 3 * B, 0.1, 4);
  const fstats = new Float32Array(2 * M);
  const lastFired = new Uint32Array(M);
  const st: StepState = { step: 900, lr: 0, b1t: 1, b2t: 1, l1_coef: 0.03, main_phase: 1 };
  for (let i = 0; i < M; i++) {
    fstats[2 * i] = Math.floor(rng.uniform() * (B + 1)); // fires: 0..B rows
    fstats[2 * i + 1] = fstats[2 * i] * rng.uniform() * 2; // Σf
    lastFired[i] = Math.floor(rng.uniform() * (st.step + 1)); // some long dead
  }
  if (bad) {
    const b = Math.floor(rng.uniform() * B), i = Math.floor(rng.uniform() * M);
    if (bad.where === "recon") rowstats[3 * b + (rng.uniform() < 0.5 ? 0 : 1)] = bad.value;
    if (bad.where === "input") rowstats[3 * b + 2] = bad.value;
    if (bad.where === "l1") fstats[2 * i + 1] = bad.value;
  }
  // Earlier steps' sums; word 8 (dead fraction) is overwritten: poisoned. Flags start clear.
  const acc = randArray(rng, METRIC_WORDS, 1, 50);
  acc[I.dead] = NaN;
  for (const k of [I.recon_bad, I.l1_bad, I.params_bad, I.first_bad_step, I.input_bad]) acc[k] = 0;
  const accBuf = gpu.upload("acc", acc);
  run(gpu, [
    await metricsKernel(gpu, s, {
      rowstats: gpu.upload("rowstats", rowstats),
      fstats: gpu.upload("fstats", fstats),
      lastFired: gpu.upload("last fired", lastFired),
      acc: accBuf,
      state: gpu.upload("st", packState(st)),
    }),
  ]);
  const got = await gpu.read(accBuf);
  metricsReference(s, acc, rowstats, fstats, lastFired, st);
  for (let k = 0; k < METRIC_WORDS; k++) {
    if (Number.isFinite(acc[k])) assertClose([got[k]], [acc[k]], 1e-5, `word ${k}`);
    else assert.ok(Object.is(got[k], acc[k]), `word ${k}: ${got[k]}, want ${acc[k]}`);
  }
  return { got, st };
}

for (
  const [B, M, D] of [[77, 301, 45], [300, 3, 7], [1, 257, 1], [513, 1000, 130]] as const
) {
  for (const squared of [false, true]) {
    Deno.test(`metrics kernel folds a step into the accumulators like the reference: B=${B} m=${M} d=${D}${squared ? " squared" : ""}`, async () => {
      const s = { batch: B, dSae: M, dIn: D, squared, deadSteps: 300, denseThreshold: 0.3 };
      const { got } = await check(s, B * 7 + M);
      const dead = got[I.dead] * M;
      assert.ok(Math.abs(dead - Math.round(dead)) < 1e-3, `dead count ${dead}`);
      for (const k of [I.recon_bad, I.l1_bad, I.first_bad_step, I.input_bad]) {
        assert.equal(got[k], 0, `healthy step set word ${k}`);
      }
      // summarize turns the words into averages over the accumulated steps.
      const avg = summarize(got);
      assert.ok(Math.abs(avg.l2 - got[I.l2] / got[I.steps]) < 1e-6 * Math.abs(avg.l2));
    });
  }
}

for (const where of ["recon", "l1", "input"] as const) {
  for (const [name, value] of [["NaN", NaN], ["∞", Infinity], ["−∞", -Infinity]] as const) {
    Deno.test(`metrics kernel flags a non-finite ${where} term (${name}) and records the step`, async () => {
      const s = {
        batch: 33,
        dSae: 290,
        dIn: 9,
        squared: false,
        deadSteps: 300,
        denseThreshold: 0.3,
      };
      const { got, st } = await check(s, where.length * 13 + (value > 0 ? 1 : 2), { where, value });
      const word = { recon: I.recon_bad, l1: I.l1_bad, input: I.input_bad }[where];
      assert.equal(got[word], Number.isNaN(value) ? 2 : 1);
      assert.equal(got[I.first_bad_step], st.step);
      for (const k of [I.recon_bad, I.l1_bad, I.input_bad]) {
        if (k !== word) assert.equal(got[k], 0, `word ${k}`);
      }
    });
  }
}
