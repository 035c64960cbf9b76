/**
 * `sae report`: one self-contained report.html over one or more run directories, with SVG plots
 * (vega-lite, rendered headlessly by ./vega.ts) inlined and also written next to it as
 * `<name>-<section>.svg`, and a table of each run's final metrics.
 *
 * Sections: training curves (metrics.jsonl: loss, L0, explained variance), the L0–EV frontier
 * (metrics.json), SCR vs k, absorption by letter, latent density (eval.json), ground-truth
 * recovery (metrics.json mmcs / recovered_at_0_9, eval.json ground_truth). A section whose data
 * no run has says so in one line. Every data mark carries an aria-label (vega-lite's
 * `description` channel) naming the run and its values, so the SVG can be checked without a
 * browser and read by a screen reader.
 *
 * @example
 * ```ts
 * import { writeReport } from "./report.ts";
 * const { html } = await writeReport(["runs/a", "runs/b"], "report.html");
 * ```
 */

import { basename, dirname, join, relative } from "node:path";
import type { TopLevelSpec } from "vega-lite";
import { parse as parseYaml } from "yaml";
import { isPlainObject } from "../config.ts";
import { UserError } from "../errors.ts";
import type { EvalReport } from "../eval/schema.ts";
import { atomicWriteAll } from "../run/atomic.ts";
import { checkOutputFile, writingTo } from "../run/output.ts";
import { frontierSpec, renderSvg } from "./vega.ts";

/** What a run directory holds, as far as it exists. */
export interface RunData {
  /** Short name (the directory's name; its path where names clash). */
  name: string;
  dir: string;
  config: Record<string, unknown> | null;
  /** metrics.jsonl records (lines that do not parse are skipped). */
  log: Record<string, number>[];
  /** metrics.json (final held-out metrics). */
  final: Record<string, number> | null;
  /** eval.json (fields may be absent). */
  eval: Partial<EvalReport> | null;
}

/** One section of the report. */
export interface Section {
  id: string;
  title: string;
  /** The SVG, or null with `missing` saying why. */
  svg: string | null;
  missing: string;
}

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";
const RUN_FILES = ["config.yaml", "metrics.jsonl", "metrics.json", "eval.json"];

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function isRunDir(dir: string): Promise<boolean> {
  for (const f of RUN_FILES) if (await exists(join(dir, f))) return true;
  return false;
}

async function readJson(path: string): Promise<unknown | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return null;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UserError(`${path} is not valid JSON (${(err as Error).message.split("\n")[0]})`);
  }
}

/** Reads one run directory; missing files are null/empty. */
async function readRun(dir: string, name = basename(dir)): Promise<RunData> {
  let config: Record<string, unknown> | null = null;
  try {
    const c = parseYaml(await Deno.readTextFile(join(dir, "config.yaml")));
    if (isPlainObject(c)) config = c;
  } catch {
    // No or unreadable config: the report shows what else exists.
  }
  const log: Record<string, number>[] = [];
  try {
    for (const line of (await Deno.readTextFile(join(dir, "metrics.jsonl"))).split("\n")) {
      if (line.trim() === "") continue;
      try {
        const rec = JSON.parse(line);
        if (isPlainObject(rec) && typeof rec.step === "number") {
          log.push(rec as Record<string, number>);
        }
      } catch {
        // A line cut short by an interrupted run.
      }
    }
  } catch {
    // No log.
  }
  const final = await readJson(join(dir, "metrics.json"));
  const ev = await readJson(join(dir, "eval.json"));
  return {
    name,
    dir,
    config,
    log,
    final: isPlainObject(final) ? final as Record<string, number> : null,
    eval: isPlainObject(ev) ? ev as Partial<EvalReport> : null,
  };
}

/**
 * The run directories named by `paths`: each path that is a run directory (holds config.yaml,
 * metrics.jsonl, metrics.json or eval.json), or else the run directories directly inside it (an
 * ablation sweep's output). Throws a one-line UserError when a path holds no run.
 */
