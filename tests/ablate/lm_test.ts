import assert from "node:assert/strict";
import { join } from "node:path";
import {
  actsDir,
  finishLm,
  LM_ABLATIONS,
  LM_KNOBS,
  LM_LAYERS,
  lmAblationRows,
  lmMatched,
  lmPlan,
  type LmPoint,
  lmSweep,
  prepareLm,
  readTimes,
} from "../../src/ablate/lm.ts";
import { runSweep } from "../../src/ablate/run.ts";
import { resolveSweep } from "../../src/ablate/sweep.ts";
import { resolveAblateFlags } from "../../src/cli/ablate.ts";
import { makeAblateCommand } from "../../src/cli/ablate.ts";
import type { EvalReport } from "../../src/eval/schema.ts";
import { parseHook } from "../../src/lm/hooks.ts";
import { loadModel } from "../../src/lm/load.ts";
import { withTemp } from "../helpers/check.ts";
import { sharedLm } from "../lm/helpers.ts";
import { LIVE_HOOK, liveFixture } from "../lm/live_fixture.ts";

function parseFlags(argv: string[]) {
  const cmd = makeAblateCommand().exitOverride();
  cmd.parse(argv, { from: "user" });
  return cmd.opts();
}

Deno.test("lm preset: layer 2 every variant and the ablations, layer 4 three variants; valid, distinct, each on its layer's harvest", () => {
  const plan = lmPlan();
  const sweep = lmSweep(plan, "out");
  const runs = resolveSweep(sweep, "the lm preset");
  const l2 = LM_LAYERS[0], l4 = LM_LAYERS[1];
  const knobRuns = (vs: readonly string[]) =>
    vs.reduce((n, v) => n + LM_KNOBS[v as keyof typeof LM_KNOBS].values.length, 0);
  assert.equal(
    sweep.runs.length,
    knobRuns(l2.variants) + LM_ABLATIONS.length + knobRuns(l4.variants),
  );
  // Every name trains once: no ablation coincides with a knob run.
  assert.equal(runs.length, sweep.runs.length);
  for (const r of runs) {
    const layer = r.name.startsWith("L2.") ? l2 : l4;
    assert.equal(r.cfg.data, actsDir("out", layer.hook), r.name);
    assert.equal(r.cfg.d_sae, 512);
    assert.equal(r.cfg.normalize_activations, "expected_average_only_in");
  }
  const abl = runs.find((r) => r.name === "L2.ablate.no_threshold")!;
  assert.equal(abl.cfg.variant, "paper");
  assert.equal(abl.cfg.adaptive_threshold, false);
  assert.equal(abl.cfg.l1, plan.ablationL1);
  assert.equal(abl.cfg.recon_only_steps, 300);
  assert.ok(
    LM_KNOBS.paper.values.includes(plan.ablationL1),
    "the method's own run is the reference",
  );
  assert.ok(!runs.some((r) => r.name.startsWith("L4.ablate.")));
  // The same-λ1 table pairs the baseline's and the method's runs.
  assert.deepEqual(LM_KNOBS.baseline.values, LM_KNOBS.paper.values);
});

Deno.test("lm preset: --corpus only with --preset lm; --out moves the harvests; --set reaches the plan", async () => {
  await assert.rejects(
    () => resolveAblateFlags(parseFlags(["--corpus", "c.jsonl"])),
    /--corpus applies only with --preset lm/,
  );
  const r = await resolveAblateFlags(
    parseFlags(["--preset", "lm", "--corpus", "c.jsonl", "--out", "o", "--set", "steps=7"]),
  );
  assert.equal(r.lm?.corpus, "c.jsonl");
  assert.equal(r.lm?.base.steps, 7);
  assert.equal(r.outDir, "o");
  assert.equal(r.sweep.runs[0].overrides.data, actsDir("o", "blocks.2.hook_resid_pre"));
});

