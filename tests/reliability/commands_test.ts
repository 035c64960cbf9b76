/**
 * Issue 17, items 6 and 7, and the same faults in the other commands: export and import replace
 * their output only with a complete one and leave nothing in the way of a rerun; Ctrl-C during a
 * write removes its temporary file; a killed ablation's temporary files are cleaned up; every
 * command's bad output path or refused write is one line with exit 2, never a stack trace.
 */
import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { mergeConfig } from "../../src/config.ts";
import { runSweep } from "../../src/ablate/run.ts";
import { exportSaelens, importSaelens } from "../../src/export/saelens.ts";
import { writeAllBytes, type Writer } from "../../src/run/atomic.ts";
import { DirLock } from "../../src/run/lock.ts";
import { train } from "../../src/sae/trainer.ts";
import { assertOneLineError, cli, QUIET, TINY } from "./helpers.ts";

/** A writer that fails (as a full disk does) on the write whose bytes `pick` chooses. */
function failing(pick: (bytes: Uint8Array) => boolean): Writer {
  return async (file, bytes) => {
    if (pick(bytes)) {
      await writeAllBytes(file, bytes.subarray(0, bytes.length >> 1));
      throw new Error("No space left on device (os error 28)");
    }
    await writeAllBytes(file, bytes);
  };
}

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

const names = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

/** Two finished tiny runs (different seeds) in `dir`. */
async function twoRuns(dir: string): Promise<[string, string]> {
  const a = join(dir, "a"), b = join(dir, "b");
  await train(mergeConfig(TINY, { steps: 20 }), { ...QUIET, outDir: a });
  await train(mergeConfig(TINY, { steps: 20, seed: 9 }), { ...QUIET, outDir: b });
  return [a, b];
}

