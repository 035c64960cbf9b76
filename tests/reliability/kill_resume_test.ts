/**
 * Item 2 of the reliability issue: a run killed with SIGKILL at a random point and resumed ends
 * bit for bit like an uninterrupted one, on synthetic data and live on a language model (a tiny
 * random llama always, stories260K when ../shared/lm is there); a truncated newest checkpoint
 * falls back to the previous.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
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
import { withTemp } from "../helpers/check.ts";
import { sharedLm } from "../lm/fixtures.ts";
import { liveFixture } from "../lm/live_fixture.ts";

/**
 * Runs `sae train ARGS` (with --steps, --log-every 10 and --checkpoint-every `every`) and kills it
 * with SIGKILL after 2 to `steps`/10 − 4 log lines; resumes it; runs it again uninterrupted; and
 * checks that both end alike: sae.safetensors, the final checkpoint (moments, statistics, step
 * state and the data source's state) and metrics.jsonl, bit for bit.
 */
async function killResumeCompare(args: string[], steps: number, every: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sae-kill-" });
  const all = [
    ...args,
    "--steps",
    `${steps}`,
    "--log-every",
    "10",
    "--checkpoint-every",
    `${every}`,
  ];
  // After 2 checkpoints and before the end.
  const first = Math.ceil((2 * every) / 10) + 1, lines = steps / 10;
  const killAfter = first + Math.floor(Math.random() * (lines - first - 3));
  const victim = spawnTrain([...all, "--out", `${dir}/killed`]);
  await waitForLines(`${dir}/killed/metrics.jsonl`, killAfter, 120_000);
  victim.child.kill("SIGKILL");
  const { status } = await victim.done;
  assert.equal(status.signal, "SIGKILL", `the run ended before the kill (${killAfter} lines)`);
  const resumed = await spawnTrain(["--resume", `${dir}/killed`, "--no-progress"]).done;
  assert.equal(resumed.status.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming .* from step \d+/);
  const from = Number(/from step (\d+)/.exec(resumed.stderr)![1]);
  assert.ok(from > 0 && from % every === 0 && from < steps, resumed.stderr);
  const full = await spawnTrain([...all, "--out", `${dir}/full`]).done;
  assert.equal(full.status.code, 0, full.stderr);

  const msg = `killed after ${killAfter} log lines, resumed from step ${from}`;
  assert.ok(await sameBytes(`${dir}/killed/sae.safetensors`, `${dir}/full/sae.safetensors`), msg);
  // The final checkpoint holds the optimizer moments, statistics and step state.
  const last = `checkpoints/${checkpointName(steps)}`;
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
}

// Checkpoints every 25 steps, logs every 10: most checkpoints fall inside a metrics window.
Deno.test("a run killed with SIGKILL at a random point resumes to the uninterrupted result", async () => {
  await killResumeCompare(TINY_ARGS, 300, 25);
});

Deno.test("a live run (tiny random llama) killed with SIGKILL resumes to the uninterrupted result", async () => {
  await withTemp(async (dir) => {
    const fx = await liveFixture(dir);
    // 8 contexts of 15 rows, batches of 24: a refill every 2.5 steps, checkpoints mid-round.
    await killResumeCompare(fx.args, 200, 15);
  });
});

Deno.test("a live run on stories260K killed with SIGKILL resumes to the uninterrupted result", async () => {
  const lm = sharedLm("the live kill-and-resume test on stories260K");
  if (!lm) return;
  await withTemp(async (dir) => {
    // A fresh corpus sampled from the model (the held-out sample text is never trained on).
    const corpus = join(dir, "corpus.jsonl");
    const model = join(lm, "stories260K/stories260K.bin");
    const gen = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "src/cli/main.ts",
        "lm",
        "generate",
        "--model",
        model,
        "--tokens",
        "20k",
        "--temperature",
        "1",
        "--seed",
        "2",
        "--batch",
        "64",
        "--out",
        corpus,
      ],
      stdout: "null",
      stderr: "piped",
    });
    const g = await gen.output();
    assert.equal(g.code, 0, new TextDecoder().decode(g.stderr));
    const args = [
      "--model",
      model,
      "--hook",
      "blocks.2.hook_resid_pre",
      "--text",
      corpus,
      "--context",
      "64",
      "--lm-batch",
      "8",
      "--buffer-contexts",
      "32",
      "--d-sae",
      "256",
      "--batch",
      "128",
      "--set",
      "init_rows=256",
      "--no-progress",
    ];
    await killResumeCompare(args, 160, 20);
  });
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
