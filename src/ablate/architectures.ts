/**
 * `sae ablate --preset architectures`: every variant (the baseline ReLU SAE, the paper's method,
 * TopK, BatchTopK, JumpReLU, Matryoshka BatchTopK) swept over its sparsity knob on three synthetic
 * generator settings, then compared at matched L0, not at default knobs:
 *
 * - **Frontiers.** Per data setting and variant, the runs ordered by L0, with EV, MMCS,
 *   recovered@0.9 (held-out metrics.json) and absorption and SCR (`sae eval`'s eval.json, written
 *   into each run directory; resumable like the runs).
 * - **Matched L0.** Every metric read off each frontier at the data's true L0 (the mean number of
 *   true features active per row) and at twice it, interpolating linearly in log L0 between the
 *   two runs that bracket it; a frontier that does not reach a target shows "—" (no extrapolation).
 * - **EV up, recovery down.** A variant that explains more variance than another at the same L0
 *   while recovering fewer true directions is flagged: it buys reconstruction with directions that
 *   are not the data's features, which is worse for interpretability.
 *
 * λ1 only transfers between data sets of different scale when the inputs are normalised, so every
 * run scales its inputs to mean norm √d_in (normalize_activations: expected_average_only_in).
 *
 * @example
 * ```ts
 * import { architecturesSweep } from "./architectures.ts";
 * console.log(architecturesSweep().runs.length); // 81
 * ```
 */
import { join } from "node:path";
import type { PartialConfig, TrainConfig } from "../config.ts";
import { SyntheticSource } from "../data/synthetic.ts";
import { UserError } from "../errors.ts";
import type { EvalReport } from "../eval/schema.ts";
import { absorptionEvaluator } from "../eval/absorption.ts";
import { evaluateRun } from "../eval/evaluate.ts";
import { scrEvaluator } from "../eval/scr.ts";
import { atomicWrite } from "../run/atomic.ts";
import { architecturesSvg, type ArchMark } from "./plots.ts";
import { CPU_BASE, fmtNumber, type ResolvedRun, type Sweep } from "./sweep.ts";
import { METRICS_JSON } from "./table.ts";

/** The eval.json each run's directory gets (absorption and SCR need it). */
export const EVAL_JSON = "eval.json";

/** One synthetic data setting of the preset. */
export interface DataSetting {
  /** Short name: the run names' first part. */
  name: string;
  /** How it differs, in words (the table's heading). */
  what: string;
  /** Its config layer: d_in, d_sae and the generator's keys. */
  layer: PartialConfig;
  /** Factors on the scale-dependent knobs' values here (default 1). */
  knobScale?: Partial<Record<KnobKey, number>>;
}

/**
 * The three settings: they differ in width, number of true directions (and superposition), the
 * features' scale, the mean offset and the hierarchy (parents × children, parent probability).
 * `default` is the default run's data (DEFAULT_SYNTHETIC at d_in 64).
 */
export const ARCH_DATA: readonly DataSetting[] = [
  {
    name: "default",
    what: "the default run's data and SAE width: d_in 64, d_sae 512, 256 directions (4× " +
      "superposition), L0 6, magnitudes ~1, mean offset 4, 26 parents × 3 children",
    layer: { d_in: 64, d_sae: 512 },
  },
  {
    name: "wide",
    what: "d_in 128, d_sae 256, 192 directions (1.5×), L0 10, magnitudes ~4, no mean offset, " +
      "8 parents × 4 children",
    layer: {
      d_in: 128,
      d_sae: 256,
      synthetic: {
        n_features: 192,
        mean_l0: 10,
        magnitude_mean: 4,
        magnitude_std: 1,
        offset_norm: 0,
        n_parents: 8,
        children_per_parent: 4,
        parent_probability: 0.05,
        n_groups: 4,
        noise_std: 0.04,
      },
    },
  },
  {
    name: "narrow",
    what: "d_in 32, d_sae 512, 384 directions (12×), L0 4, magnitudes ~0.25, mean offset 3 " +
      "(12× a feature), 4 parents × 8 children",
    layer: {
      d_in: 32,
      d_sae: 512,
      synthetic: {
        n_features: 384,
        mean_l0: 4,
        magnitude_mean: 0.25,
        magnitude_std: 0.1,
        offset_norm: 3,
        n_parents: 4,
        children_per_parent: 8,
        parent_probability: 0.1,
        n_groups: 16,
        noise_std: 0.0025,
      },
    },
    // Normalising by the mean norm counts the offset, 12× a feature here: the features come out
    // 8× smaller than on the other settings, and the same λ1 or λ0 gives L0 ≈ 1-3. k from 2:
    // BatchTopK's threshold at inference keeps a little more than k, and the true L0 is 4.
    knobScale: { l1: 1 / 8, l0_coefficient: 1 / 8, k: 1 / 2 },
  },
];

