/**
 * Item 5 of the reliability issue: a disk that fills up part-way through a write, or an output
 * directory that refuses writes, ends the run with one clear line and never leaves a corrupt
 * checkpoint: the previous one loads, and resuming gives the uninterrupted result.
 */
import assert from "node:assert/strict";
import { mergeConfig } from "../../src/config.ts";
import { writeAllBytes, type Writer } from "../../src/run/atomic.ts";
import { listCheckpoints, loadLatestCheckpoint } from "../../src/run/checkpoint.ts";
import { OutputWriteError } from "../../src/errors.ts";
import { train } from "../../src/sae/trainer.ts";
import { metricsLines, QUIET, sameBytes, TINY } from "./helpers.ts";

const CFG = mergeConfig(TINY, { steps: 60, checkpoint_every: 20 });

/** Once armed, the first write `pick`ed writes half its bytes, then fails as a full disk does. */
function diskFull(pick: (bytes: Uint8Array) => boolean) {
  const state = { armed: false, failed: 0 };
  const writer: Writer = async (file, bytes) => {
    if (state.armed && pick(bytes)) {
      state.armed = false;
      state.failed++;
      await writeAllBytes(file, bytes.subarray(0, bytes.length >> 1));
      throw new Error("No space left on device (os error 28)");
    }
    await writeAllBytes(file, bytes);
  };
  return { state, writer };
}

/** Files in the run's checkpoint directory. */
function ckptFiles(out: string) {
  return [...Deno.readDirSync(`${out}/checkpoints`)].map((e) => e.name).sort();
}

/** Resumes `out` normally and checks it ends like an uninterrupted run in `dir/full`. */
async function resumeMatchesFull(dir: string, out: string) {
  await train(CFG, { ...QUIET, outDir: out, resume: true });
  await train(CFG, { ...QUIET, outDir: `${dir}/full` });
  assert.ok(await sameBytes(`${out}/sae.safetensors`, `${dir}/full/sae.safetensors`));
  assert.deepEqual(
    await metricsLines(`${out}/metrics.jsonl`),
    await metricsLines(`${dir}/full/metrics.jsonl`),
  );
}

Deno.test("disk full while writing a checkpoint: one line, no partial file, previous kept", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-disk-" });
  const out = `${dir}/run`;
  const full = diskFull((b) => b.length > 4096); // checkpoints only: log lines are short
  const err = await train(CFG, {
    ...QUIET,
    outDir: out,
    writer: full.writer,
    onStep: (step) => {
      if (step === 21) full.state.armed = true;
    },
  }).then(() => null, (e) => e);
  assert.equal(full.state.failed, 1);
  assert.ok(err instanceof OutputWriteError, String(err));
  assert.equal(
    err.message,
    `cannot write checkpoint ${out}/checkpoints/step-00000040.safetensors: No space left on ` +
      `device (os error 28); no partial file is left and the previous checkpoint ` +
      `step-00000020 is intact: free space or fix permissions, then resume with: ` +
      `deno task sae train --resume ${out}`,
  );
  assert.deepEqual(ckptFiles(out), ["step-00000020.safetensors"]);
  assert.equal((await loadLatestCheckpoint(out))?.step, 20);
  await resumeMatchesFull(dir, out);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("disk full while appending to metrics.jsonl: the cut line is dropped on resume", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-disk-log-" });
  const out = `${dir}/run`;
  const full = diskFull((b) => b.length < 4096);
  const err = await train(CFG, {
    ...QUIET,
    outDir: out,
    writer: full.writer,
    onStep: (step) => {
      if (step === 30) full.state.armed = true; // the line of step 30 is cut in half
    },
  }).then(() => null, (e) => e);
  assert.ok(err instanceof OutputWriteError, String(err));
  assert.match(err.message, /^cannot write .*metrics\.jsonl: No space left on device/);
  const text = await Deno.readTextFile(`${out}/metrics.jsonl`);
  assert.ok(!text.endsWith("\n"), "the injected fault did not cut a line");
  assert.deepEqual((await listCheckpoints(out)).map((c) => c.step), [20]);
  await resumeMatchesFull(dir, out);
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name: "a read-only checkpoint directory: one line naming the file, nothing corrupt",
  // chmod does not stop root from writing: the injected writer above covers that case.
  ignore: Deno.build.os === "windows" || Deno.uid() === 0,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "sae-ro-" });
    const out = `${dir}/run`;
    await train(mergeConfig(CFG, { steps: 20 }), { ...QUIET, outDir: out });
    await Deno.chmod(`${out}/checkpoints`, 0o555);
    try {
      const err = await train(CFG, { ...QUIET, outDir: out, resume: true }).then(
        () => null,
        (e) => e,
      );
      assert.ok(err instanceof OutputWriteError, String(err));
      assert.match(err.message, /^cannot write checkpoint .*step-00000040\.safetensors: .*denied/i);
      assert.deepEqual(ckptFiles(out), ["step-00000020.safetensors"]);
    } finally {
      await Deno.chmod(`${out}/checkpoints`, 0o755);
    }
    await resumeMatchesFull(dir, out);
    await Deno.remove(dir, { recursive: true });
  },
});
