/**
 * Item 2 of the reliability issue: a run killed with SIGKILL at a random point and resumed ends
 * bit for bit like an uninterrupted one; a truncated newest checkpoint falls back to the previous.
 */
import assert from "node:assert/strict";
import { mergeConfig } from "../../src/config.ts";
import { checkpointName } from "../../src/run/checkpoint.ts";
import { train } from "../../src/sae/trainer.ts";
import {
  captureStderr,
  metricsLines,
  QUIET,
  sameBytes,
  spawnTrain,
  TINY,
  TINY_ARGS,
  waitForLines,
} from "./helpers.ts";

// Checkpoints every 25 steps, logs every 10: most checkpoints fall inside a metrics window.
const ARGS = [...TINY_ARGS, "--steps", "300", "--log-every", "10", "--checkpoint-every", "25"];

Deno.test("a run killed with SIGKILL at a random point resumes to the uninterrupted result", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-kill-" });
  // After 2 checkpoints (step 50 = 5 log lines) and before the end (30 lines).
  const killAfter = 6 + Math.floor(Math.random() * 20);
  const victim = spawnTrain([...ARGS, "--out", `${dir}/killed`]);
  await waitForLines(`${dir}/killed/metrics.jsonl`, killAfter);
  victim.child.kill("SIGKILL");
  const { status } = await victim.done;
  assert.equal(status.signal, "SIGKILL", `the run ended before the kill (${killAfter} lines)`);
  const resumed = await spawnTrain(["--resume", `${dir}/killed`, "--no-progress"]).done;
  assert.equal(resumed.status.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming .* from step (25|50|75|100|125|150|175|200|225|250|275)/);
  const full = await spawnTrain([...ARGS, "--out", `${dir}/full`]).done;
  assert.equal(full.status.code, 0, full.stderr);

  const msg = `killed after ${killAfter} log lines`;
  assert.ok(await sameBytes(`${dir}/killed/sae.safetensors`, `${dir}/full/sae.safetensors`), msg);
  // The final checkpoint holds the optimizer moments, statistics and step state.
  const last = `checkpoints/${checkpointName(300)}`;
  assert.ok(await sameBytes(`${dir}/killed/${last}`, `${dir}/full/${last}`), msg);
  assert.deepEqual(
    await metricsLines(`${dir}/killed/metrics.jsonl`),
    await metricsLines(`${dir}/full/metrics.jsonl`),
    msg,
  );
  // No temporary file of a write cut short is left behind.
  const names = [...Deno.readDirSync(`${dir}/killed/checkpoints`)].map((e) => e.name);
  assert.ok(names.every((n) => !n.includes(".tmp-")), names.join(", "));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("resume skips a truncated newest checkpoint with a warning and uses the previous one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-trunc-" });
  const cfg = mergeConfig(TINY, { steps: 60, checkpoint_every: 20 });
  await train(cfg, { ...QUIET, outDir: `${dir}/run` });
  const newest = `${dir}/run/checkpoints/${checkpointName(60)}`;
  const bytes = await Deno.readFile(newest);
  await Deno.writeFile(newest, bytes.subarray(0, Math.floor(bytes.length / 2)));

  const { lines, error } = await captureStderr(() =>
    train({ ...cfg, steps: 80 }, { ...QUIET, outDir: `${dir}/run`, resume: true })
  );
  assert.equal(error, undefined);
  const warning = lines.find((l) => l.startsWith("warning:"));
  assert.ok(warning?.includes(newest), `no warning naming ${newest}: ${lines.join(" | ")}`);
  assert.ok(lines.includes(`resuming ${dir}/run from step 40`), lines.join(" | "));
  // Continuing from step 40 gives what an uninterrupted 80-step run gives.
  await train({ ...cfg, steps: 80 }, { ...QUIET, outDir: `${dir}/full` });
  assert.ok(await sameBytes(`${dir}/run/sae.safetensors`, `${dir}/full/sae.safetensors`));
  assert.deepEqual(
    await metricsLines(`${dir}/run/metrics.jsonl`),
    await metricsLines(`${dir}/full/metrics.jsonl`),
  );
  await Deno.remove(dir, { recursive: true });
});
