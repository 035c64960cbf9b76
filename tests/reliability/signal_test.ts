/**
 * Item 1 of the reliability issue: SIGTERM/SIGINT during training checkpoint the last finished
 * step, exit 143/130 with one line naming the resume command, and the run resumes from it exactly.
 */
import assert from "node:assert/strict";
import { loadLatestCheckpoint } from "../../src/run/checkpoint.ts";
import { metricsLines, sameBytes, spawnTrain, TINY_ARGS, waitForLines } from "./helpers.ts";

const LONG = [...TINY_ARGS, "--steps", "100000", "--log-every", "10", "--checkpoint-every", "0"];

async function interrupt(sig: "SIGTERM" | "SIGINT", out: string) {
  const run = spawnTrain([...LONG, "--out", out]);
  await waitForLines(`${out}/metrics.jsonl`, 3);
  run.child.kill(sig);
  return await run.done;
}

Deno.test("SIGTERM checkpoints the current step, exits 143, and --resume continues exactly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-sigterm-" });
  const out = `${dir}/run`;
  const { status, stderr } = await interrupt("SIGTERM", out);
  assert.equal(status.code, 143, stderr);
  const last = stderr.trim().split("\n").at(-1)!;
  const m = /^interrupted at step (\d+); resume with: deno task sae train --resume (.+)$/.exec(
    last,
  );
  assert.ok(m, `last stderr line: ${last}`);
  assert.equal(m[2], out);
  const step = Number(m[1]);
  assert.ok(step >= 30, `stopped at step ${step}, after 3 log lines`);
  // The checkpoint is of the step named, and verifies.
  const ck = await loadLatestCheckpoint(out);
  assert.equal(ck?.step, step);

  // Resume to step+15 (the step is usually not a log step: the window in progress resumes too)
  // and compare with an uninterrupted run to the same step.
  const end = String(step + 15);
  const resumed = await spawnTrain(["--resume", out, "--steps", end, "--no-progress"]).done;
  assert.equal(resumed.status.code, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`resuming ${out} from step ${step}`));
  const full = await spawnTrain([...LONG, "--steps", end, "--out", `${dir}/full`]).done;
  assert.equal(full.status.code, 0, full.stderr);
  assert.ok(await sameBytes(`${out}/sae.safetensors`, `${dir}/full/sae.safetensors`));
  assert.deepEqual(
    await metricsLines(`${out}/metrics.jsonl`),
    await metricsLines(`${dir}/full/metrics.jsonl`),
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("SIGINT exits 130 with the one-line resume message", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-sigint-" });
  const { status, stderr } = await interrupt("SIGINT", `${dir}/run`);
  assert.equal(status.code, 130, stderr);
  assert.match(stderr.trim().split("\n").at(-1)!, /^interrupted at step \d+; resume with: /);
  assert.ok((await loadLatestCheckpoint(`${dir}/run`)) !== null);
  await Deno.remove(dir, { recursive: true });
});
