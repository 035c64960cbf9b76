/**
 * Absorption on hand-built SAEs over synthetic rows: an oracle SAE (one latent per true feature)
 * absorbs nothing; planting absorption of one child into one letter is found at exactly the planted
 * rate for that letter and nowhere else.
 */
import assert from "node:assert/strict";
import type { BatchTruth } from "../../src/data/synthetic.ts";
import {
  absorption,
  absorptionEvaluator,
  createAbsorptionEvaluator,
} from "../../src/eval/absorption.ts";
import { fakeContext, oracleBatch } from "./fake_context.ts";

const D = 64;
const ROWS = 4096;

/** Rows, their truth, and the oracle latents f[r, feature] = true magnitude. */
async function oracle() {
  const { src, truth, dict, nF, f } = await oracleBatch(3, D, ROWS);
  return { src, truth, f, nF, wDec: dict.slice() };
}

function active(truth: BatchTruth, r: number, feature: number): number {
  for (let e = truth.rowPtr[r]; e < truth.rowPtr[r + 1]; e++) {
    if (truth.features[e] === feature) return truth.magnitudes[e];
  }
  return 0;
}

Deno.test("absorption: an oracle SAE absorbs nothing, and its parent latents are the parents", async () => {
  const { src, truth, f, wDec } = await oracle();
  const res = absorption({
    latents: f,
    truth,
    wDec,
    dictionary: src.truth.dictionary,
    parents: src.truth.parents,
    dIn: D,
  });
  assert.equal(res.metrics.per_letter.length, 26);
  assert.equal(res.metrics.mean, 0);
  assert.ok(res.mean_absorption_fraction < 1e-6); // f32 rounding of unit rows only
  for (const [j, l] of res.metrics.per_letter.entries()) {
    assert.ok(l.rows > 30, `letter ${l.letter}: ${l.rows} rows`);
    assert.deepEqual(l.parent_latents, [src.truth.parents[j].feature], l.letter);
    assert.equal(l.absorption, 0);
  }
});

Deno.test("absorption: a planted child latent that absorbs its letter is found at the planted rate", async () => {
  const { src, truth, f, nF, wDec } = await oracle();
  const dict = src.truth.dictionary;
  const P = src.truth.parents[2]; // 'c'
  const child = P.children[0];
  // The child latent's decoder becomes normalize(g_child + g_parent) ...
  let nrm = 0;
  for (let k = 0; k < D; k++) nrm += (dict[child * D + k] + dict[P.feature * D + k]) ** 2;
  nrm = Math.sqrt(nrm);
  for (let k = 0; k < D; k++) {
    wDec[child * D + k] = (dict[child * D + k] + dict[P.feature * D + k]) / nrm;
  }
  // ... and whenever the child fires it takes the parent's share; the parent latent goes silent.
  let parentRows = 0, planted = 0;
  for (let r = 0; r < ROWS; r++) {
    const mp = active(truth, r, P.feature);
    if (mp === 0) continue;
    parentRows++;
    const mc = active(truth, r, child);
    if (mc === 0) continue;
    planted++;
    f[r * nF + P.feature] = 0;
    f[r * nF + child] = (mc + mp) * nrm / 2;
  }
  assert.ok(planted > 10 && planted < parentRows, `${planted} of ${parentRows}`);

  const res = absorption({
    latents: f,
    truth,
    wDec,
    dictionary: dict,
    parents: src.truth.parents,
    dIn: D,
  });
  const c = res.letters[2];
  assert.equal(c.letter, "c");
  assert.equal(c.rows, parentRows);
  // The absorbing child latent is a token-level latent, not a second parent latent.
  assert.deepEqual(c.parent_latents, [P.feature]);
  assert.equal(c.absorption, planted / parentRows);
  assert.equal(c.child_carried, planted / parentRows);
  assert.equal(c.absorption_fraction, planted / parentRows);
  assert.deepEqual(c.absorbing_latents, [{ latent: child, rows: planted }]);
  for (const l of res.letters) if (l.letter !== "c") assert.equal(l.absorption, 0, l.letter);
  // Mean over 26 letters; std of one nonzero among zeros.
  const rate = planted / parentRows;
  assert.ok(Math.abs(res.metrics.mean - rate / 26) < 1e-12);
  assert.ok(Math.abs(res.metrics.std - rate / Math.sqrt(26)) < 1e-12);

  // A weakly aligned absorber (cos below the threshold) does not count.
  const strict = absorption({
    latents: f,
    truth,
    wDec,
    dictionary: dict,
    parents: src.truth.parents,
    dIn: D,
  }, { cosThreshold: 0.95 });
  assert.equal(strict.letters[2].absorption, 0);
  assert.equal(strict.letters[2].parent_silent, planted / parentRows);
});

Deno.test("absorption: a parent split over two latents is not absorption", async () => {
  const { src, truth, f, nF, wDec } = await oracle();
  const P = src.truth.parents[5]; // 'f'
  // A second latent, borrowed from an unused plain feature slot, on the parent direction: it fires
  // instead of the parent latent on half the parent rows, whatever the child.
  const spare = 100;
  for (let k = 0; k < D; k++) wDec[spare * D + k] = src.truth.dictionary[P.feature * D + k];
  let t = 0;
  for (let r = 0; r < ROWS; r++) {
    f[r * nF + spare] = 0;
    const mp = active(truth, r, P.feature);
    if (mp === 0 || t++ % 2 === 0) continue;
    f[r * nF + P.feature] = 0;
    f[r * nF + spare] = mp;
  }
  const res = absorption({
    latents: f,
    truth,
    wDec,
    dictionary: src.truth.dictionary,
    parents: src.truth.parents,
    dIn: D,
  });
  const l = res.letters[5];
  assert.deepEqual(
    [...l.parent_latents].sort((a, b) => a - b),
    [spare, P.feature].sort((a, b) => a - b),
  );
  assert.equal(l.absorption, 0);
  assert.ok(Math.abs(l.parent_f1 - 1) < 1e-12);
});

Deno.test("absorptionEvaluator: fills eval.json's absorption block from a synthetic source", async () => {
  const { ctx, plainCtx } = await fakeContext();
  const out = await createAbsorptionEvaluator({ rows: 2048 })(ctx);
  assert.equal(out.absorption?.per_letter.length, 26);
  assert.ok(out.absorption!.per_letter.every((l) => l.rows > 0 && l.absorption >= 0));
  assert.ok(Number.isFinite(out.absorption!.mean) && Number.isFinite(out.absorption!.std));
  assert.deepEqual(await absorptionEvaluator(plainCtx), {});
});