/** The variants of the preset, in table order. */
export const ARCH_VARIANTS = [
  "baseline",
  "paper",
  "topk",
  "batchtopk",
  "jumprelu",
  "matryoshka",
] as const;
/** One of {@link ARCH_VARIANTS}. */
export type ArchVariant = typeof ARCH_VARIANTS[number];

/** The config key a variant's sparsity is tuned with. */
export type KnobKey = "l1" | "k" | "l0_coefficient";

/** Each variant's sparsity knob: the key a user tunes, the values swept, and fixed extras. */
export interface Knob {
  key: KnobKey;
  values: number[];
  /** What else the variant's runs set (the same on every data setting). */
  extra: PartialConfig;
}

/**
 * The knobs. λ1 and λ0 span L0 ≈ 4-40 on the (normalised) settings, with the narrow setting's
 * factor ({@link DataSetting.knobScale}); k is L0 by construction. The paper's method keeps the CPU sweep's recon-only first phase (its §4.4);
 * JumpReLU starts its thresholds at 0.1 instead of SAELens' 0.01, which log θ under Adam (≈ lr a
 * step) would take most of a 1500-step run to leave.
 */
export const ARCH_KNOBS: Record<ArchVariant, Knob> = {
  baseline: { key: "l1", values: [0.5, 1, 2, 4, 8], extra: {} },
  paper: { key: "l1", values: [0.25, 0.5, 1, 2, 4], extra: { recon_only_steps: 300 } },
  topk: { key: "k", values: [4, 8, 16, 32], extra: {} },
  batchtopk: { key: "k", values: [4, 8, 16, 32], extra: {} },
  jumprelu: {
    key: "l0_coefficient",
    values: [0.1, 0.2, 0.4, 0.8, 1.6],
    extra: { jumprelu_init_threshold: 0.1 },
  },
  matryoshka: { key: "k", values: [4, 8, 16, 32], extra: {} },
};

/** The settings every run shares: CPU_BASE's optimiser and length, inputs normalised. */
const ARCH_BASE: PartialConfig = {
  batch: CPU_BASE.batch,
  steps: CPU_BASE.steps,
  warmup_steps: CPU_BASE.warmup_steps,
  init_rows: CPU_BASE.init_rows,
  log_every: CPU_BASE.log_every,
  checkpoint_every: CPU_BASE.checkpoint_every,
  normalize_activations: "expected_average_only_in",
};

/** A run's name: `<data>.<variant>.<knob>=<value>`. */
function archRunName(data: string, variant: string, key: string, value: number): string {
  return `${data}.${variant}.${key}=${fmtNumber(value)}`;
}

/** The preset as a sweep (optionally over other settings, variants' knobs or base: tests). */
export function architecturesSweep(o: {
  data?: readonly DataSetting[];
  knobs?: Partial<Record<ArchVariant, Knob>>;
  base?: PartialConfig;
} = {}): Sweep {
  const data = o.data ?? ARCH_DATA;
  const knobs = o.knobs ?? ARCH_KNOBS;
  const runs: Sweep["runs"] = [];
  for (const d of data) {
    for (const variant of ARCH_VARIANTS) {
      const knob = knobs[variant];
      if (!knob) continue;
      for (const v of knob.values) {
        const value = Number((v * (d.knobScale?.[knob.key] ?? 1)).toPrecision(6));
        runs.push({
          name: archRunName(d.name, variant, knob.key, value),
          overrides: { ...d.layer, ...knob.extra, variant, [knob.key]: value },
        });
      }
    }
  }
  return { base: o.base ?? ARCH_BASE, runs };
}

// --- The analysis ----------------------------------------------------------------------------

