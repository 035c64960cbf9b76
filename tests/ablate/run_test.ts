import assert from "node:assert/strict";
import { join } from "node:path";
import type { PartialConfig } from "../../src/config.ts";
import { TrainingInterrupted, UserError } from "../../src/errors.ts";
import { train } from "../../src/sae/trainer.ts";
import { loadSweepFile, resolveSweep, type Sweep } from "../../src/ablate/sweep.ts";
import { runSweep, writeSummary } from "../../src/ablate/run.ts";
import { METRIC_COLUMNS } from "../../src/ablate/table.ts";

/** A sweep small enough to train in about a second per run on the CPU adapter. */
const TINY_BASE: PartialConfig = {
  d_in: 16,
  d_sae: 32,
  batch: 32,
  steps: 20,
  warmup_steps: 5,
  recon_only_steps: 5,
  init_rows: 64,
  log_every: 10,
  checkpoint_every: 10,
  synthetic: { n_features: 24, n_parents: 2, children_per_parent: 2, n_groups: 2 },
};

function tinySweep(): Sweep {
  return {
    base: TINY_BASE,
    runs: [
      { name: "a", overrides: { variant: "baseline" } },
      { name: "b", overrides: { variant: "baseline", l1: 0.6 } },
      { name: "c", overrides: { variant: "paper" } },
      { name: "a_again", overrides: { variant: "baseline", l1: 0.3 } },
    ],
  };
}

function countingTrain() {
  const calls: { outDir: string; resume: boolean }[] = [];
  const fn: typeof train = (cfg, opts) => {
    calls.push({ outDir: opts.outDir, resume: opts.resume });
    return train(cfg, opts);
  };
  return { calls, fn };
}

async function mtime(path: string): Promise<number> {
  return (await Deno.stat(path)).mtime!.getTime();
}

/** Counts the data points (symbols) drawn in a Vega SVG. */
function points(svg: string): number {
  return svg.match(/aria-roledescription="point"/g)?.length ?? 0;
}