function point(variant: string, l0: number, kl: number, ablation: string | null = null): LmPoint {
  return {
    run: `L2.${variant}.${l0}`,
    layer: "L2",
    variant,
    ablation,
    knob: "l1",
    value: 1 / l0,
    l0,
    explained_variance: kl,
    kl_div_score: kl,
    ce_loss_score: kl,
    ce_loss_with_sae: 2,
    ce_loss_without_sae: 1.5,
    dead_fraction: 0,
  };
}

Deno.test("lm preset: matched-L0 rows interpolate in log L0; ablations read both frontiers at their own L0", () => {
  const pts = [
    point("baseline", 4, 0.5),
    point("baseline", 16, 0.9),
    point("paper", 8, 0.7),
    point("paper", 32, 0.95),
    { ...point("paper", 20, 0.1, "no_ortho") },
  ];
  const rows = lmMatched(pts, "L2", 8);
  const base = rows.find((r) => r.variant === "baseline")!;
  assert.ok(Math.abs(base.metrics.kl_div_score! - 0.7) < 1e-12); // halfway in log L0
  assert.ok(Math.abs(base.value! - 1 / 8) < 1e-12); // the knob, geometric
  assert.equal(rows.find((r) => r.variant === "paper")!.metrics.kl_div_score, 0.7);
  assert.equal(lmMatched(pts, "L2", 2).every((r) => r.metrics.kl_div_score === null), true);
  const plan = lmPlan({ ablationL1: 1 / 8 });
  const abl = lmAblationRows(plan, pts, "L2");
  assert.deepEqual(abl.map((r) => r.point.run), ["L2.paper.8", "L2.paper.20"]);
  // No ortho at L0 20: the baseline's frontier ends at 16 (—), the method's is read between 8 and 32.
  assert.equal(abl[1].baseline.kl_div_score, null);
  const t = Math.log(20 / 8) / Math.log(32 / 8);
  assert.ok(Math.abs(abl[1].paper.kl_div_score! - (0.7 + t * 0.25)) < 1e-12);
});