async function findRuns(paths: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(p);
    } catch {
      throw new UserError(`${p} does not exist`);
    }
    if (!info.isDirectory) {
      throw new UserError(`${p} is not a directory (expected a run directory)`);
    }
    if (await isRunDir(p)) {
      out.push(p);
      continue;
    }
    const inside: string[] = [];
    for (const e of [...Deno.readDirSync(p)].sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.isDirectory && await isRunDir(join(p, e.name))) inside.push(join(p, e.name));
    }
    if (inside.length === 0) {
      throw new UserError(`${p} is not a run directory and holds none (no config.yaml or metrics)`);
    }
    out.push(...inside);
  }
  return [...new Set(out)];
}

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function fmt(v: number, digits = 4): string {
  return Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 1e-3)
    ? v.toPrecision(3)
    : String(Number(v.toFixed(digits)));
}

const runColor = { field: "run", type: "nominal", title: "run" } as const;

/** Loss, L0 and explained variance against the step, one line per run. */
function curvesSpec(runs: RunData[]): TopLevelSpec | null {
  const keys = [
    ["loss", "Loss"],
    ["l0", "L0 (active latents per row)"],
    ["explained_variance", "Explained variance"],
  ] as const;
  const values = runs.flatMap((r) =>
    r.log.flatMap((rec) =>
      keys.flatMap(([k, title]) => {
        const v = num(rec[k]);
        return v === null ? [] : [{
          run: r.name,
          step: rec.step,
          metric: title,
          value: v,
          description: `${r.name}: step ${rec.step}, ${title} ${fmt(v)}`,
        }];
      })
    )
  );
  if (values.length === 0) return null;
  return {
    $schema: SCHEMA,
    title: { text: "Training curves", subtitle: "logged every log_every steps (metrics.jsonl)" },
    data: { values },
    hconcat: keys.map(([, title]) => ({
      width: 240,
      height: 180,
      transform: [{ filter: { field: "metric", equal: title } }],
      encoding: {
        x: { field: "step", type: "quantitative", title: "step" },
        y: { field: "value", type: "quantitative", title, scale: { zero: false } },
        color: runColor,
      },
      layer: [
        { mark: { type: "line", aria: false } },
        {
          mark: { type: "point", filled: true, size: 14 },
          encoding: { description: { field: "description", type: "nominal" } },
        },
      ],
    })),
  } as TopLevelSpec;
}

/** Final L0 against explained variance, one labelled point per run. */
function runsFrontierSpec(runs: RunData[]): TopLevelSpec | null {
  const marks = runs.flatMap((r) => {
    const l0 = num(r.final?.l0), ev = num(r.final?.explained_variance);
    return l0 === null || ev === null ? [] : [{
      series: r.name,
      label: r.name,
      order: 0,
      l0,
      ev,
      description: `${r.name}: L0 ${fmt(l0, 2)}, EV ${fmt(ev)}`,
    }];
  });
  if (marks.length === 0) return null;
  return frontierSpec(marks, {
    subtitle: "final held-out metrics (metrics.json); up and left is better",
    seriesTitle: "run",
    lines: false,
  });
}

/** SCR's normalised score against k (eval.json scr), one line per run. */
function scrSpec(runs: RunData[]): TopLevelSpec | null {
  const values = runs.flatMap((r) => {
    const s = r.eval?.scr;
    if (!s || !Array.isArray(s.k) || !Array.isArray(s.score)) return [];
    return s.k.flatMap((k, i) => {
      const v = num(s.score[i]);
      return v === null ? [] : [{
        run: r.name,
        k,
        score: v,
        description: `${r.name}: k ${k}, SCR ${fmt(v)}`,
      }];
    });
  });
  if (values.length === 0) return null;
  return {
    $schema: SCHEMA,
    title: {
      text: "Spurious correlation removal",
      subtitle: "normalised SCR score after ablating the top-k latents; higher is better",
    },
    width: 420,
    height: 260,
    data: { values },
    encoding: {
      x: {
        field: "k",
        type: "quantitative",
        title: "k (latents ablated)",
        scale: { type: "log", base: 2 },
      },
      y: { field: "score", type: "quantitative", title: "SCR score" },
      color: runColor,
    },
    layer: [
      { mark: { type: "line", aria: false } },
      {
        mark: { type: "point", filled: true, size: 50 },
        encoding: { description: { field: "description", type: "nominal" } },
      },
    ],
  } as TopLevelSpec;
}

