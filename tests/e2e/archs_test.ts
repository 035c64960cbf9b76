/**
 * The architectures end to end: a run resumed from a checkpoint ends identical to an uninterrupted
 * one (their state, θ, log θ and its moments, travels in the checkpoint; resampling is seeded by
 * the step), and each variant learns the small synthetic problem.
 */
import assert from "node:assert/strict";
import { DEFAULT_CONFIG, mergeConfig, type PartialConfig } from "../../src/config.ts";
import { train } from "../../src/sae/trainer.ts";
import { QUIET } from "../helpers/runs.ts";

const SMALL = mergeConfig(DEFAULT_CONFIG, {
  d_in: 64,
  d_sae: 64,
  batch: 64,
  steps: 60,
  log_every: 10,
  checkpoint_every: 20,
  init_rows: 256,
  dead_steps: 10,
  k: 6,
  synthetic: { n_features: 128, n_parents: 4, children_per_parent: 2, n_groups: 4 },
});

for (
  const [name, over] of [
    ["topk", { variant: "topk" }],
    ["batchtopk", { variant: "batchtopk" }],
    ["jumprelu", { variant: "jumprelu", jumprelu_init_threshold: 0.1 }],
    ["matryoshka", { variant: "matryoshka", matryoshka_fractions: "0.25,0.75" }],
    ["baseline with resampling", { variant: "baseline", resample_steps: 25, l1: 1 }],
  ] as const
) {
  Deno.test(`e2e: a resumed ${name} run ends identical to an uninterrupted one`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "sae-archs-resume-" });
    try {
      const cfg = mergeConfig(SMALL, over as PartialConfig);
      await train(cfg, { ...QUIET, outDir: `${dir}/full` });
      await train({ ...cfg, steps: 40 }, { ...QUIET, outDir: `${dir}/part` });
      await train(cfg, { ...QUIET, outDir: `${dir}/part`, resume: true });
      const a = await Deno.readFile(`${dir}/full/sae.safetensors`);
      const b = await Deno.readFile(`${dir}/part/sae.safetensors`);
      assert.ok(a.length === b.length && a.every((v, i) => v === b[i]), "weights differ");
      const ma = JSON.parse(await Deno.readTextFile(`${dir}/full/metrics.json`));
      const mb = JSON.parse(await Deno.readTextFile(`${dir}/part/metrics.json`));
      assert.deepEqual(mb, ma);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("e2e: each architecture learns the small problem (EV ≥ 0.75, MMCS ≥ 0.65: a random dictionary scores ~0.35)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-archs-learn-" });
  try {
    for (
      const over of [
        { variant: "topk", k: 8 },
        { variant: "batchtopk", k: 8 },
        { variant: "matryoshka", k: 8 },
        // θ₀ near the data's thresholds: from SAELens' 0.01 log θ needs most of a short run.
        { variant: "jumprelu", l0_coefficient: 0.2, jumprelu_init_threshold: 0.3 },
      ] as const
    ) {
      const cfg = mergeConfig(SMALL, {
        ...over,
        d_sae: 128,
        batch: 128,
        steps: 600,
        log_every: 100,
        checkpoint_every: 0,
        dead_steps: 1000,
      } as PartialConfig);
      const { metrics: m } = await train(cfg, { ...QUIET, outDir: `${dir}/${over.variant}` });
      const what = `${over.variant}: EV ${m.explained_variance}, MMCS ${m.mmcs}, L0 ${m.l0}`;
      assert.ok(m.explained_variance >= 0.75 && m.mmcs >= 0.65, what);
      if (over.variant !== "jumprelu") assert.ok(Math.abs(m.l0 - 8) < 1, what);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
