/** evaluateRun end to end on a tiny trained run: eval.json, ground truth, extra evaluators. */
import assert from "node:assert/strict";
import { DEFAULT_CONFIG, mergeConfig } from "../../src/config.ts";
import { SyntheticSource } from "../../src/data/synthetic.ts";
import { type EvalContext, evaluateRun, formatEvalReport } from "../../src/eval/evaluate.ts";
import type { EvalReport } from "../../src/eval/schema.ts";
import { encodeRows, loadSae } from "../../src/sae/load.ts";
import { train } from "../../src/sae/trainer.ts";
import { assertClose } from "../helpers/check.ts";

/** A tiny run: d_in 16, d_sae 32, batch 32, 50 steps. */
export const TINY = mergeConfig(DEFAULT_CONFIG, {
  d_in: 16,
  d_sae: 32,
  batch: 32,
  steps: 50,
  warmup_steps: 10,
  log_every: 25,
  checkpoint_every: 0,
  init_rows: 256,
  synthetic: { n_features: 24, n_groups: 1, group_size: 2, n_parents: 2, children_per_parent: 2 },
});

Deno.test("evaluateRun: a tiny trained run, eval.json written atomically, extra evaluators", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const run = `${dir}/run`;
    const trained = await train(TINY, {
      outDir: run,
      resume: false,
      overwrite: false,
      progress: false,
      report: false,
    });
    let seen: EvalContext | null = null;
    let encoded: Float32Array | null = null;
    const rows = new Float32Array(7 * 16).map((_, i) => Math.sin(i));
    const report = await evaluateRun(run, {
      out: `${run}/eval.json`,
      extra: [async (ctx) => {
        seen = ctx;
        encoded = await ctx.encode(rows);
        return { scr: { k: [1], score: [0.5] } };
      }],
    });
    // Defaults: 8 reconstruction and 32 sparsity batches at the run's batch size.
    assert.equal(report.core.recon_rows, 8 * 32);
    assert.equal(report.core.sparsity_rows, 32 * 32);
    assert.equal(report.sae, run);
    assert.match(report.data, /synthetic.*evaluation stream/);
    const onDisk = JSON.parse(await Deno.readTextFile(`${run}/eval.json`)) as EvalReport;
    assert.deepEqual(onDisk, report);
    assert.deepEqual(report.scr, { k: [1], score: [0.5] });
    assert.equal([...Deno.readDirSync(run)].filter((e) => e.name.includes(".tmp-")).length, 0);

    // Metrics are numbers in their ranges; KL/CE are not numbers.
    const c = report.core;
    for (const k of ["mse", "l2_ratio", "relative_reconstruction_bias", "l0", "l1"] as const) {
      assert.ok(Number.isFinite(c[k]) && c[k] >= 0, `${k} ${c[k]}`);
    }
    assert.ok(c.explained_variance > 0 && c.explained_variance <= 1);
    assert.ok(c.cosine_similarity > 0 && c.cosine_similarity <= 1);
    assert.ok(c.dead_fraction >= 0 && c.dead_fraction <= 1);
    assert.equal(typeof c.kl_div_score, "object");
    assert.equal(
      c.density_histogram.counts.reduce((a, b) => a + b, 0) + c.density_histogram.never_fired,
      32,
    );
    // Close to the trainer's own final evaluation (other rows, per-batch x̄ in its EV).
    const m = trained.metrics;
    assert.ok(Math.abs(c.explained_variance - m.explained_variance) < 0.05, "EV vs metrics.json");
    assert.ok(Math.abs(c.l0 - m.l0) < 0.15 * Math.max(1, m.l0), `L0 ${c.l0} vs ${m.l0}`);

    const g = report.ground_truth!;
    assert.equal(g.features.length, 24);
    assert.ok(Math.abs(g.mmcs - m.mmcs) < 1e-5, "MMCS as the trainer reports it");
    assert.ok(g.mean_precision >= 0 && g.mean_precision <= 1);
    assert.ok(g.mean_recall >= 0 && g.mean_recall <= 1);

    // The extra evaluator's context: the loaded SAE, the synthetic truth, a GPU encode.
    const ctx = seen as unknown as EvalContext;
    assert.ok(ctx.source instanceof SyntheticSource);
    assert.equal(ctx.truth, (ctx.source as SyntheticSource).truth);
    assert.equal(ctx.sae.threshold, null);
    assertClose(encoded!, encodeRows(await loadSae(run), rows), 1e-4, "ctx.encode");

    const table = formatEvalReport(report);
    assert.match(table, /explained variance/);
    assert.match(table, /KL divergence score +n\/a/);
    assert.match(table, /ground truth: mean recall/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