/** One finished run of the preset with the metrics the comparison reads. */
export interface ArchPoint {
  run: string;
  data: string;
  variant: string;
  knob: KnobKey;
  value: number;
  l0: number;
  explained_variance: number;
  mmcs: number;
  recovered_at_0_9: number;
  dead_fraction: number;
  /** Mean absorption over the letters (eval.json), or null before the run is evaluated. */
  absorption: number | null;
  /** SCR score at k = 2, 5, 10 (eval.json), or null. */
  scr: [number, number, number] | null;
}

/** The metrics a matched-L0 comparison interpolates, in table order. */
export const MATCHED_FIELDS = [
  "explained_variance",
  "mmcs",
  "recovered_at_0_9",
  "dead_fraction",
  "absorption",
  "scr2",
  "scr10",
] as const;
/** One of {@link MATCHED_FIELDS}. */
export type MatchedField = typeof MATCHED_FIELDS[number];

function field(p: ArchPoint, f: MatchedField | "value"): number | null {
  if (f === "scr2") return p.scr?.[0] ?? null;
  if (f === "scr10") return p.scr?.[2] ?? null;
  return p[f];
}

/** Reads the run's knob from its config. */
function knobOf(cfg: TrainConfig): { knob: KnobKey; value: number } {
  const knob = ARCH_KNOBS[cfg.variant as ArchVariant]?.key ?? "l1";
  return { knob, value: cfg[knob] };
}

/**
 * The finished runs' points: metrics.json (held-out rows, written by train()) and, where the run
 * has been evaluated, eval.json's absorption and SCR. `data` of a run is its name's first part.
 */
async function archPoints(runs: ResolvedRun[], outDir: string): Promise<ArchPoint[]> {
  const out: ArchPoint[] = [];
  for (const run of runs) {
    const dir = join(outDir, run.name);
    const m = await readJson(join(dir, METRICS_JSON));
    if (m === null) continue;
    const ev = await readJson(join(dir, EVAL_JSON)) as EvalReport | null;
    const scr = ev?.scr;
    const at = (k: number) => scr?.score[scr.k.indexOf(k)];
    const scrs = [at(2), at(5), at(10)];
    out.push({
      run: run.name,
      data: run.name.split(".")[0],
      variant: run.cfg.variant,
      ...knobOf(run.cfg),
      l0: m.l0 as number,
      explained_variance: m.explained_variance as number,
      mmcs: m.mmcs as number,
      recovered_at_0_9: m.recovered_at_0_9 as number,
      dead_fraction: m.dead_fraction as number,
      absorption: ev?.absorption?.mean ?? null,
      scr: scrs.every((v) => typeof v === "number") ? scrs as [number, number, number] : null,
    });
  }
  return out;
}

/** A JSON file's object, or null when the file does not exist; anything else unreadable is one line. */
export async function readJson(path: string): Promise<Record<string, unknown> | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw new UserError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

/**
 * `f` of a frontier (points of one variant on one data setting) at L0 `target`: linear in log L0
 * between the two points that bracket it (the nearest on each side), or the value of a point at
 * exactly that L0; null when no point lies on one side or a bracketing point lacks the metric.
 */
export function atL0(
  points: ArchPoint[],
  target: number,
  f: MatchedField | "value",
): number | null {
  return interpolateAtL0(points, target, (p) => field(p, f), f === "value");
}

/**
 * `get` of a frontier (points with an L0) at L0 `target`, linear in log L0 between the nearest
 * points on each side (`logValue`: linear in log value too, for a knob swept geometrically); null
 * when no point lies on one side or a bracketing point lacks the value. No extrapolation.
 */
export function interpolateAtL0<P extends { l0: number }>(
  points: P[],
  target: number,
  get: (p: P) => number | null,
  logValue = false,
): number | null {
  const below = points.filter((p) => p.l0 <= target).sort((a, b) => b.l0 - a.l0)[0];
  const above = points.filter((p) => p.l0 >= target).sort((a, b) => a.l0 - b.l0)[0];
  if (!below || !above) return null;
  const lo = get(below), hi = get(above);
  if (lo === null || hi === null) return null;
  if (above.l0 === below.l0) return (lo + hi) / 2;
  const t = (Math.log(target) - Math.log(below.l0)) / (Math.log(above.l0) - Math.log(below.l0));
  if (logValue) return Math.exp(Math.log(lo) + t * (Math.log(hi) - Math.log(lo)));
  return lo + t * (hi - lo);
}

