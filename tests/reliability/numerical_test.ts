/**
 * Item 3 of the reliability issue: a NaN or infinite loss term, batch or parameter is flagged on
 * the GPU, stops the run with one line naming the step window and the term, and no checkpoint is
 * written after the bad step (the last good one still loads).
 */
import assert from "node:assert/strict";
import { mergeConfig } from "../../src/config.ts";
import type { ActivationSource } from "../../src/data/source.ts";
import { TrainingDiverged, UserError } from "../../src/errors.ts";
import { listCheckpoints, loadLatestCheckpoint } from "../../src/run/checkpoint.ts";
import { train } from "../../src/sae/trainer.ts";
import { QUIET, TINY } from "./helpers.ts";

async function steps(dir: string) {
  return (await listCheckpoints(dir)).map((c) => c.step);
}

Deno.test("lr 1e30 overflows the loss: stopped before the next checkpoint, the last good one kept", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-nan-lr-" });
  const out = `${dir}/run`;
  const cfg = mergeConfig(TINY, { steps: 40, checkpoint_every: 20 });
  await train(cfg, { ...QUIET, outDir: out });
  // Continue with an absurd learning rate; checkpoints every 5 steps, logs every 10, so the bad
  // state reaches a checkpoint (step 45) before a log step: the check there must refuse it.
  const bad = mergeConfig(cfg, { steps: 100, lr: 1e30, checkpoint_every: 5 });
  const err = await train(bad, { ...QUIET, outDir: out, resume: true }).then(
    () => null,
    (e) => e,
  );
  assert.ok(err instanceof TrainingDiverged && err instanceof UserError, String(err));
  assert.match(
    err.message,
    /^loss became (infinite|NaN) between steps 40 and 45 \(first at step 4\d; reconstruction( and L1)? terms?\); the last good checkpoint step-00000040 is kept: lower --lr or check the data$/,
  );
  assert.deepEqual(err.terms.slice(0, 1), ["reconstruction"]);
  assert.deepEqual(await steps(out), [40, 20]);
  const ck = await loadLatestCheckpoint(out);
  assert.equal(ck?.step, 40);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a batch holding NaN is named as the data's fault at the next log step", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-nan-data-" });
  const out = `${dir}/run`;
  let poison = false;
  const wrap = (src: ActivationSource): ActivationSource => ({
    dIn: src.dIn,
    description: src.description,
    state: () => src.state(),
    restore: (s) => src.restore(s),
    async nextBatch(b) {
      await src.nextBatch(b);
      if (poison) b[5] = NaN;
    },
  });
  const cfg = mergeConfig(TINY, { steps: 60, checkpoint_every: 20 });
  const err = await train(cfg, {
    ...QUIET,
    outDir: out,
    wrapSource: wrap,
    onStep: (step) => {
      poison = step === 32; // the batch of step 33 gets a NaN
    },
  }).then(() => null, (e) => e);
  assert.ok(err instanceof TrainingDiverged, String(err));
  assert.equal(
    err.message,
    "the training data became NaN between steps 30 and 40 (first at step 33; input batch); " +
      "the last good checkpoint step-00000020 is kept: check the data",
  );
  assert.deepEqual(await steps(out), [20]);
  assert.equal((await loadLatestCheckpoint(out))?.step, 20);
  // The log stops at the step that found it; the bad window's line is there for inspection.
  const lines = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n");
  assert.deepEqual(lines.map((l) => JSON.parse(l).step), [10, 20, 30, 40]);
  await Deno.remove(dir, { recursive: true });
});