/** Absorption rate per first letter (eval.json absorption), bars grouped by run. */
function absorptionSpec(runs: RunData[]): TopLevelSpec | null {
  const values = runs.flatMap((r) =>
    (r.eval?.absorption?.per_letter ?? []).flatMap((p) => {
      const v = num(p.absorption);
      return v === null ? [] : [{
        run: r.name,
        letter: p.letter,
        absorption: v,
        description: `${r.name}: letter ${p.letter}, absorption ${fmt(v)}`,
      }];
    })
  );
  if (values.length === 0) return null;
  const means = runs.flatMap((r) => {
    const m = num(r.eval?.absorption?.mean);
    return m === null ? [] : [`${r.name} ${fmt(m, 3)}`];
  });
  return {
    $schema: SCHEMA,
    title: {
      text: "Feature absorption by first letter",
      subtitle: `fraction of a letter's rows whose parent latent is absorbed; lower is better${
        means.length ? ` (mean: ${means.join(", ")})` : ""
      }`,
    },
    width: { step: 22 },
    height: 240,
    data: { values },
    mark: { type: "bar" },
    encoding: {
      x: { field: "letter", type: "nominal", title: "first letter", sort: null },
      xOffset: { field: "run", type: "nominal" },
      y: {
        field: "absorption",
        type: "quantitative",
        title: "Absorption rate",
        scale: { domain: [0, 1] },
      },
      color: runColor,
      description: { field: "description", type: "nominal" },
    },
  } as TopLevelSpec;
}

/** Histogram of log10 latent firing frequency (eval.json core.density_histogram). */
function densitySpec(runs: RunData[]): TopLevelSpec | null {
  const values = runs.flatMap((r) => {
    const h = r.eval?.core?.density_histogram;
    if (!h || !Array.isArray(h.edges) || !Array.isArray(h.counts)) return [];
    return h.counts.flatMap((c, i) => {
      const lo = num(h.edges[i]), hi = num(h.edges[i + 1]), n = num(c);
      return lo === null || hi === null || n === null ? [] : [{
        run: r.name,
        lo,
        hi,
        count: n,
        description: `${r.name}: log10 frequency ${fmt(lo, 2)} to ${fmt(hi, 2)}, ${n} latents`,
      }];
    });
  });
  if (values.length === 0) return null;
  const never = runs.flatMap((r) => {
    const n = num(r.eval?.core?.density_histogram?.never_fired);
    return n === null ? [] : [`${r.name} ${n}`];
  });
  return {
    $schema: SCHEMA,
    title: {
      text: "Latent density",
      subtitle: `log10 of each latent's firing frequency; never fired (not shown): ${
        never.join(", ") || "n/a"
      }`,
    },
    width: 420,
    height: 240,
    data: { values },
    mark: { type: "bar", opacity: 0.6, binSpacing: 0 },
    encoding: {
      x: { field: "lo", type: "quantitative", title: "log10 firing frequency" },
      x2: { field: "hi" },
      y: { field: "count", type: "quantitative", title: "latents", stack: null },
      color: runColor,
      description: { field: "description", type: "nominal" },
    },
  } as TopLevelSpec;
}

