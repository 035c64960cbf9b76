import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ARCH_DATA,
  ARCH_KNOBS,
  ARCH_VARIANTS,
  architecturesSweep,
  type ArchPoint,
  atL0,
  type DataSetting,
  EVAL_JSON,
  finishArchitectures,
  matchedTable,
  trueL0,
} from "../../src/ablate/architectures.ts";
import { resolveSweep } from "../../src/ablate/sweep.ts";
import { runSweep } from "../../src/ablate/run.ts";

Deno.test("architectures preset: 3 data settings × 6 variants × 4-5 knob values, all distinct and valid", async () => {
  const sweep = architecturesSweep();
  const runs = resolveSweep(sweep, "preset");
  const perData = Object.values(ARCH_KNOBS).reduce((a, k) => a + k.values.length, 0);
  assert.equal(runs.length, 3 * perData);
  assert.equal(new Set(runs.map((r) => r.name)).size, runs.length);
  for (const r of runs) {
    const [data, variant] = r.name.split(".");
    assert.equal(r.cfg.variant, variant);
    assert.equal(r.cfg.normalize_activations, "expected_average_only_in");
    const d = ARCH_DATA.find((x) => x.name === data)!;
    assert.equal(r.cfg.d_in, d.layer.d_in);
    const knob = ARCH_KNOBS[variant as keyof typeof ARCH_KNOBS];
    const f = d.knobScale?.[knob.key] ?? 1;
    assert.ok(knob.values.some((v) => Math.abs(v * f - r.cfg[knob.key]) < 1e-9), r.name);
  }
  // The settings differ in width, directions, scale, offset and hierarchy.
  const cfgs = ARCH_DATA.map((d) => runs.find((r) => r.name.startsWith(`${d.name}.`))!.cfg);
  for (
    const get of [
      (c: typeof cfgs[0]) => c.d_in,
      (c: typeof cfgs[0]) => c.synthetic.n_features,
      (c: typeof cfgs[0]) => c.synthetic.magnitude_mean,
      (c: typeof cfgs[0]) => c.synthetic.offset_norm,
      (c: typeof cfgs[0]) => c.synthetic.n_parents * 100 + c.synthetic.children_per_parent,
    ]
  ) {
    assert.equal(new Set(cfgs.map(get)).size, 3);
  }
  // Each is a valid generator setting, with L0 near its mean_l0.
  for (const c of cfgs) {
    const l0 = await trueL0(c);
    assert.ok(Math.abs(l0 - c.synthetic.mean_l0) < 0.5, `true L0 ${l0} vs ${c.synthetic.mean_l0}`);
  }
});

function point(
  variant: string,
  l0: number,
  ev: number,
  rec: number,
  extra: Partial<ArchPoint> = {},
) {
  return {
    run: `d.${variant}.${l0}`,
    data: "d",
    variant,
    knob: "k" as const,
    value: l0,
    l0,
    explained_variance: ev,
    mmcs: rec,
    recovered_at_0_9: rec,
    dead_fraction: 0,
    absorption: null,
    scr: null,
    ...extra,
  };
}

Deno.test("atL0: linear in log L0 between the bracketing points; exact hits; no extrapolation", () => {
  const front = [
    point("topk", 4, 0.5, 0.2),
    point("topk", 16, 0.9, 0.6),
    point("topk", 8, 0.8, 0.5),
  ];
  assert.equal(atL0(front, 8, "explained_variance"), 0.8);
  // Halfway between 4 and 8 in log L0.
  assert.ok(Math.abs(atL0(front, Math.sqrt(32), "explained_variance")! - 0.65) < 1e-12);
  assert.ok(Math.abs(atL0(front, Math.sqrt(32), "value")! - Math.sqrt(32)) < 1e-9, "knob in log");
  assert.equal(atL0(front, 3, "explained_variance"), null);
  assert.equal(atL0(front, 17, "explained_variance"), null);
  assert.equal(atL0(front, 6, "absorption"), null, "a metric the runs lack");
});

Deno.test("matchedTable: flags a variant with more EV and fewer recovered directions at the same L0", () => {
  const points = [
    point("baseline", 4, 0.6, 0.7),
    point("baseline", 16, 0.8, 0.9),
    point("topk", 4, 0.7, 0.3),
    point("topk", 16, 0.9, 0.5),
    point("jumprelu", 4, 0.5, 0.2),
    point("jumprelu", 16, 0.6, 0.4),
  ];
  const rows = matchedTable(points, "d", 8);
  const by = Object.fromEntries(rows.map((r) => [r.variant, r]));
  assert.deepEqual(by.topk.evOverRecovery, ["baseline"]);
  assert.deepEqual(by.baseline.evOverRecovery, []);
  assert.deepEqual(by.jumprelu.evOverRecovery, []);
  assert.ok(Math.abs(by.topk.metrics.explained_variance! - 0.8) < 1e-12);
  assert.deepEqual(rows.map((r) => r.variant), ["baseline", "topk", "jumprelu"]);
});

Deno.test("architectures preset end to end on a tiny setting: runs, evaluations, tables, chart; resumable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-arch-preset-" });
  try {
    const data: DataSetting[] = [{
      name: "tiny",
      what: "a tiny setting",
      layer: {
        d_in: 16,
        d_sae: 32,
        synthetic: { n_features: 24, n_parents: 2, children_per_parent: 2, n_groups: 2 },
      },
    }];
    const knobs = {
      baseline: { key: "l1" as const, values: [0.1, 3], extra: {} },
      topk: { key: "k" as const, values: [1, 8], extra: {} },
    };
    const sweep = architecturesSweep({
      data,
      knobs,
      base: {
        batch: 64,
        steps: 30,
        warmup_steps: 5,
        init_rows: 64,
        log_every: 10,
        checkpoint_every: 0,
        normalize_activations: "expected_average_only_in",
      },
    });
    await runSweep(sweep, dir, { progress: false, log: () => {} });
    const runs = resolveSweep(sweep);
    const logs: string[] = [];
    const res = await finishArchitectures(runs, dir, { data, log: (l) => logs.push(l) });
    assert.equal(logs.length, 4, "each run evaluated once");
    for (const r of runs) await Deno.stat(join(dir, r.name, EVAL_JSON));
    assert.equal(res.points.length, 4);
    assert.ok(res.points.every((p) => p.absorption !== null && p.scr !== null));
    const report = res.reports[0];
    assert.ok(report.trueL0 > 0);
    assert.deepEqual(report.tables.map((t) => t.target), [report.trueL0, 2 * report.trueL0]);
    const md = await Deno.readTextFile(join(dir, "architectures.md"));
    assert.match(md, /## tiny: a tiny setting/);
    assert.match(md, /\| baseline \|/);
    assert.match(md, /EV ↑ recovery ↓ vs/);
    const svg = await Deno.readTextFile(join(dir, "architectures.svg"));
    assert.match(svg, /^<svg/);
    assert.ok(svg.includes("tiny.topk.k=8: L0"), "marks carry their run");
    // Again: nothing to evaluate.
    const again: string[] = [];
    await finishArchitectures(runs, dir, { data, log: (l) => again.push(l) });
    assert.equal(again.length, 0);
    assert.ok(ARCH_VARIANTS.length === 6);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
