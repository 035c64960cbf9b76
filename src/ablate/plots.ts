/**
 * The ablation plots, as Vega-Lite specs rendered to SVG headlessly by src/report/vega.ts.
 *
 * Every data mark carries an aria-label (the `description` channel: the run's name and values),
 * so the SVG can be checked, and read by a screen reader, without drawing it.
 *
 * @example
 * ```ts
 * const svg = await frontierSvg([{ label: "baseline", variant: "baseline", points: [
 *   { run: "a", lambda1: 0.1, l0: 20, explained_variance: 0.9 },
 *   { run: "b", lambda1: 0.2, l0: 10, explained_variance: 0.8 },
 * ] }]);
 * ```
 */

import type { TopLevelSpec } from "vega-lite";
import { frontierSpec, renderSvg } from "../report/vega.ts";
import { fmtNumber } from "./sweep.ts";
import type { AblationRow, Frontier } from "./table.ts";

/** L0 and explained variance of every finished run, side by side, runs in sweep order. */
function ablationSpec(rows: AblationRow[]): TopLevelSpec {
  const values = rows.filter((r) => r.status === "done").map((r) => ({
    run: r.run,
    variant: r.variant,
    l0: r.l0,
    ev: r.explained_variance,
  }));
  const y = { field: "run", type: "nominal", sort: null, title: "run" } as const;
  const color = { field: "variant", type: "nominal", title: "variant" } as const;
  const panel = (field: "l0" | "ev", title: string) => ({
    width: 260,
    height: { step: 16 },
    mark: { type: "point", filled: true, size: 70 },
    encoding: {
      y,
      x: { field, type: "quantitative", title, scale: { zero: false } },
      color,
      description: { field: "run", type: "nominal" },
    },
  } as const);
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: "Ablations: final L0 and explained variance per run",
      subtitle: values.length === 0 ? "no run has finished yet" : "held-out rows (metrics.json)",
    },
    data: { values },
    hconcat: [panel("l0", "L0 (active latents per row)"), panel("ev", "Explained variance")],
  };
}

/** The λ1 frontiers as SVG: one line per frontier (a λ1 sweep of one variant), points labelled. */
export function frontierSvg(fronts: Frontier[]): Promise<string> {
  const marks = fronts.flatMap((f) =>
    f.points.map((p) => ({
      series: f.label,
      label: `λ1=${fmtNumber(p.lambda1)}`,
      order: p.lambda1,
      l0: p.l0,
      ev: p.explained_variance,
      description: `${p.run}: L0 ${p.l0.toFixed(2)}, EV ${p.explained_variance.toFixed(4)}`,
    }))
  );
  return renderSvg(frontierSpec(marks, {
    subtitle: marks.length === 0
      ? "no λ1 sweep has finished yet"
      : "each line sweeps λ1 for one variant; up and left is better",
    seriesTitle: "variant",
    lines: true,
  }));
}

/** The per-run chart as SVG. */
export function ablationSvg(rows: AblationRow[]): Promise<string> {
  return renderSvg(ablationSpec(rows));
}

/** One point of the architectures chart: a run's L0 and one metric. */
export interface ArchMark {
  data: string;
  variant: string;
  /** The row: "explained variance", "MMCS", "recovered@0.9", or those `architecturesSvg` is given. */
  metric: string;
  l0: number;
  value: number;
  run: string;
}

/**
 * Every variant's frontier on one chart (`sae ablate --preset architectures` and `--preset lm`):
 * a column per data setting (or layer), a row per metric (default EV, MMCS, recovered@0.9; `o`
 * names others, and the title), L0 on a log axis, a line per variant.
 */
export function architecturesSvg(
  marks: ArchMark[],
  o: { title?: string; metrics?: string[]; columnTitle?: string } = {},
): Promise<string> {
  const values = marks.map((m) => ({
    ...m,
    description: `${m.run}: L0 ${m.l0.toFixed(2)}, ${m.metric} ${m.value.toFixed(3)}`,
  }));
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: o.title ?? "Sparsity frontiers of every architecture",
      subtitle: "each line sweeps one variant's sparsity knob; up and left is better",
    },
    data: { values },
    facet: {
      row: {
        field: "metric",
        type: "nominal",
        title: null,
        sort: o.metrics ?? ["explained variance", "MMCS", "recovered@0.9"],
      },
      column: { field: "data", type: "nominal", title: o.columnTitle ?? "data", sort: null },
    },
    spec: {
      width: 220,
      height: 160,
      mark: { type: "line", point: { size: 40, filled: true } },
      encoding: {
        x: { field: "l0", type: "quantitative", title: "L0", scale: { type: "log" } },
        y: { field: "value", type: "quantitative", title: null, scale: { zero: false } },
        color: { field: "variant", type: "nominal", title: "variant", sort: null },
        order: { field: "l0", type: "quantitative" },
        description: { field: "description", type: "nominal" },
      },
    },
    resolve: { scale: { y: "independent" } },
  };
  return renderSvg(spec);
}