/** Ground-truth recovery per run: MMCS, share recovered at cos > 0.9, precision, recall. */
function groundTruthSpec(runs: RunData[]): TopLevelSpec | null {
  const values = runs.flatMap((r) => {
    const gt = r.eval?.ground_truth;
    const pairs: [string, number | null][] = [
      ["MMCS", num(gt?.mmcs) ?? num(r.final?.mmcs)],
      ["recovered (cos > 0.9)", num(gt?.recovered_at_0_9) ?? num(r.final?.recovered_at_0_9)],
      ["mean precision", num(gt?.mean_precision)],
      ["mean recall", num(gt?.mean_recall)],
    ];
    return pairs.flatMap(([metric, v]) =>
      v === null ? [] : [{
        run: r.name,
        metric,
        value: v,
        label: fmt(v, 3),
        description: `${r.name}: ${metric} ${fmt(v)}`,
      }]
    );
  });
  if (values.length === 0) return null;
  const y = { field: "metric", type: "nominal", title: null, sort: null } as const;
  const x = {
    field: "value",
    type: "quantitative",
    title: "value (1 is perfect)",
    scale: { domain: [0, 1] as number[] },
  } as const;
  return {
    $schema: SCHEMA,
    title: {
      text: "Ground-truth recovery",
      subtitle: "true directions of the synthetic generator matched by decoder rows",
    },
    width: 360,
    height: { step: 14 },
    data: { values },
    layer: [
      {
        mark: { type: "bar" },
        encoding: {
          y,
          yOffset: { field: "run", type: "nominal" },
          x,
          color: runColor,
          description: { field: "description", type: "nominal" },
        },
      },
      {
        mark: { type: "text", align: "left", dx: 3, fontSize: 9 },
        encoding: {
          y,
          yOffset: { field: "run", type: "nominal" },
          x,
          text: { field: "label", type: "nominal" },
        },
      },
    ],
  } as TopLevelSpec;
}

/** The sections in report order: id, title, spec builder, and what is missing when it is null. */
const SECTIONS: [string, string, (r: RunData[]) => TopLevelSpec | null, string][] = [
  ["curves", "Training curves", curvesSpec, "no run has a metrics.jsonl with logged steps"],
  ["frontier", "L0–EV frontier", runsFrontierSpec, "no run has a metrics.json (finished training)"],
  ["scr", "SCR vs k", scrSpec, "no eval.json with SCR results (run `sae eval`)"],
  [
    "absorption",
    "Absorption by letter",
    absorptionSpec,
    "no eval.json with absorption results (run `sae eval`)",
  ],
  [
    "density",
    "Latent density",
    densitySpec,
    "no eval.json with a density histogram (run `sae eval`)",
  ],
  [
    "ground-truth",
    "Ground-truth recovery",
    groundTruthSpec,
    "no run has ground-truth metrics (synthetic data only)",
  ],
];

/** Makes the ids of an SVG unique within a page that inlines several. */
function prefixIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, `id="${prefix}-$1"`)
    .replace(/url\(#([^)]+)\)/g, `url(#${prefix}-$1)`)
    .replace(/href="#([^"]+)"/g, `href="#${prefix}-$1"`);
}

/** Renders every section (null SVG where its data is missing). */
async function renderSections(runs: RunData[]): Promise<Section[]> {
  const out: Section[] = [];
  for (const [id, title, build, missing] of SECTIONS) {
    const spec = build(runs);
    out.push({ id, title, svg: spec ? await renderSvg(spec) : null, missing });
  }
  return out;
}