Deno.test("export --overwrite that fails part-way keeps the old export whole; a killed export's temp is no obstacle", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-cmd-export-" });
  const [a, b] = await twoRuns(dir);
  const out = join(dir, "exported");
  await exportSaelens(a, out, { overwrite: false });
  const before = await tree(out);
  const err = await exportSaelens(b, out, {
    overwrite: true,
    writer: failing((bytes) => bytes.length > 1000),
  }).then(() => null, (e) => e);
  assert.match(String(err), /cannot write .*exported\/sae_weights\.safetensors: No space left/);
  assert.deepEqual(await tree(out), before, "the old export is untouched");
  assert.deepEqual(names(dir), ["a", "b", "exported"], "nothing left beside it");
  await exportSaelens(b, out, { overwrite: true });
  assert.notDeepEqual(await tree(out), before);

  // An older export killed mid-write left only a temporary file: the rerun needs no --overwrite.
  const killed = join(dir, "killed");
  await Deno.mkdir(killed);
  await Deno.writeTextFile(join(killed, "sae_weights.safetensors.tmp-0123456789ab"), "half");
  const { code, err: e2 } = await cli(["export", a, "--out", killed]);
  assert.equal(code, 0, e2);
  assert.deepEqual(names(killed), ["cfg.json", "sae_weights.safetensors"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("import that fails part-way leaves no run directory; a rerun needs no --resume; a run in use is not replaced", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-cmd-import-" });
  const [a] = await twoRuns(dir);
  await exportSaelens(a, join(dir, "exported"), { overwrite: false });
  const out = join(dir, "imported");
  const err = await importSaelens(join(dir, "exported"), out, {
    overwrite: false,
    writer: failing((bytes) => bytes.length > 4000),
  }).then(() => null, (e) => e);
  assert.match(String(err), /cannot write .*imported\/sae\.safetensors: No space left/);
  assert.deepEqual(names(dir), ["a", "b", "exported"], "no run directory, no staging left");
  const { code, err: e2 } = await cli(["import", join(dir, "exported"), "--out", out]);
  assert.equal(code, 0, e2);

  // A run being trained (locked) is not replaced by an import.
  const lock = await DirLock.acquire(a, "sae train");
  try {
    const r = await cli(["import", join(dir, "exported"), "--out", a, "--overwrite"]);
    assert.equal(r.code, 2, r.err);
    assertOneLineError(r.err, /a is in use by sae train/);
  } finally {
    await lock.release();
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("Ctrl-C during a write: exit 130, one line, no temporary file left", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-cmd-sigint-" });
  const target = join(dir, "ablation.svg");
  await Deno.writeTextFile(target, "old");
  const url = (p: string) => pathToFileURL(resolve(p)).href;
  // A command's write that hangs half-way, as a slow disk would, under the CLI's handler.
  const script = `
    import { atomicWrite, writeAllBytes } from "${url("src/run/atomic.ts")}";
    import { exitOnInterrupt } from "${url("src/run/signals.ts")}";
    exitOnInterrupt();
    setInterval(() => {}, 1000);
    await atomicWrite(${JSON.stringify(target)}, "new contents", {
      writer: async (file, bytes) => {
        await writeAllBytes(file, bytes.subarray(0, 3));
        console.log("writing");
        await new Promise(() => {});
      },
    });`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const first = await reader.read();
  assert.equal(new TextDecoder().decode(first.value), "writing\n");
  reader.releaseLock();
  assert.equal(names(dir).length, 2, "the temporary file exists while writing");
  child.kill("SIGINT");
  const { code, stderr } = await child.output();
  assert.equal(code, 130);
  assert.equal(
    new TextDecoder().decode(stderr),
    "interrupted (SIGINT); files being written were removed, earlier ones are as they were\n",
  );
  assert.deepEqual(names(dir), ["ablation.svg"]);
  assert.equal(await Deno.readTextFile(target), "old");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ablate removes the temporary files a killed summary write left", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-cmd-ablate-" });
  await Deno.writeTextFile(join(dir, "ablation.svg.tmp-0123456789ab"), "<svg");
  await Deno.writeTextFile(join(dir, "notes.txt.tmp-0123456789ab"), "not ours");
  await runSweep({ base: { steps: 10 }, runs: [{ name: "a", overrides: {} }] }, dir, {
    progress: false,
    log: () => {},
    only: ["a"],
    train: () => Promise.reject(new Error("stub: no training in this test")),
  });
  const left = names(dir);
  assert.ok(!left.includes("ablation.svg.tmp-0123456789ab"), left.join(", "));
  assert.ok(left.includes("notes.txt.tmp-0123456789ab"), "only its own files' temporaries go");
  assert.ok(left.includes("ablation.svg") && !left.includes(".lock"), left.join(", "));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bad output paths and refused writes are one line with exit 2 in every command", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-cmd-out-" });
  const [run] = await twoRuns(dir);
  const file = join(dir, "plain-file");
  await Deno.writeTextFile(file, "x");
  const sweep = join(dir, "sweep.yaml");
  await Deno.writeTextFile(
    sweep,
    "base: { steps: 10, d_in: 16, d_sae: 32, batch: 32 }\nruns: { a: {} }\n",
  );
  const cases: [string[], RegExp][] = [
    [
      ["eval", run, "--out", join(dir, "missing", "eval.json")],
      /the directory .*missing does not exist/,
    ],
    [["eval", run, "--out", dir], /--out .* is a directory; give the path of a file/],
    [["eval", run, "--out", join(file, "eval.json")], /plain-file is not a directory/],
    [["report", run, "--out", dir], /--out .* is a directory; give the path of the HTML file/],
    [["report", run, "--out", join(file, "r.html")], /cannot write .*plain-file\/r\.html: /],
    [["synth", "--rows", "10", "--out", join(file, "x.npy")], /plain-file is not a directory/],
    [["synth", "--rows", "10", "--out", join(dir, "missing", "x.npy")], /does not exist/],
    [["export", run, "--out", join(file, "exp")], /cannot write .*plain-file\/exp/],
    [
      ["import", join(dir, "nothing"), "--out", join(dir, "r2")],
      /nothing does not exist: pass a SAELens directory/,
    ],
    [["ablate", "--sweep", sweep, "--out", join(file, "abl")], /Not a directory|not a directory/],
    [
      [
        "lm",
        "generate",
        "--model",
        "nonexistent",
        "--tokens",
        "10",
        "--out",
        join(dir, "missing", "c.txt"),
      ],
      /the directory .*missing does not exist/,
    ],
  ];
  for (const [args, message] of cases) {
    const { code, err } = await cli(args);
    assert.equal(code, 2, `${args.join(" ")}: ${err}`);
    assertOneLineError(err, message);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name:
    "read-only output directories: one line with exit 2 in eval, report, synth, export and ablate",
  // chmod does not stop root (passed when run as uid 65534).
  ignore: Deno.build.os === "windows" || Deno.uid() === 0,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "sae-cmd-ro-" });
    const [run] = await twoRuns(dir);
    const ro = join(dir, "ro");
    await Deno.mkdir(ro);
    const sweep = join(dir, "sweep.yaml");
    await Deno.writeTextFile(
      sweep,
      "base: { steps: 10, d_in: 16, d_sae: 32, batch: 32 }\nruns: { a: {} }\n",
    );
    await Deno.chmod(ro, 0o555);
    await Deno.chmod(run, 0o555);
    try {
      for (
        const args of [
          ["eval", run],
          ["report", run],
          ["synth", "--rows", "10", "--out", join(ro, "x.npy")],
          ["export", run],
          ["export", run, "--out", join(ro, "exp")],
          ["ablate", "--sweep", sweep, "--out", join(ro, "abl")],
        ]
      ) {
        const { code, err } = await cli(args);
        assert.equal(code, 2, `${args.join(" ")}: ${err}`);
        assertOneLineError(err, /denied/i);
      }
    } finally {
      await Deno.chmod(ro, 0o755);
      await Deno.chmod(run, 0o755);
    }
    await Deno.remove(dir, { recursive: true });
  },
});