Deno.test("runSweep: trains each distinct config once; a second call redoes nothing", async () => {
  const out = await Deno.makeTempDir({ prefix: "sae-ablate-" });
  try {
    const sweep = tinySweep();
    const lines: string[] = [];
    const t1 = countingTrain();
    const r1 = await runSweep(sweep, out, {
      progress: false,
      train: t1.fn,
      log: (l) => lines.push(l),
    });
    assert.deepEqual(t1.calls.map((c) => [c.outDir, c.resume]), [
      [join(out, "a"), false],
      [join(out, "b"), false],
      [join(out, "c"), false],
    ]);
    assert.deepEqual(r1.outcomes.map((o) => o.status), ["trained", "trained", "trained"]);
    const metricFiles = ["a", "b", "c"].map((n) => join(out, n, "metrics.json"));
    const before = await Promise.all(metricFiles.map(mtime));
    const table1 = await Deno.readTextFile(join(out, "ablation.csv"));

    // Again: every run is finished, nothing is retrained, the summary is the same.
    const t2 = countingTrain();
    const r2 = await runSweep(sweep, out, { progress: false, train: t2.fn, log: () => {} });
    assert.equal(t2.calls.length, 0);
    assert.deepEqual(r2.outcomes.map((o) => o.status), ["skipped", "skipped", "skipped"]);
    assert.deepEqual(await Promise.all(metricFiles.map(mtime)), before);
    assert.equal(await Deno.readTextFile(join(out, "ablation.csv")), table1);

    // A run cut short (config.yaml and checkpoints, no metrics.json) is continued, not restarted.
    await Deno.remove(join(out, "b", "metrics.json"));
    const t3 = countingTrain();
    const r3 = await runSweep(sweep, out, {
      progress: false,
      train: t3.fn,
      log: () => {},
      only: ["b"],
    });
    assert.deepEqual(t3.calls.map((c) => [c.outDir, c.resume]), [[join(out, "b"), true]]);
    assert.deepEqual(r3.outcomes.map((o) => o.status), ["not selected", "resumed", "not selected"]);
    assert.equal(r3.rows.find((r) => r.run === "b")!.status, "done");

    // The sweep was saved and loads back as the same sweep.
    const saved = await loadSweepFile(join(out, "sweep.yaml"));
    assert.deepEqual(resolveSweep(saved), resolveSweep(sweep));

    // A directory trained with another config is refused (and named) before anything runs.
    const changed: Sweep = { ...sweep, base: { ...TINY_BASE, steps: 30 } };
    const t4 = countingTrain();
    await assert.rejects(
      () => runSweep(changed, out, { progress: false, train: t4.fn, log: () => {} }),
      (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.match(
          err.message,
          /holds a run of 'a' with a different config \(steps: 20 there, 30/,
        );
        return true;
      },
    );
    assert.equal(t4.calls.length, 0);
    assert.equal(await mtime(metricFiles[0]), before[0]);
    assert.deepEqual(
      resolveSweep(await loadSweepFile(join(out, "sweep.yaml"))),
      resolveSweep(sweep),
    );

    // Table and plots hold every run and the numbers of metrics.json.
    const json = JSON.parse(await Deno.readTextFile(join(out, "ablation.json")));
    assert.deepEqual(json.rows.map((r: { run: string }) => r.run), ["a", "b", "c"]);
    assert.deepEqual(json.rows[0].aliases, ["a_again"]);
    for (const row of json.rows) {
      const m = JSON.parse(await Deno.readTextFile(join(out, row.run, "metrics.json")));
      for (const [k] of METRIC_COLUMNS) assert.equal(row[k], m[k], `${row.run}.${k}`);
    }
    assert.equal(json.frontiers.length, 1);
    assert.deepEqual(json.frontiers[0].points.map((p: { run: string }) => p.run), ["a", "b"]);
    const frontier = await Deno.readTextFile(join(out, "frontier.svg"));
    assert.equal(points(frontier), 2);
    const ablation = await Deno.readTextFile(join(out, "ablation.svg"));
    assert.equal(points(ablation), 6, "3 runs × (L0, EV)");
    assert.ok(lines.some((l) => /\[3\/3\] c: .* s \| L0/.test(l)), lines.join("\n"));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

/** Writes fake finished runs (metrics.json only) for summary tests that need no GPU. */
async function fakeRuns(out: string, metrics: Record<string, Record<string, number>>) {
  for (const [name, m] of Object.entries(metrics)) {
    await Deno.mkdir(join(out, name), { recursive: true });
    await Deno.writeTextFile(join(out, name, "metrics.json"), JSON.stringify(m));
  }
}

function fakeMetrics(l0: number, ev: number): Record<string, number> {
  return {
    l0,
    explained_variance: ev,
    mse: 0.0123456789,
    l1: 4.5,
    dead_fraction: 0.125,
    mmcs: 0.876543,
    recovered_at_0_9: 0.5,
    dense_fraction: 0,
  };
}

Deno.test("writeSummary: table files hold every run; frontiers and plots hold the data", async () => {
  const out = await Deno.makeTempDir({ prefix: "sae-summary-" });
  try {
    const sweep: Sweep = {
      base: { steps: 10 },
      runs: [
        { name: "baseline", overrides: { variant: "baseline" } },
        { name: "method", overrides: { variant: "paper" } },
        { name: "lambda_ortho=0.1", overrides: { variant: "paper", lambda_ortho: 0.1 } },
        { name: "baseline_l1=0.15", overrides: { variant: "baseline", l1: 0.15 } },
        { name: "baseline_l1=0.6", overrides: { variant: "baseline", l1: 0.6 } },
        { name: "method_l1=0.6", overrides: { variant: "paper", l1: 0.6 } },
        { name: "no_threshold", overrides: { variant: "paper", adaptive_threshold: false } },
      ],
    };
    const runs = resolveSweep(sweep);
    await fakeRuns(out, {
      baseline: fakeMetrics(20, 0.9),
      method: fakeMetrics(15, 0.88),
      "baseline_l1=0.15": fakeMetrics(40, 0.95),
      "baseline_l1=0.6": fakeMetrics(10, 0.8),
      "method_l1=0.6": fakeMetrics(8, 0.78),
    });
    const { rows, frontiers, files } = await writeSummary(runs, out, sweep);
    assert.deepEqual(files.map((f) => f.slice(out.length + 1)), [
      "ablation.md",
      "ablation.csv",
      "ablation.json",
      "frontier.svg",
      "ablation.svg",
    ]);
    assert.equal(rows.length, 6);
    assert.equal(rows.find((r) => r.run === "no_threshold")!.status, "missing");

    const md = await Deno.readTextFile(join(out, "ablation.md"));
    for (const r of sweep.runs) assert.ok(md.includes(r.name), `ablation.md lacks ${r.name}`);
    assert.match(md, /\| method \| paper \| `variant=paper` \| 0\.3 \| 15\.00 \| 0\.8800 \|/);
    assert.match(md, /\| 12\.5% \| 0\.8765 \| 50\.0% \| lambda_ortho=0\.1 \|/);
    assert.match(md, /Not trained yet: no_threshold\./);

    const csv = (await Deno.readTextFile(join(out, "ablation.csv"))).trim().split("\n");
    assert.equal(
      csv[0],
      "run,aliases,variant,overrides,lambda1,status,l0,explained_variance,mse,l1,dead_fraction," +
        "mmcs,recovered_at_0_9",
    );
    assert.equal(csv.length, 7);
    assert.equal(
      csv[2],
      "method,lambda_ortho=0.1,paper,variant=paper,0.3,done,15,0.88,0.0123456789,4.5,0.125," +
        "0.876543,0.5",
    );
    assert.equal(
      csv[6],
      "no_threshold,,paper,variant=paper adaptive_threshold=false,0.3,missing" +
        ",,,,,,,",
    );

    const json = JSON.parse(await Deno.readTextFile(join(out, "ablation.json")));
    assert.deepEqual(json.rows, rows);
    assert.deepEqual(json.base, { steps: 10 });

    // Two frontiers: the baseline's three λ1 values and the method's two.
    assert.deepEqual(
      frontiers.map((f) => [f.label, f.points.map((p) => [p.lambda1, p.l0])]),
      [
        ["baseline", [[0.15, 40], [0.3, 20], [0.6, 10]]],
        ["paper", [[0.3, 15], [0.6, 8]]],
      ],
    );
    const fsvg = await Deno.readTextFile(join(out, "frontier.svg"));
    assert.ok(fsvg.startsWith("<svg"));
    assert.equal(points(fsvg), 5);
    for (const label of ["λ1=0.15", "λ1=0.3", "λ1=0.6"]) assert.ok(fsvg.includes(`>${label}<`));
    assert.ok(fsvg.includes("L0 (active latents per row)"));
    assert.ok(fsvg.includes("Explained variance"));
    assert.equal(fsvg.match(/aria-roledescription="line mark"/g)?.length, 2);

    const asvg = await Deno.readTextFile(join(out, "ablation.svg"));
    assert.equal(points(asvg), 10, "5 finished runs × (L0, EV)");
    for (const r of rows.filter((r) => r.status === "done")) {
      assert.ok(asvg.includes(`aria-label="${r.run}"`), `ablation.svg lacks ${r.run}`);
    }
    assert.ok(!asvg.includes(`aria-label="no_threshold"`));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("writeSummary: nothing finished still gives the files, with empty charts", async () => {
  const out = await Deno.makeTempDir({ prefix: "sae-summary-" });
  try {
    const runs = resolveSweep({ base: {}, runs: [{ name: "x", overrides: {} }] });
    const { rows, frontiers } = await writeSummary(runs, out);
    assert.equal(rows[0].status, "missing");
    assert.deepEqual(frontiers, []);
    const fsvg = await Deno.readTextFile(join(out, "frontier.svg"));
    assert.equal(points(fsvg), 0);
    assert.ok(fsvg.includes("no λ1 sweep has finished yet"));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("runSweep: an interrupted run stops the whole sweep instead of counting as a failure", async () => {
  const out = await Deno.makeTempDir({ prefix: "sae-ablate-int-" });
  try {
    let calls = 0;
    const interrupted: typeof train = () => {
      calls++;
      return Promise.reject(new TrainingInterrupted("SIGINT", 7, join(out, "x"), "ckpt"));
    };
    await assert.rejects(
      () => runSweep(tinySweep(), out, { progress: false, train: interrupted, log: () => {} }),
      (e: Error) => e instanceof TrainingInterrupted && e.exitCode === 130,
    );
    assert.equal(calls, 1, "the sweep went on after the interrupt");
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