Deno.test("lm preset end to end on a tiny random llama: corpus sampled, harvest, runs, LM evaluations, report; resumable", async () => {
  await withTemp(async (dir) => {
    const fx = await liveFixture(dir);
    const out = join(dir, "out");
    const plan = lmPlan({
      model: fx.model,
      tokenizer: fx.tokenizer,
      evalText: [fx.text],
      corpus: join(dir, "corpus.jsonl"),
      corpusTokens: 2000,
      corpusBatch: 4,
      context: 16,
      harvestTokens: 1500,
      harvestBatch: 4,
      layers: [{
        name: "L1",
        hook: LIVE_HOOK,
        variants: ["baseline", "paper", "topk"],
        ablations: true,
      }],
      knobs: {
        ...LM_KNOBS,
        baseline: { key: "l1", values: [0.1, 2], extra: {} },
        paper: { key: "l1", values: [0.5], extra: { recon_only_steps: 5 } },
        topk: { key: "k", values: [3, 12], extra: {} },
      },
      ablations: [LM_ABLATIONS[0]],
      ablationL1: 0.5,
      base: {
        d_in: 36,
        d_sae: 48,
        batch: 24,
        steps: 20,
        warmup_steps: 2,
        init_rows: 48,
        log_every: 10,
        checkpoint_every: 0,
        normalize_activations: "expected_average_only_in",
      },
      evalBatches: 2,
      evalBatch: 3,
      targets: [4],
    });
    const logs: string[] = [];
    const log = (l: string) => logs.push(l);
    await prepareLm(plan, out, { log });
    let times = await readTimes(out);
    assert.ok(times.corpus && times.corpus.tokens >= 2000, "the absent corpus was sampled");
    assert.ok(times.harvest[LIVE_HOOK].rows >= 1500);
    const sweep = lmSweep(plan, out);
    const report = await runSweep(sweep, out, { progress: false, log });
    assert.deepEqual(report.outcomes.map((o) => o.status), Array(6).fill("trained"));
    const runs = resolveSweep(sweep);
    const trained = Object.fromEntries(report.outcomes.map((o) => [o.name, o.seconds!]));
    const res = await finishLm(plan, runs, out, { trained, log });
    assert.equal(res.points.length, 6);
    for (const p of res.points) {
      assert.ok(Number.isFinite(p.kl_div_score) && Number.isFinite(p.ce_loss_score), p.run);
      assert.ok(p.l0 > 0, p.run);
      const ev = JSON.parse(await Deno.readTextFile(join(out, p.run, "eval.json"))) as EvalReport;
      assert.equal(ev.lm!.batches, 2);
      assert.deepEqual(ev.lm!.text, [fx.text]);
    }
    // TopK's L0 is k on the held-out tokens too.
    assert.equal(res.points.find((p) => p.run === "L1.topk.k=3")!.l0, 3);
    times = await readTimes(out);
    assert.equal(Object.keys(times.train).length, 6);
    assert.equal(Object.keys(times.eval).length, 6);
    const md = await Deno.readTextFile(join(out, "lm.md"));
    assert.match(md, /## L1: blocks\.1\.hook_resid_pre/);
    assert.match(md, /\| L1\.ablate\.no_threshold \| adaptive_threshold false \|/);
    assert.match(md, /\| L1\.paper\.l1=0\.5 \| the method, λ1 0\.5 \|/);
    assert.match(md, /tokens\/s through the model/);
    const svg = await Deno.readTextFile(join(out, "lm.svg"));
    assert.match(svg, /KL-div score/);
    const json = JSON.parse(await Deno.readTextFile(join(out, "lm.json")));
    assert.equal(json.points.length, 6);

    // Again: the corpus and harvest are reused, nothing is trained or evaluated twice.
    const evalMtime = (await Deno.stat(join(out, "L1.topk.k=3", "eval.json"))).mtime;
    logs.length = 0;
    await prepareLm(plan, out, { log });
    assert.ok(logs.some((l) => /corpus: .* reused/.test(l)), logs.join("\n"));
    assert.ok(logs.some((l) => /harvest of .*: complete, reused/.test(l)), logs.join("\n"));
    const again = await runSweep(sweep, out, { progress: false, log });
    assert.deepEqual(again.outcomes.map((o) => o.status), Array(6).fill("skipped"));
    await finishLm(plan, runs, out, { log });
    assert.deepEqual((await Deno.stat(join(out, "L1.topk.k=3", "eval.json"))).mtime, evalMtime);
    assert.equal(Object.keys((await readTimes(out)).eval).length, 6);

    // A plan without a run (a knob value changed): its times leave the totals.
    const fewer = await finishLm(plan, runs.filter((r) => r.name !== "L1.topk.k=3"), out, { log });
    assert.equal(fewer.points.length, 5);
    assert.ok(!("L1.topk.k=3" in fewer.times.train) && !("L1.topk.k=3" in fewer.times.eval));
    assert.equal(Object.keys((await readTimes(out)).eval).length, 5);
    assert.match(await Deno.readTextFile(join(out, "lm.md")), /training: 5 runs/);
  });
});

Deno.test("lm preset on stories260K: every layer's hook exists and is d_in wide; the eval text is there", async () => {
  const model = await sharedLm("stories260K/stories260K.bin");
  const text = await sharedLm("text/tinystories-sample.txt");
  if (model === null || text === null) return;
  const m = await loadModel(model);
  const plan = lmPlan();
  for (const layer of plan.layers) parseHook(layer.hook, m.config);
  assert.equal(m.config.dModel, plan.base.d_in);
  assert.ok(plan.context <= m.config.maxSeq);
});

Deno.test("lm preset: a missing model stops before anything is written, naming it", async () => {
  await withTemp(async (dir) => {
    const out = join(dir, "out");
    await assert.rejects(
      () => prepareLm(lmPlan({ model: join(dir, "nope.bin") }), out),
      /the lm preset's model .*nope\.bin is missing/,
    );
    await assert.rejects(() => Deno.stat(out), Deno.errors.NotFound);
  });
});
