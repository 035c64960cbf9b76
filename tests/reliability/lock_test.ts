/**
 * Issue 17, item 10: a run directory (and a harvest's or an ablation's output directory) is locked
 * while a command writes into it. A second training into the same --out is refused at once,
 * naming the first (pid, host, start time), however the two are timed; the lock goes when the
 * holder exits, and the file of one killed is detected as stale and taken over with a note.
 */
import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
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

/** A lock file left by a process that is gone (killed before it could remove it). */
async function writeStaleLock(dir: string, pid: number, command: string) {
  await Deno.writeTextFile(
    join(dir, LOCK_FILE),
    JSON.stringify({ pid, host: Deno.hostname(), started: "2026-01-01T00:00:00.000Z", command }),
  );
}

/** Another process holding the lock of `dir` for `command` until killed. */
async function holdLock(dir: string, command: string): Promise<Deno.ChildProcess> {
  const url = pathToFileURL(resolve("src/run/lock.ts")).href;
  const script = `
    import { DirLock } from "${url}";
    await DirLock.acquire(${JSON.stringify(dir)}, ${JSON.stringify(command)});
    console.log("held");
    setInterval(() => {}, 1000);`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  assert.equal(new TextDecoder().decode(value), "held\n");
  return child;
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
          `to end \\(or stop it\\) and run this again`,
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
  await writeStaleLock(dir, 999999, "sae train");
  const notes: string[] = [];
  const lock = await DirLock.acquire(dir, "test", { log: (l) => notes.push(l) });
  assert.match(notes.join(""), /locked by sae train \(pid 999999 .*no longer running; taking over/);
  await assert.rejects(DirLock.acquire(dir, "test"), /in use by test \(pid \d+/);
  await lock.release();
  assert.deepEqual([...Deno.readDirSync(dir)], [], "released: nothing left");

  const live = await holdLock(dir, "sae train");
  try {
    await assert.rejects(
      DirLock.acquire(dir, "test"),
      new RegExp(`in use by sae train \\(pid ${live.pid} `),
    );
  } finally {
    live.kill("SIGKILL");
    await live.status;
  }
  // Killed: the system released its lock; its file is left, stale, and taken over.
  const after: string[] = [];
  await (await DirLock.acquire(dir, "test", { log: (l) => after.push(l) })).release();
  assert.match(after.join(""), new RegExp(`pid ${live.pid} .*no longer running; taking over`));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("harvest and ablate output directories are locked too", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-lock-out-" });
  const acts = join(dir, "acts");
  await Deno.mkdir(acts);
  const sweepDir = join(dir, "sweep");
  await Deno.mkdir(sweepDir);
  const live = await holdLock(acts, "sae harvest");
  const live2 = await holdLock(sweepDir, "sae ablate");
  try {
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

    await assert.rejects(
      runSweep({ base: { steps: 10 }, runs: [{ name: "a", overrides: {} }] }, sweepDir, {
        progress: false,
        log: () => {},
        train: () => Promise.reject(new Error("must not train")),
      }),
      new RegExp(`${sweepDir} is in use by sae ablate \\(pid ${live2.pid}`),
    );
  } finally {
    for (const p of [live, live2]) {
      p.kill("SIGKILL");
      await p.status;
    }
  }
  await Deno.remove(dir, { recursive: true });
});