/** One variant's row of a matched-L0 table. */
export interface MatchedRow {
  variant: string;
  knob: KnobKey;
  /** The knob's value at the target (interpolated in log space), or null. */
  value: number | null;
  metrics: Record<MatchedField, number | null>;
  /**
   * The variants this one explains more variance than while recovering fewer true directions
   * (recovered@0.9) at the same L0.
   */
  evOverRecovery: string[];
}

/** The matched-L0 table of one data setting at L0 `target`. */
export function matchedTable(points: ArchPoint[], data: string, target: number): MatchedRow[] {
  const rows: MatchedRow[] = [];
  for (const variant of ARCH_VARIANTS) {
    const front = points.filter((p) => p.data === data && p.variant === variant);
    if (front.length === 0) continue;
    const metrics = Object.fromEntries(
      MATCHED_FIELDS.map((f) => [f, atL0(front, target, f)]),
    ) as Record<MatchedField, number | null>;
    rows.push({
      variant,
      knob: front[0].knob,
      value: atL0(front, target, "value"),
      metrics,
      evOverRecovery: [],
    });
  }
  for (const r of rows) {
    const ev = r.metrics.explained_variance, rec = r.metrics.recovered_at_0_9;
    if (ev === null || rec === null) continue;
    r.evOverRecovery = rows.filter((o) => {
      const oe = o.metrics.explained_variance, or = o.metrics.recovered_at_0_9;
      return o !== r && oe !== null && or !== null && ev > oe && rec < or;
    }).map((o) => o.variant);
  }
  return rows;
}

/** The mean number of true features active per row of a run's data (16384 rows). */
export async function trueL0(cfg: Pick<TrainConfig, "synthetic" | "d_in">): Promise<number> {
  const src = new SyntheticSource(cfg.synthetic, cfg.d_in);
  const rows = 16384;
  const truth = await src.nextBatchWithTruth(new Float32Array(rows * cfg.d_in));
  return truth.rowPtr[rows] / rows;
}

// --- The report ------------------------------------------------------------------------------

/** A data setting's results: its true L0 and the tables at it and at twice it. */
export interface ArchDataReport {
  data: string;
  what: string;
  trueL0: number;
  tables: { target: number; rows: MatchedRow[] }[];
}

function fmt(v: number | null, f: MatchedField | "value"): string {
  if (v === null) return "—";
  if (f === "recovered_at_0_9" || f === "dead_fraction") return `${(100 * v).toFixed(1)}%`;
  if (f === "value") return fmtNumber(Number(v.toPrecision(3)));
  if (f === "scr2" || f === "scr10") return v.toFixed(2);
  return v.toFixed(3);
}

const HEADERS: Record<MatchedField, string> = {
  explained_variance: "EV",
  mmcs: "MMCS",
  recovered_at_0_9: "recovered@0.9",
  dead_fraction: "dead",
  absorption: "absorption",
  scr2: "SCR k=2",
  scr10: "SCR k=10",
};

/** One matched-L0 table as Markdown. */
function matchedMarkdown(rows: MatchedRow[]): string {
  const head = [
    "variant",
    "knob at this L0",
    ...MATCHED_FIELDS.map((f) => HEADERS[f]),
    "EV ↑ recovery ↓ vs",
  ];
  const lines = [
    `| ${head.join(" | ")} |`,
    `| ${head.map((_, i) => i === 0 || i === head.length - 1 ? "---" : "---:").join(" | ")} |`,
  ];
  for (const r of rows) {
    lines.push(
      `| ${
        [
          r.variant,
          r.value === null ? "—" : `${r.knob} ${fmt(r.value, "value")}`,
          ...MATCHED_FIELDS.map((f) => fmt(r.metrics[f], f)),
          r.evOverRecovery.join(", ") || "",
        ].join(" | ")
      } |`,
    );
  }
  return lines.join("\n");
}