function esc(s: string): string {
  return s.replace(
    /[&<>"]/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!,
  );
}

/** The final-metrics table (one row per run). */
function metricsTable(runs: RunData[]): string {
  const cols: [string, (r: RunData) => string][] = [
    ["run", (r) => r.name],
    ["variant", (r) => String(r.config?.variant ?? "")],
    ["d_in × d_sae", (r) => r.config ? `${r.config.d_in} × ${r.config.d_sae}` : ""],
    ["steps", (r) => String(r.log.at(-1)?.step ?? r.config?.steps ?? "")],
    ["L0", (r) => opt(r.final?.l0, 2)],
    ["EV", (r) => opt(r.final?.explained_variance, 4)],
    ["MSE", (r) => opt(r.final?.mse, 4)],
    ["dead", (r) => pct(r.final?.dead_fraction)],
    ["dense", (r) => pct(r.final?.dense_fraction)],
    ["MMCS", (r) => opt(r.final?.mmcs, 3)],
    ["recovered", (r) => pct(r.final?.recovered_at_0_9)],
    ["absorption", (r) => opt(r.eval?.absorption?.mean, 3)],
  ];
  const head = cols.map(([h]) => `<th>${esc(h)}</th>`).join("");
  const body = runs.map((r) =>
    `<tr>${cols.map(([, f]) => `<td>${esc(f(r) || "–")}</td>`).join("")}</tr>`
  ).join("\n");
  return `<table>\n<thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

function opt(v: unknown, digits: number): string {
  const n = num(v);
  return n === null ? "" : fmt(n, digits);
}

function pct(v: unknown): string {
  const n = num(v);
  return n === null ? "" : `${(100 * n).toFixed(1)}%`;
}

/** The whole page: the metrics table, then every section (its SVG inlined, or one line). */
function reportHtml(runs: RunData[], sections: Section[]): string {
  const body = sections.map((s) => {
    const content = s.svg
      ? `<figure>${prefixIds(s.svg, s.id)}</figure>`
      : `<p class="missing">No data: ${esc(s.missing)}.</p>`;
    return `<section id="${s.id}">\n<h2>${esc(s.title)}</h2>\n${content}\n</section>`;
  }).join("\n");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>SAE report: ${esc(runs.map((r) => r.name).join(", "))}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 0; overflow-x: auto; }
.missing { color: #777; font-style: italic; }
</style>
</head>
<body>
<h1>SAE report</h1>
<p>${runs.length} run${runs.length === 1 ? "" : "s"}: ${
    esc(runs.map((r) => r.dir).join(", "))
  }. Generated ${new Date().toISOString().slice(0, 19).replace("T", " ")} UTC.</p>
<section id="metrics">
<h2>Final metrics</h2>
${metricsTable(runs)}
</section>
${body}
</body>
</html>
`;
}

/** Unique short names: directory names, or their paths where two clash. */
function names(dirs: string[]): string[] {
  const base = dirs.map((d) => basename(d));
  return dirs.map((d, i) =>
    base.filter((b) => b === base[i]).length > 1 ? relative(".", d) : base[i]
  );
}

/**
 * Writes `out` (the page) and `<out without .html>-<section>.svg` next to it for every section
 * with data; returns the page and the SVG paths.
 */
export async function writeReport(
  paths: string[],
  out: string,
): Promise<{ html: string; svgs: string[]; runs: RunData[] }> {
  if ((await Deno.stat(out).catch(() => null))?.isDirectory) {
    throw new UserError(`--out ${out} is a directory; give the path of the HTML file to write`);
  }
  const dirs = await findRuns(paths);
  const ns = names(dirs);
  const runs = await Promise.all(dirs.map((d, i) => readRun(d, ns[i])));
  const sections = await renderSections(runs);
  await writingTo(out, "--out", () => Deno.mkdir(dirname(out) || ".", { recursive: true }));
  await checkOutputFile(out, "--out");
  const stem = out.replace(/\.html?$/i, "");
  const files: [string, string][] = [];
  for (const s of sections) if (s.svg) files.push([`${stem}-${s.id}.svg`, s.svg]);
  const html = reportHtml(runs, sections);
  // The plots and the page are replaced together: never a page beside plots of another version.
  await writingTo(out, "--out", () => atomicWriteAll([...files, [out, html]]));
  return { html, svgs: files.map(([path]) => path), runs };
}
