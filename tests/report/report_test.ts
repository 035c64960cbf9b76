/**
 * `sae report`: a report over a tiny trained run plus a hand-written eval.json holds every
 * section, its SVGs hold the data (mark counts, axis titles, known values), and sections whose
 * data is missing say so in one line.
 */
import assert from "node:assert/strict";
import { main } from "../../src/cli/main.ts";
import type { EvalReport } from "../../src/eval/schema.ts";
import { train } from "../../src/sae/trainer.ts";
import { QUIET, tinyRun } from "../helpers/runs.ts";

const LETTERS = ["a", "b", "c", "d"];

/** eval.json as `sae eval` writes it (only the fields the report reads are filled with care). */
function evalJson(): EvalReport {
  return {
    sae: "run",
    data: "synthetic",
    core: {
      mse: 0.1,
      explained_variance: 0.8,
      cosine_similarity: 0.9,
      l2_ratio: 0.95,
      relative_reconstruction_bias: 1,
      l0: 12,
      l1: 3,
      dead_fraction: 0,
      dense_fraction: 0.1,
      density_histogram: { edges: [-4, -3, -2, -1, 0], counts: [2, 5, 17, 8], never_fired: 3 },
      kl_div_score: { available: false, reason: "no language model" },
      ce_loss_score: { available: false, reason: "no language model" },
      recon_rows: 1024,
      sparsity_rows: 1024,
    },
    absorption: {
      per_letter: LETTERS.map((letter, i) => ({
        letter,
        absorption: [0.25, 0.5, 0.125, 0.75][i],
        parent_latents: [i],
        rows: 40,
      })),
      mean: 0.40625,
      std: 0.24,
    },
    scr: { k: [1, 2, 5, 10, 20], score: [0.1, 0.2, 0.35, 0.42, 0.5] },
    ground_truth: {
      mmcs: 0.61,
      recovered_at_0_9: 0.3,
      features: [],
      mean_precision: 0.7,
      mean_recall: 0.55,
    },
  };
}

/** aria-labels of the data marks in an SVG (they start with the run's name). */
function labels(svg: string): string[] {
  return [...svg.matchAll(/aria-label="([^"]*)"/g)].map((m) => m[1])
    .filter((l) => /^(run|partial): /.test(l));
}