/** The whole report as Markdown (architectures.md). */
function architecturesMarkdown(reports: ArchDataReport[], points: ArchPoint[]): string {
  const out = [
    "# Architectures at matched L0",
    "",
    "Each variant swept over its sparsity knob (λ1: baseline and paper; k: topk, batchtopk,",
    "matryoshka; λ0 = l0_coefficient: jumprelu); every metric read off each variant's frontier at",
    "the data's true L0 and at twice it (linear in log L0 between the two runs that bracket it; —:",
    "the frontier does not reach that L0). EV, MMCS, recovered@0.9 and dead: the runs' held-out",
    "metrics.json; absorption (mean over letters) and SCR: `sae eval` (eval.json). 'EV ↑ recovery",
    "↓ vs' lists the variants this one explains more variance than while recovering fewer true",
    "directions: more variance bought with directions that are not the data's.",
    "",
  ];
  for (const r of reports) {
    out.push(`## ${r.data}: ${r.what}`, "");
    for (const t of r.tables) {
      const mult = t.target / r.trueL0;
      out.push(
        `L0 = ${t.target.toFixed(2)} (${
          mult === 1 ? "the true L0" : `${fmtNumber(mult)}× the true L0`
        }):`,
        "",
        matchedMarkdown(t.rows),
        "",
      );
    }
  }
  out.push(
    "## Every run",
    "",
    "| run | L0 | EV | MMCS | recovered@0.9 | dead | absorption | SCR k=2 / 5 / 10 |",
  );
  out.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
  for (const p of points) {
    out.push(
      `| ${p.run} | ${p.l0.toFixed(2)} | ${p.explained_variance.toFixed(3)} | ${
        p.mmcs.toFixed(3)
      } | ${(100 * p.recovered_at_0_9).toFixed(1)}% | ${(100 * p.dead_fraction).toFixed(1)}% | ${
        p.absorption?.toFixed(3) ?? "—"
      } | ${p.scr?.map((v) => v.toFixed(2)).join(" / ") ?? "—"} |`,
    );
  }
  return out.join("\n") + "\n";
}

// --- Running it ------------------------------------------------------------------------------

/** What {@link finishArchitectures} wrote. */
export interface ArchitecturesResult {
  reports: ArchDataReport[];
  points: ArchPoint[];
  files: string[];
}

/**
 * After the preset's runs (src/ablate/run.ts runSweep): evaluates every finished run that has no
 * eval.json yet (`sae eval`'s core metrics, absorption and SCR, into its directory: an interrupted
 * preset resumes here too), then writes architectures.md, .json and .svg into `outDir`.
 */
export async function finishArchitectures(
  runs: ResolvedRun[],
  outDir: string,
  opts: { log?: (line: string) => void; data?: readonly DataSetting[] } = {},
): Promise<ArchitecturesResult> {
  const log = opts.log ?? ((line: string) => console.error(line));
  for (const run of runs) {
    const dir = join(outDir, run.name);
    if (await readJson(join(dir, METRICS_JSON)) === null) continue;
    if (await readJson(join(dir, EVAL_JSON)) !== null) continue;
    log(`evaluating ${run.name} (absorption, SCR)`);
    await evaluateRun(dir, {
      out: join(dir, EVAL_JSON),
      extra: [absorptionEvaluator, scrEvaluator],
    });
  }
  const points = await archPoints(runs, outDir);
  const reports: ArchDataReport[] = [];
  for (const d of opts.data ?? ARCH_DATA) {
    const first = runs.find((r) => r.name.startsWith(`${d.name}.`));
    if (!first) continue;
    const l0 = await trueL0(first.cfg);
    reports.push({
      data: d.name,
      what: d.what,
      trueL0: l0,
      tables: [l0, 2 * l0].map((target) => ({
        target,
        rows: matchedTable(points, d.name, target),
      })),
    });
  }
  const marks: ArchMark[] = points.flatMap((p) =>
    ([
      ["explained variance", p.explained_variance],
      ["MMCS", p.mmcs],
      ["recovered@0.9", p.recovered_at_0_9],
    ] as const).map(([metric, value]) => ({
      data: p.data,
      variant: p.variant,
      metric,
      l0: p.l0,
      value,
      run: p.run,
    }))
  );
  const files: [string, string][] = [
    ["architectures.md", architecturesMarkdown(reports, points)],
    ["architectures.json", JSON.stringify({ reports, points }, null, 2) + "\n"],
    ["architectures.svg", await architecturesSvg(marks)],
  ];
  const paths: string[] = [];
  for (const [name, text] of files) {
    const path = join(outDir, name);
    await atomicWrite(path, text);
    paths.push(path);
  }
  return { reports, points, files: paths };
}
