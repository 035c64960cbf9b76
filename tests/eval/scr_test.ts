/**
 * SCR on hand-built SAEs over synthetic rows: an oracle SAE (one latent per true feature, so one
 * latent exactly on the spurious direction) recovers target accuracy when that latent is ablated
 * (score > 0, rising from k = 0); a control SAE without it scores ≈ 0. Plus the probe trainer.
 */
import assert from "node:assert/strict";
import { Rng } from "../../src/rng.ts";
import { createScrEvaluator, scr, scrEvaluator, trainLogisticProbe } from "../../src/eval/scr.ts";
import { fakeContext, oracleBatch } from "./fake_context.ts";

const D = 64;
const ROWS = 4096;

/** Rows with truth; oracle latents f[r, feature] = true magnitude, decoder = dictionary. */
async function data() {
  const { src, x, truth, dict, nF, f } = await oracleBatch(5, D, ROWS);
  // Control: the same SAE without the spurious latent (its signal stays in the error term).
  const sp = src.truth.concepts.spurious;
  const fc = f.slice();
  const wc = dict.slice();
  for (let r = 0; r < ROWS; r++) fc[r * nF + sp] = 0;
  wc.fill(0, sp * D, (sp + 1) * D);
  const base = { x, target: truth.target, spurious: truth.spurious, dIn: D };
  return {
    sp,
    nF,
    oracle: { ...base, latents: f, wDec: dict },
    control: { ...base, latents: fc, wDec: wc },
  };
}

Deno.test("scr: ablating a planted spurious latent recovers target accuracy; a control scores ≈ 0", async () => {
  const { sp, nF, oracle, control } = await data();
  const ks = [0, 2, 5, 10, 20, 50, 100, 500];
  const res = scr(oracle, { ks });
  // 500 is clipped to d_sae.
  assert.deepEqual(res.metrics.k, [0, 2, 5, 10, 20, 50, 100, nF]);
  assert.equal(res.ranked_latents[0], sp);
  assert.ok(res.skyline_accuracy > res.base_accuracy + 0.1, `${res.skyline_accuracy}`);
  assert.equal(res.metrics.score[0], 0);
  assert.equal(res.ablated_accuracy[0], res.base_accuracy);
  assert.ok(res.ablated_accuracy[1] > res.base_accuracy + 0.03);
  assert.ok(res.metrics.score[1] > 0.15, `oracle score at k=2: ${res.metrics.score[1]}`);

  const ctl = scr(control, { ks });
  assert.ok(!ctl.ranked_latents.includes(sp));
  assert.equal(ctl.base_accuracy, res.base_accuracy); // same rows, same probes
  for (const q of [1, 2, 3]) {
    assert.ok(
      Math.abs(ctl.metrics.score[q]) < 0.05,
      `control at k=${ks[q]}: ${ctl.metrics.score[q]}`,
    );
    assert.ok(res.metrics.score[q] > ctl.metrics.score[q] + 0.1);
  }

  // Mean ablation (the one-sided-concept variant) recovers more.
  const mean = scr(oracle, { ks: [2], ablation: "mean" });
  assert.ok(mean.metrics.score[0] > res.metrics.score[1], `${mean.metrics.score[0]}`);
  assert.ok(Math.abs(scr(control, { ks: [2], ablation: "mean" }).metrics.score[0]) < 0.05);

  // Deterministic from the seed; another seed gives another split.
  assert.deepEqual(scr(oracle, { ks }).metrics, res.metrics);
  assert.notDeepEqual(scr(oracle, { ks, seed: 1 }).ablated_accuracy, res.ablated_accuracy);
});

Deno.test("scr: probes on the reconstruction (keepError false) see the same planted effect", async () => {
  const { oracle, control } = await data();
  const bDec = new Float32Array(D);
  const res = scr({ ...oracle, bDec }, { ks: [2], keepError: false });
  assert.ok(res.metrics.score[0] > 0.15, `${res.metrics.score[0]}`);
  // Without the spurious latent the reconstruction carries no spurious signal at all: the biased
  // probe is already about as good as the skyline (and the normalised score is ill-conditioned).
  const ctl = scr({ ...control, bDec }, { ks: [2], keepError: false });
  assert.ok(ctl.skyline_accuracy - ctl.base_accuracy < 0.03, `${ctl.base_accuracy}`);
  assert.throws(() => scr(oracle, { keepError: false }), /bDec/);
});

Deno.test("scr: too few rows in a cell is a clear error", () => {
  const x = new Float32Array(8 * 2);
  const target = Uint8Array.from([1, 1, 0, 0, 1, 1, 0, 0]);
  assert.throws(
    () =>
      scr({
        x,
        latents: new Float32Array(8),
        wDec: new Float32Array(2),
        target,
        spurious: target,
        dIn: 2,
      }),
    /too few rows/,
  );
});

Deno.test("trainLogisticProbe: reaches the regularised optimum (zero gradient) and separates the classes", () => {
  const rng = new Rng(9);
  const n = 600, d = 5;
  const x = new Float32Array(n * d);
  const y = new Uint8Array(n);
  const wTrue = [2, -1, 0, 0.5, 0];
  for (let r = 0; r < n; r++) {
    let v = -0.3;
    for (let k = 0; k < d; k++) {
      x[r * d + k] = 3 + 2 * rng.normal(); // offset and spread: standardisation matters
      v += wTrue[k] * (x[r * d + k] - 3) / 2;
    }
    y[r] = rng.uniform() < 1 / (1 + Math.exp(-v)) ? 1 : 0;
  }
  const idx = Array.from({ length: n }, (_, i) => i);
  const l2 = 1e-2;
  const p = trainLogisticProbe(x, d, idx, y, l2);
  // Gradient of the objective in standardised coordinates = 0 ⇔ raw-space check below.
  const mu = new Float64Array(d), sd = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let k = 0; k < d; k++) mu[k] += x[r * d + k] / n;
  for (let r = 0; r < n; r++) for (let k = 0; k < d; k++) sd[k] += (x[r * d + k] - mu[k]) ** 2 / n;
  for (let k = 0; k < d; k++) sd[k] = Math.sqrt(sd[k]);
  const g = new Float64Array(d + 1);
  let ok = 0;
  for (let r = 0; r < n; r++) {
    let v = p.b;
    for (let k = 0; k < d; k++) v += p.w[k] * x[r * d + k];
    const e = 1 / (1 + Math.exp(-v)) - y[r];
    for (let k = 0; k < d; k++) g[k] += e * (x[r * d + k] - mu[k]) / sd[k] / n;
    g[d] += e / n;
    if ((v > 0 ? 1 : 0) === y[r]) ok++;
  }
  for (let k = 0; k < d; k++) g[k] += l2 * p.w[k] * sd[k];
  for (const v of g) assert.ok(Math.abs(v) < 1e-8, `gradient ${[...g]}`);
  assert.ok(ok / n > 0.7, `train accuracy ${ok / n}`);
  assert.ok(p.w[0] > 0 && p.w[1] < 0);
});

Deno.test("scrEvaluator: fills eval.json's scr block from a synthetic source", async () => {
  const { ctx, plainCtx } = await fakeContext();
  const out = await createScrEvaluator({ rows: 2048 })(ctx);
  assert.deepEqual(out.scr?.k, [2, 5, 10, 20, 50, 100, 256]);
  assert.ok(out.scr!.score.every(Number.isFinite));
  assert.deepEqual(await scrEvaluator(plainCtx), {});
});