Deno.test("report: every section from a tiny run and a hand-written eval.json", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-report-" });
  try {
    const cfg = tinyRun();
    await train(cfg, { ...QUIET, outDir: `${dir}/run` });
    await Deno.writeTextFile(`${dir}/run/eval.json`, JSON.stringify(evalJson()));
    // A second run with training curves only (no metrics.json, no eval.json).
    await Deno.mkdir(`${dir}/partial`);
    await Deno.writeTextFile(
      `${dir}/partial/metrics.jsonl`,
      [10, 20].map((step) => JSON.stringify({ step, loss: 3, l0: 9, explained_variance: 0.5 }))
        .join("\n") + '\n{"step": 30, "lo',
    );

    const out = { stdout: "", stderr: "" };
    const io = {
      writeOut: (t: string) => (out.stdout += t),
      writeErr: (t: string) => (out.stderr += t),
    };
    const code = await main(
      ["report", `${dir}/run`, `${dir}/partial`, "--out", `${dir}/r.html`],
      io,
    );
    assert.equal(code, 0, out.stderr);
    const html = await Deno.readTextFile(`${dir}/r.html`);
    for (
      const title of [
        "Final metrics",
        "Training curves",
        "L0–EV frontier",
        "SCR vs k",
        "Absorption by letter",
        "Latent density",
        "Ground-truth recovery",
      ]
    ) {
      assert.ok(html.includes(`<h2>${title}</h2>`), `section ${title}`);
    }
    assert.ok(!html.includes('class="missing"'), "no section is missing");
    assert.equal((html.match(/<svg/g) ?? []).length, 6, "six inlined plots");
    // The table: both runs, the trained one's final L0.
    const final = JSON.parse(await Deno.readTextFile(`${dir}/run/metrics.json`));
    assert.match(html, /<td>run<\/td><td>baseline<\/td><td>16 × 32<\/td><td>50<\/td>/);
    assert.ok(html.includes(`<td>${Number(final.l0.toFixed(2))}</td>`), "final L0 in the table");
    assert.match(html, /<td>partial<\/td>/);

    const svg = (id: string) => Deno.readTextFileSync(`${dir}/r-${id}.svg`);
    // Curves: 3 metrics × (5 logged steps of run + 2 of partial) points.
    const curves = labels(svg("curves")).filter((l) => /: step \d+, /.test(l));
    assert.equal(curves.length, 3 * (5 + 2));
    assert.ok(curves.includes("partial: step 20, Loss 3"));
    for (const t of ["Loss", "L0 (active latents per row)", "Explained variance", "step"]) {
      assert.ok(svg("curves").includes(`>${t}</text>`), `axis title ${t}`);
    }
    // Frontier: one point, the trained run (partial has no metrics.json).
    const front = labels(svg("frontier")).filter((l) => l.includes(": L0 "));
    assert.deepEqual(front.length, 1);
    assert.match(front[0], /^run: L0 [\d.]+, EV [\d.-]+$/);
    // SCR: five points, a known value.
    const scr = labels(svg("scr")).filter((l) => l.includes("SCR"));
    assert.equal(scr.length, 5);
    assert.ok(scr.includes("run: k 10, SCR 0.42"));
    assert.ok(svg("scr").includes(">k (latents ablated)</text>"));
    assert.ok(svg("scr").includes(">SCR score</text>"));
    // Absorption: one bar per letter.
    const abs = labels(svg("absorption")).filter((l) => l.includes("absorption "));
    assert.equal(abs.length, LETTERS.length);
    assert.ok(abs.includes("run: letter d, absorption 0.75"));
    assert.ok(svg("absorption").includes(">Absorption rate</text>"));
    assert.ok(svg("absorption").includes("mean: run 0.406"));
    // Density: one bar per bin, never-fired count in the subtitle.
    const dens = labels(svg("density")).filter((l) => l.includes(" latents"));
    assert.equal(dens.length, 4);
    assert.ok(dens.includes("run: log10 frequency -2 to -1, 17 latents"));
    assert.ok(svg("density").includes("never fired (not shown): run 3"));
    assert.ok(svg("density").includes(">log10 firing frequency</text>"));
    // Ground truth: eval.json's values (they take precedence over metrics.json's).
    const gt = labels(svg("ground-truth")).filter((l) => /MMCS|recovered|precision|recall/.test(l));
    assert.deepEqual(gt.sort(), [
      "run: MMCS 0.61",
      "run: mean precision 0.7",
      "run: mean recall 0.55",
      "run: recovered (cos &gt; 0.9) 0.3",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report: missing data gives one line per section; one run defaults to RUN/report.html", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-report-empty-" });
  try {
    await Deno.mkdir(`${dir}/run`);
    await Deno.writeTextFile(
      `${dir}/run/metrics.json`,
      JSON.stringify({ l0: 5, explained_variance: 0.9 }),
    );
    const out = { stdout: "", stderr: "" };
    const io = {
      writeOut: (t: string) => (out.stdout += t),
      writeErr: (t: string) => (out.stderr += t),
    };
    assert.equal(await main(["report", `${dir}/run`], io), 0, out.stderr);
    const html = await Deno.readTextFile(`${dir}/run/report.html`);
    const missing = [...html.matchAll(/<p class="missing">([^<]*)<\/p>/g)].map((m) => m[1]);
    assert.equal(missing.length, 5, missing.join("\n"));
    assert.ok(missing.every((m) => m.startsWith("No data: ")));
    assert.ok(html.includes("<h2>L0–EV frontier</h2>\n<figure><svg"));
    // A directory holding runs (a sweep's output) reports them all; a path with none is an error.
    assert.equal(await main(["report", dir, "--out", `${dir}/all.html`], io), 0, out.stderr);
    assert.ok((await Deno.readTextFile(`${dir}/all.html`)).includes("<td>run</td>"));
    await Deno.mkdir(`${dir}/empty`);
    assert.equal(await main(["report", `${dir}/empty`], io), 2);
    assert.match(out.stderr, /error: .*empty is not a run directory and holds none/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
