/**
 * Issue 17, item 10: a run directory (and a harvest's or an ablation's output directory) is locked
 * while a command writes into it. A second training into the same --out is refused at once,
 * naming the first (pid, host, start time), however the two are timed; the lock goes when the
 * holder exits, and one left by a killed process is detected as stale and taken over with a note.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { mergeConfig } from "../../src/config.ts";
import { UserError } from "../../src/errors.ts";
import { runSweep } from "../../src/ablate/run.ts";
import { harvest } from "../../src/lm/harvest.ts";
import { inspectText } from "../../src/lm/text.ts";
import { DirLock, LOCK_FILE } from "../../src/run/lock.ts";
import { train } from "../../src/sae/trainer.ts";
import {
  assertOneLineError,
  captureStderr,
  cli,
  QUIET,
  spawnTrain,
  TINY,
  TINY_ARGS,
  waitForLines,
} from "./helpers.ts";

/** Field 22 of /proc/PID/stat (the process's start time), as the lock records it. */
function procStart(pid: number): string | undefined {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return text.slice(text.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** Writes the lock a process `pid` of this host would hold on `dir`. */
async function writeLock(dir: string, pid: number, command: string) {
  await Deno.writeTextFile(
    join(dir, LOCK_FILE),
    JSON.stringify({
      pid,
      host: Deno.hostname(),
      started: "2026-01-01T00:00:00.000Z",
      command,
      token: "0123456789abcdef",
      proc_start: procStart(pid),
    }),
  );
}

/** A process that stays alive until killed (a lock holder that is still running). */
function liveProcess(): Deno.ChildProcess {
  return new Deno.Command("sleep", { args: ["60"], stdout: "null", stderr: "null" }).spawn();
}

Deno.test("a second training into a run in progress is refused at once; after a kill the stale lock is taken over", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-lock-run-" });
  const run = join(dir, "run");
  const args = [...TINY_ARGS, "--log-every", "10", "--checkpoint-every", "20"];
  const first = spawnTrain([...args, "--steps", "3000", "--out", run]);
  await waitForLines(join(run, "metrics.jsonl"), 3);
  for (const flags of [["--resume", run], ["--out", run, "--overwrite", ...args]]) {
    const { code, err } = await cli(["train", ...flags, "--no-progress"]);
    assert.equal(code, 2, err);
    assertOneLineError(
      err,
      new RegExp(
        `${run} is in use by sae train \\(pid ${first.child.pid} on .*, since .*\\); wait for it ` +
          `to end, or if it is no longer running, delete ${run}/\\.lock`,
      ),
    );
  }
  first.child.kill("SIGKILL");
  assert.equal((await first.done).status.signal, "SIGKILL");
  const resumed = await captureStderr(() =>
    train(mergeConfig(TINY, { steps: 60, log_every: 10, checkpoint_every: 20 }), {
      ...QUIET,
      outDir: run,
      resume: true,
    })
  );
  assert.equal(resumed.error, undefined, String(resumed.error));
  assert.ok(
    resumed.lines.some((l) =>
      l.startsWith(`note: ${run} was locked by sae train (pid ${first.child.pid} `) &&
      l.endsWith("which is no longer running; taking over")
    ),
    resumed.lines.join(" | "),
  );
  assert.ok(!(await Deno.stat(join(run, LOCK_FILE)).catch(() => null)), "released on exit");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("two trainings started together into one new --out: exactly one runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-lock-race-" });
  const cfg = mergeConfig(TINY, { steps: 30 });
  const opts = { ...QUIET, outDir: join(dir, "run") };
  const results = await Promise.allSettled([train(cfg, opts), train(cfg, opts)]);
  const refused = results.filter((r) => r.status === "rejected");
  assert.equal(refused.length, 1, JSON.stringify(results.map((r) => r.status)));
  const reason = (refused[0] as PromiseRejectedResult).reason;
  assert.ok(reason instanceof UserError, String(reason));
  assert.match(reason.message, new RegExp(`is in use by sae train \\(pid ${Deno.pid} on `));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a lock whose process is gone is stale; one whose process runs is not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-lock-stale-" });
  const gone = new Deno.Command("true").spawn();
  await gone.status;
  await writeLock(dir, gone.pid, "sae train");
  const notes: string[] = [];
  const lock = await DirLock.acquire(dir, "test", { log: (l) => notes.push(l) });
  assert.match(notes.join(""), new RegExp(`pid ${gone.pid} .*no longer running; taking over`));
  await assert.rejects(DirLock.acquire(dir, "test"), /in use by test \(pid \d+/);
  await lock.release();
  assert.deepEqual([...Deno.readDirSync(dir)], [], "released: nothing left");

  const live = liveProcess();
  try {
    await writeLock(dir, live.pid, "sae train");
    await assert.rejects(
      DirLock.acquire(dir, "test"),
      new RegExp(`in use by sae train \\(pid ${live.pid}`),
    );
  } finally {
    live.kill("SIGKILL");
    await live.status;
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("harvest and ablate output directories are locked too", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-lock-out-" });
  const live = liveProcess();
  try {
    const acts = join(dir, "acts");
    await Deno.mkdir(acts);
    await writeLock(acts, live.pid, "sae harvest");
    const text = join(dir, "text.jsonl");
    await Deno.writeTextFile(text, '{"text": "abc def"}\n{"text": "ghi"}\n');
    const tokenizer = {
      name: "test:letters",
      vocabSize: 40,
      bos: 1,
      eos: 2,
      encode: (s: string) => Array.from(s, (c) => (c.charCodeAt(0) % 30) + 3),
      decode: () => "",
    };
    await assert.rejects(
      harvest({
        contexts: { sources: await inspectText([text]), tokenizer, context: 4 },
        activations: (t) => Promise.resolve(new Float32Array((t.length / 4) * 3 * 2)),
        d: 2,
        tokens: 6,
        shardRows: 6,
        dtype: "f32",
        outDir: acts,
        manifest: {
          model: {},
          hook: "blocks.0.hook_resid_pre",
          tokenizer: { name: "t", sha256: null },
        },
        log: () => {},
      }),
      new RegExp(`${acts} is in use by sae harvest \\(pid ${live.pid}`),
    );

    const sweepDir = join(dir, "sweep");
    await Deno.mkdir(sweepDir);
    await writeLock(sweepDir, live.pid, "sae ablate");
    await assert.rejects(
      runSweep({ base: { steps: 10 }, runs: [{ name: "a", overrides: {} }] }, sweepDir, {
        progress: false,
        log: () => {},
        train: () => Promise.reject(new Error("must not train")),
      }),
      new RegExp(`${sweepDir} is in use by sae ablate \\(pid ${live.pid}`),
    );
  } finally {
    live.kill("SIGKILL");
    await live.status;
  }
  await Deno.remove(dir, { recursive: true });
});
