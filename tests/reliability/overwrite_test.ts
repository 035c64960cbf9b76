/**
 * Issue 17, item 2: `--overwrite` never deletes the old run before its replacement is complete.
 * Bad inputs (missing data, a width mismatch) are refused with the old run untouched; a
 * replacement trains beside it (DIR.new) and takes its place only when finished; one that stops
 * part-way leaves the old run as it was and resumes with `--resume DIR.new`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { mergeConfig } from "../../src/config.ts";
import { UserError } from "../../src/errors.ts";
import { train } from "../../src/sae/trainer.ts";
import {
  assertOneLineError,
  captureStderr,
  cli,
  QUIET,
  sameBytes,
  TINY,
  TINY_ARGS,
  writeRowsNpy,
} from "./helpers.ts";

/** Every file under `dir` with its bytes. */
async function tree(dir: string, prefix = ""): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const e of [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory) { for (const [k, v] of await tree(p, `${prefix}${e.name}/`)) out.set(k, v); }
    else out.set(prefix + e.name, await Deno.readFile(p));
  }
  return out;
}

Deno.test("--overwrite with bad inputs, or failing early, leaves the finished run as it was", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-ow-bad-" });
  const run = join(dir, "run");
  await train(mergeConfig(TINY, { steps: 20 }), { ...QUIET, outDir: run });
  const before = await tree(run);
  await writeRowsNpy(join(dir, "acts16.npy"), 500, 16);
  const cases: [string[], RegExp][] = [
    [["--data", join(dir, "nonexistent.npy")], /activation data '.*nonexistent\.npy' not found/],
    [
      ["--data", join(dir, "acts16.npy"), "--d-in", "8"],
      /d_in is 8 .* are 16 wide: pass --d-in 16/,
    ],
  ];
  for (const [flags, message] of cases) {
    const { code, err } = await cli(["train", "--out", run, "--overwrite", ...TINY_ARGS, ...flags]);
    assert.equal(code, 2, err);
    assertOneLineError(err, message);
    assert.deepEqual(await tree(run), before, `${flags.join(" ")} changed the old run`);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["acts16.npy", "run"]);
  }
  // A replacement that fails before its first checkpoint leaves nothing beside the old run.
  const early = await train(mergeConfig(TINY, { steps: 40 }), {
    ...QUIET,
    outDir: run,
    overwrite: true,
    onStep: (step) => {
      if (step === 5) throw new UserError("stopped at step 5");
    },
  }).then(() => null, (e) => e);
  assert.match(String(early), /stopped at step 5/);
  assert.deepEqual(await tree(run), before);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["acts16.npy", "run"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an --overwrite that stops part-way keeps the old run; --resume DIR.new finishes and swaps", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-ow-stop-" });
  const run = join(dir, "run");
  await train(mergeConfig(TINY, { steps: 20 }), { ...QUIET, outDir: run });
  const before = await tree(run);
  const cfg = mergeConfig(TINY, { steps: 60, seed: 7 });
  const { lines, error } = await captureStderr(() =>
    train(cfg, {
      ...QUIET,
      outDir: run,
      overwrite: true,
      onStep: (step) => {
        if (step === 25) throw new UserError("stopped at step 25");
      },
    })
  );
  assert.match(String(error), /stopped at step 25/);
  assert.ok(lines.some((l) => l.startsWith(`replacing ${run}: training into ${run}.new`)));
  assert.deepEqual(await tree(run), before, "the old run is untouched until the new one finishes");
  assert.deepEqual([...Deno.readDirSync(`${run}.new/checkpoints`)].map((e) => e.name), [
    "step-00000020.safetensors",
  ]);

  const done = await captureStderr(() =>
    train(cfg, { ...QUIET, outDir: `${run}.new`, resume: true })
  );
  assert.equal(done.error, undefined, String(done.error));
  assert.equal(done.result?.outDir, run);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["run"], "no .new or .old left");
  await train(cfg, { ...QUIET, outDir: join(dir, "full") });
  assert.ok(await sameBytes(join(run, "sae.safetensors"), join(dir, "full", "sae.safetensors")));
  assert.ok(!(await tree(run)).has(".replaces"));
  assert.ok(!(await tree(run)).has(".lock"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a finished --overwrite replaces the old run whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-ow-ok-" });
  const run = join(dir, "run");
  await train(mergeConfig(TINY, { steps: 20, checkpoint_every: 10 }), { ...QUIET, outDir: run });
  const cfg = mergeConfig(TINY, { steps: 30 });
  const { error } = await captureStderr(() =>
    train(cfg, { ...QUIET, outDir: run, overwrite: true })
  );
  assert.equal(error, undefined, String(error));
  await train(cfg, { ...QUIET, outDir: join(dir, "fresh") });
  // The same files as a fresh run in an empty directory: nothing of the old run is left.
  const [got, want] = [await tree(run), await tree(join(dir, "fresh"))];
  assert.deepEqual([...got.keys()], [...want.keys()]);
  assert.ok(await sameBytes(join(run, "sae.safetensors"), join(dir, "fresh", "sae.safetensors")));
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["fresh", "run"]);
  await Deno.remove(dir, { recursive: true });
});
