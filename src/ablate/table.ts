/**
 * The ablation table: one row per run of a sweep from its metrics.json, the λ1 frontiers, and the
 * table as Markdown and CSV. src/ablate/run.ts writes them; src/ablate/plots.ts draws them.
 *
 * @example
 * ```ts
 * import { collectRows, frontiers, toMarkdown } from "./table.ts";
 * const rows = await collectRows(runs, "runs/ablate-cpu");
 * console.log(toMarkdown(rows), frontiers(runs, rows));
 * ```
 */

import { join } from "node:path";
import { UserError } from "../errors.ts";
import { canonicalJson, describeOverrides, fmtNumber, type ResolvedRun } from "./sweep.ts";

/** The final-metrics file a finished run leaves (written last by train()). */
export const METRICS_JSON = "metrics.json";

/** One row of the ablation table. */
export interface AblationRow {
  run: string;
  /** Other names of the sweep with the same resolved config. */
  aliases: string[];
  variant: string;
  /** The run's overrides of the sweep's base, `key=value` separated by spaces. */
  overrides: string;
  /** λ1 of the run's config. */
  lambda1: number;
  /** "done": metrics.json exists; "missing": not (yet) trained. */
  status: "done" | "missing";
  l0: number | null;
  explained_variance: number | null;
  mse: number | null;
  l1: number | null;
  dead_fraction: number | null;
  mmcs: number | null;
  recovered_at_0_9: number | null;
}

/** The metric columns of a row, in table order, with their headers. */
export const METRIC_COLUMNS = [
  ["l0", "L0"],
  ["explained_variance", "EV"],
  ["mse", "MSE"],
  ["l1", "L1"],
  ["dead_fraction", "dead"],
  ["mmcs", "MMCS"],
  ["recovered_at_0_9", "recovered@0.9"],
] as const satisfies readonly (readonly [keyof AblationRow, string])[];

/** One point of an L0/EV frontier. */
export interface FrontierPoint {
  run: string;
  lambda1: number;
  l0: number;
  explained_variance: number;
}

/** One line of the frontier chart: runs that differ only in λ1. */
export interface Frontier {
  label: string;
  variant: string;
  points: FrontierPoint[];
}

function numberOrNull(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** Reads `outDir/<run>/metrics.json` of every run into table rows (missing ones stay null). */
export async function collectRows(runs: ResolvedRun[], outDir: string): Promise<AblationRow[]> {
  const rows: AblationRow[] = [];
  for (const run of runs) {
    let m: Record<string, unknown> | null = null;
    try {
      m = JSON.parse(await Deno.readTextFile(join(outDir, run.name, METRICS_JSON)));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new UserError(
          `cannot read ${join(outDir, run.name, METRICS_JSON)}: ${(err as Error).message}`,
        );
      }
    }
    const row: AblationRow = {
      run: run.name,
      aliases: [...run.aliases],
      variant: run.cfg.variant,
      overrides: describeOverrides(run.overrides),
      lambda1: run.cfg.l1,
      status: m === null ? "missing" : "done",
      l0: null,
      explained_variance: null,
      mse: null,
      l1: null,
      dead_fraction: null,
      mmcs: null,
      recovered_at_0_9: null,
    };
    for (const [key] of METRIC_COLUMNS) row[key] = numberOrNull(m?.[key]);
    rows.push(row);
  }
  return rows;
}

/**
 * The λ1 frontiers: finished runs grouped by their config with λ1 left out; every group with at
 * least two λ1 values is one line, labelled by its variant (or, where two lines share a variant,
 * by the name of the group's first run), points in increasing λ1.
 */
export function frontiers(runs: ResolvedRun[], rows: AblationRow[]): Frontier[] {
  const groups = new Map<string, { run: ResolvedRun; row: AblationRow }[]>();
  runs.forEach((run, i) => {
    const row = rows[i];
    if (row.status !== "done" || row.l0 === null || row.explained_variance === null) return;
    const key = canonicalJson({ ...run.cfg, l1: null });
    groups.set(key, [...(groups.get(key) ?? []), { run, row }]);
  });
  const lines = [...groups.values()].filter((g) => new Set(g.map((m) => m.run.cfg.l1)).size >= 2);
  const variantCount = new Map<string, number>();
  for (const g of lines) {
    const v = g[0].run.cfg.variant;
    variantCount.set(v, (variantCount.get(v) ?? 0) + 1);
  }
  return lines.map((g) => {
    const variant = g[0].run.cfg.variant;
    return {
      label: variantCount.get(variant) === 1 ? variant : g[0].run.name,
      variant,
      points: g.map(({ run, row }) => ({
        run: run.name,
        lambda1: run.cfg.l1,
        l0: row.l0 as number,
        explained_variance: row.explained_variance as number,
      })).sort((a, b) => a.lambda1 - b.lambda1),
    };
  });
}

function fmtCell(v: number | null, key: string): string {
  if (v === null) return "—";
  if (key === "dead_fraction" || key === "recovered_at_0_9") return `${(100 * v).toFixed(1)}%`;
  if (key === "l0") return v.toFixed(2);
  if (key === "explained_variance" || key === "mmcs") return v.toFixed(4);
  return v.toPrecision(4);
}

function mdEscape(s: string): string {
  return s.replaceAll("|", "\\|");
}

/** The table as Markdown (a sentence of explanation, then one row per run). */
export function toMarkdown(rows: AblationRow[]): string {
  const header = [
    "run",
    "variant",
    "overrides",
    "λ1",
    ...METRIC_COLUMNS.map(([, h]) => h),
    "same config as",
  ];
  const lines = [
    "# Ablations",
    "",
    "Final metrics of each run (metrics.json: held-out rows). L0: active latents per row; EV:",
    "explained variance; dead and recovered@0.9 (true directions matched at cosine > 0.9) in %.",
    "'same config as' lists sweep names that resolved to the same config and were not retrained.",
    "",
    `| ${header.join(" | ")} |`,
    `| ${header.map((_h, i) => (i >= 3 && i < header.length - 1 ? "---:" : "---")).join(" | ")} |`,
  ];
  for (const r of rows) {
    const cells = [
      r.run,
      r.variant,
      r.overrides === "" ? "—" : `\`${r.overrides}\``,
      fmtNumber(r.lambda1),
      ...METRIC_COLUMNS.map(([k]) => fmtCell(r[k], k)),
      r.aliases.join(", "),
    ];
    lines.push(`| ${cells.map(mdEscape).join(" | ")} |`);
  }
  const missing = rows.filter((r) => r.status === "missing").map((r) => r.run);
  if (missing.length > 0) lines.push("", `Not trained yet: ${missing.join(", ")}.`);
  return lines.join("\n") + "\n";
}

function csvField(v: unknown): string {
  const s = v === null || v === undefined ? "" : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** The table as CSV (full-precision numbers; aliases joined by ';'). */
export function toCsv(rows: AblationRow[]): string {
  const header = [
    "run",
    "aliases",
    "variant",
    "overrides",
    "lambda1",
    "status",
    ...METRIC_COLUMNS.map(([k]) => k),
  ];
  const lines = [header.join(",")];
  for (const r of rows) {
    lines.push(
      [
        r.run,
        r.aliases.join(";"),
        r.variant,
        r.overrides,
        r.lambda1,
        r.status,
        ...METRIC_COLUMNS.map(([k]) => r[k]),
      ].map(csvField).join(","),
    );
  }
  return lines.join("\n") + "\n";
}
