/**
 * Issue 17, items 1, 5 and 8: `--resume` never trains over a finished SAE from step 0 (checkpoints
 * deleted, every checkpoint corrupt, a run made by `sae import`); every input to a resume is
 * checked before anything is written, so a refused override leaves config.yaml as it was; keys
 * that define the run are fixed, fewer steps than done are refused, and changes that are allowed
 * are named; one damaged line in metrics.jsonl drops that line only.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { mergeConfig, type TrainConfig, validateConfig } from "../../src/config.ts";
import { UserError } from "../../src/errors.ts";
import { exportSaelens, importSaelens } from "../../src/export/saelens.ts";
import { checkpointName } from "../../src/run/checkpoint.ts";
import { readRunConfig } from "../../src/run/rundir.ts";
import { train } from "../../src/sae/trainer.ts";
import { captureStderr, cli, metricsLines, QUIET, sameBytes, TINY } from "./helpers.ts";

const CFG = mergeConfig(TINY, { steps: 40, checkpoint_every: 20 });

/** A finished tiny run in `dir/run`; returns its path. */
async function finishedRun(dir: string, cfg: TrainConfig = CFG): Promise<string> {
  const out = join(dir, "run");
  await train(cfg, { ...QUIET, outDir: out });
  return out;
}

/** The bytes of every file that matters in a finished run, to compare before and after. */
async function snapshotFiles(run: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const f of ["sae.safetensors", "config.yaml", "metrics.json", "metrics.jsonl"]) {
    try {
      out.set(f, await Deno.readFile(join(run, f)));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return out;
}

async function assertUnchanged(run: string, before: Map<string, Uint8Array>) {
  const after = await snapshotFiles(run);
  assert.deepEqual([...after.keys()], [...before.keys()]);
  for (const [f, bytes] of before) assert.deepEqual(after.get(f), bytes, `${f} changed`);
}

Deno.test("--resume with checkpoints/ deleted refuses (exit 2, one line) and keeps the finished SAE", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-resume-gone-" });
  const run = await finishedRun(dir);
  await Deno.remove(join(run, "checkpoints"), { recursive: true });
  const before = await snapshotFiles(run);
  const { code, err } = await cli(["train", "--resume", run, "--steps", "60", "--no-progress"]);
  assert.equal(code, 2, err);
  assert.equal(err.split("\n").filter((l) => l.startsWith("error:")).length, 1, err);
  assert.match(
    err,
    /error: cannot resume .*run: it holds a finished SAE \(sae\.safetensors\) but no checkpoint .*pass --overwrite instead of --resume .* or choose another --out/,
  );
  await assertUnchanged(run, before);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("--resume when every checkpoint is corrupt refuses and keeps the finished SAE", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-resume-corrupt-" });
  const run = await finishedRun(dir);
  for (const step of [20, 40]) {
    const path = join(run, "checkpoints", checkpointName(step));
    const bytes = await Deno.readFile(path);
    bytes[bytes.length - 5] ^= 0x10;
    await Deno.writeFile(path, bytes);
  }
  const before = await snapshotFiles(run);
  const { lines, error } = await captureStderr(() =>
    train({ ...CFG, steps: 60 }, { ...QUIET, outDir: run, resume: true })
  );
  assert.ok(error instanceof UserError, String(error));
  assert.match(
    error.message,
    /cannot resume .*: none of its 2 checkpoints is usable \(see the warnings above\) and it holds a finished SAE/,
  );
  assert.equal(lines.filter((l) => l.startsWith("warning: skipping unusable")).length, 2);
  await assertUnchanged(run, before);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("--resume of a run made by sae import refuses: its weights may be the only copy", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-resume-import-" });
  const run = await finishedRun(dir);
  await exportSaelens(run, join(dir, "exported"), { overwrite: false });
  const imported = join(dir, "imported");
  await importSaelens(join(dir, "exported"), imported, { overwrite: false });
  const before = await snapshotFiles(imported);
  const { code, err } = await cli([
    "train",
    "--resume",
    imported,
    "--steps",
    "30",
    "--no-progress",
  ]);
  assert.equal(code, 2, err);
  assert.match(err, /error: cannot resume .*imported: it holds an SAE made by 'sae import'/);
  await assertUnchanged(imported, before);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("--resume of a run stopped before its first checkpoint starts it from step 0", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-resume-early-" });
  const run = join(dir, "run");
  const err = await train(CFG, {
    ...QUIET,
    outDir: run,
    onStep: (step) => {
      if (step === 5) throw new UserError("stopped at step 5");
    },
  }).then(() => null, (e) => e);
  assert.match(String(err), /stopped at step 5/);
  const { lines, error } = await captureStderr(() =>
    train(CFG, { ...QUIET, outDir: run, resume: true })
  );
  assert.equal(error, undefined, String(error));
  assert.ok(
    lines.some((l) => /no checkpoint in .*starting from step 0/.test(l)),
    lines.join(" | "),
  );
  await train(CFG, { ...QUIET, outDir: join(dir, "full") });
  assert.ok(await sameBytes(join(run, "sae.safetensors"), join(dir, "full", "sae.safetensors")));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a refused --resume override leaves config.yaml as it was; a plain --resume still works", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-resume-cfg-" });
  const run = await finishedRun(dir, mergeConfig(CFG, { steps: 20 }));
  const config = await Deno.readFile(join(run, "config.yaml"));
  const refused: [string[], RegExp][] = [
    [["--d-sae", "64"], /with d_sae 64: its checkpoint \(step 20\) was trained with d_sae 32/],
    [["--set", "variant=paper"], /with variant paper: .* trained with variant baseline/],
    [["--seed", "7"], /with seed 7: .* trained with seed 42/],
    [
      ["--batch", "16", "--set", "synthetic.n_features=300"],
      /with batch 16, synthetic\.n_features 300/,
    ],
    [
      ["--steps", "10"],
      /with steps 10: its checkpoint is at step 20 already; give --steps 20 or more/,
    ],
  ];
  for (const [flags, message] of refused) {
    const { code, err } = await cli(["train", "--resume", run, "--no-progress", ...flags]);
    assert.equal(code, 2, `${flags}: ${err}`);
    assert.match(err, message, flags.join(" "));
    assert.deepEqual(await Deno.readFile(join(run, "config.yaml")), config, `${flags} wrote it`);
  }
  // What may change is named, and config.yaml then records it.
  const base = validateConfig(await readRunConfig(run), "config.yaml");
  const { lines, error } = await captureStderr(() =>
    train({ ...base, steps: 40, lr: 1e-3 }, { ...QUIET, outDir: run, resume: true })
  );
  assert.equal(error, undefined, String(error));
  assert.ok(
    lines.includes("resume changes steps 20 → 40, lr 0.003 → 0.001 from step 21"),
    lines.join(" | "),
  );
  const after = validateConfig(await readRunConfig(run), "config.yaml");
  assert.equal(after.lr, 1e-3);
  assert.equal((await cli(["train", "--resume", run, "--no-progress"])).code, 0);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a damaged line in the middle of metrics.jsonl is dropped alone on resume", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-resume-log-" });
  const cfg = mergeConfig(CFG, { steps: 60 });
  await train(cfg, { ...QUIET, outDir: join(dir, "full") });
  const run = join(dir, "run");
  await train(mergeConfig(cfg, { steps: 40 }), { ...QUIET, outDir: run });
  const path = join(run, "metrics.jsonl");
  const lines = (await Deno.readTextFile(path)).trimEnd().split("\n");
  // Line 2 becomes garbage, line 3's step a later one (a flipped digit): both damaged.
  lines[1] = "\u0000\u0000garbage";
  lines[2] = lines[2].replace(/"step":30/, '"step":90');
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  const { lines: err, error } = await captureStderr(() =>
    train(cfg, { ...QUIET, outDir: run, resume: true })
  );
  assert.equal(error, undefined, String(error));
  assert.equal(err.filter((l) => /metrics\.jsonl line [23] is damaged/.test(l)).length, 2);
  const got = await metricsLines(path);
  const want = (await metricsLines(join(dir, "full", "metrics.jsonl"))).filter((r) =>
    r.step !== 20 && r.step !== 30
  );
  assert.deepEqual(got, want, "every line after the damaged ones is kept");
  await Deno.remove(dir, { recursive: true });
});
