import assert from "node:assert/strict";
import { DEFAULT_CONFIG, mergeConfig, type TrainConfig } from "../../src/config.ts";
import { encodeRows, loadSae } from "../../src/sae/load.ts";
import { train } from "../../src/sae/trainer.ts";

/** A small synthetic problem the baseline solves in well under a minute on the CPU adapter. */
const SMALL: TrainConfig = mergeConfig(DEFAULT_CONFIG, {
  d_in: 64,
  d_sae: 256,
  batch: 256,
  steps: 2000,
  log_every: 100,
  checkpoint_every: 1000,
  init_rows: 1024,
  synthetic: { n_features: 128, n_parents: 4, children_per_parent: 2, n_groups: 4 },
});

async function readLines(path: string) {
  return (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
}

Deno.test("e2e: a short run reaches EV ≥ 0.9 and recovers ≥ 80% of the ground truth", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-e2e-" });
  const out = `${dir}/run`;
  const { metrics } = await train(SMALL, {
    outDir: out,
    resume: false,
    overwrite: false,
    progress: false,
    report: false,
  });
  assert.ok(metrics.explained_variance >= 0.9, `EV ${metrics.explained_variance}`);
  assert.ok(metrics.recovered_at_0_9 >= 0.8, `recovered ${metrics.recovered_at_0_9}`);
  assert.ok(metrics.l0 > 1 && metrics.l0 < 64, `L0 ${metrics.l0}`);
  // The run directory holds what the README promises.
  const lines = await readLines(`${out}/metrics.jsonl`);
  assert.equal(lines.length, SMALL.steps / SMALL.log_every);
  assert.deepEqual(lines.map((l) => l.step), lines.map((_, i) => (i + 1) * SMALL.log_every));
  for (
    const key of ["loss", "l0", "explained_variance", "lr", "dead_fraction", "phase", "steps_per_s"]
  ) {
    assert.ok(Number.isFinite(lines.at(-1)[key]), `metrics.jsonl lacks ${key}`);
  }
  assert.ok(lines.at(-1).loss < lines[0].loss, "loss did not fall");
  const saved = JSON.parse(await Deno.readTextFile(`${out}/metrics.json`));
  assert.equal(saved.explained_variance, metrics.explained_variance);
  const ckpts = [...Deno.readDirSync(`${out}/checkpoints`)].map((e) => e.name).sort();
  assert.deepEqual(ckpts, ["step-00001000.safetensors", "step-00002000.safetensors"]);
  // The saved SAE loads back and encodes like the trained one: unit-norm decoder rows.
  const sae = await loadSae(out);
  assert.equal(sae.cfg.d_sae, 256);
  for (let i = 0; i < sae.cfg.d_sae; i += 37) {
    let s = 0;
    for (let k = 0; k < 64; k++) s += sae.weights.wDec[i * 64 + k] ** 2;
    assert.ok(Math.abs(s - 1) < 1e-4, `decoder row ${i} norm² ${s}`);
  }
  const f = encodeRows(sae, new Float32Array(64).fill(0.1));
  assert.equal(f.length, 256);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("e2e: a run resumed from a checkpoint ends identical to an uninterrupted run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-resume-" });
  const cfg = mergeConfig(SMALL, {
    d_sae: 64,
    batch: 64,
    steps: 60,
    log_every: 10,
    checkpoint_every: 20,
  });
  const opts = { resume: false, overwrite: false, progress: false, report: false };
  await train(cfg, { ...opts, outDir: `${dir}/full` });
  // Stop at step 40, then resume to 60 with the same config.
  await train({ ...cfg, steps: 40 }, { ...opts, outDir: `${dir}/part` });
  await train(cfg, { ...opts, outDir: `${dir}/part`, resume: true });
  const a = await Deno.readFile(`${dir}/full/sae.safetensors`);
  const b = await Deno.readFile(`${dir}/part/sae.safetensors`);
  assert.ok(a.length === b.length && a.every((v, i) => v === b[i]), "weights differ after resume");
  const strip = (ls: Record<string, number>[]) => ls.map(({ steps_per_s: _, ...rest }) => rest);
  assert.deepEqual(
    strip(await readLines(`${dir}/part/metrics.jsonl`)),
    strip(await readLines(`${dir}/full/metrics.jsonl`)),
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("e2e: the paper variant trains, logs its phase change and checkpoints its statistics", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-paper-" });
  const cfg = mergeConfig(SMALL, {
    variant: "paper",
    d_sae: 128,
    steps: 300,
    recon_only_steps: 100,
    checkpoint_every: 150,
    log_every: 50,
  });
  const opts = { resume: false, overwrite: false, progress: false, report: false };
  const { metrics } = await train(cfg, { ...opts, outDir: `${dir}/full` });
  assert.ok(metrics.explained_variance > 0.5, `EV ${metrics.explained_variance}`);
  const lines = await readLines(`${dir}/full/metrics.jsonl`);
  assert.deepEqual(lines.map((l) => l.phase), [1, 1, 2, 2, 2, 2]);
  // Resume mid-run restores the EMA statistics too: the result is identical.
  await train({ ...cfg, steps: 150 }, { ...opts, outDir: `${dir}/part` });
  await train(cfg, { ...opts, outDir: `${dir}/part`, resume: true });
  const a = await Deno.readFile(`${dir}/full/sae.safetensors`);
  const b = await Deno.readFile(`${dir}/part/sae.safetensors`);
  assert.ok(a.length === b.length && a.every((v, i) => v === b[i]), "weights differ after resume");
  await Deno.remove(dir, { recursive: true });
});
