/**
 * Vega-Lite specs rendered to SVG headlessly (vega's View with renderer "none" and toSVG(): no
 * browser, no canvas; text widths are estimated). Shared by the ablation plots and `sae report`.
 *
 * @example
 * ```ts
 * const svg = await renderSvg({ data: { values: [{ a: 1 }] }, mark: "point", encoding: {
 *   x: { field: "a", type: "quantitative" } } });
 * ```
 */

import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

/** Renders a Vega-Lite spec to an SVG string. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** A quantitative axis that need not start at zero. */
function axis(field: string, title: string) {
  return { field, type: "quantitative" as const, title, scale: { zero: false } };
}

/** One run on an L0–explained-variance chart. */
export interface FrontierMark {
  /** The line (or colour) it belongs to. */
  series: string;
  /** Its text next to the point. */
  label: string;
  /** Position along its series' line (e.g. λ1). */
  order: number;
  l0: number;
  ev: number;
  /** The point's aria-label: the run's name and values. */
  description: string;
}

/**
 * L0 (x) against explained variance (y), a point per run coloured by series and labelled; with
 * `lines`, each series' points are joined in `order` (a λ1 sweep).
 */
export function frontierSpec(
  marks: FrontierMark[],
  o: { subtitle: string; seriesTitle: string; lines: boolean },
): TopLevelSpec {
  const x = axis("l0", "L0 (active latents per row)");
  const y = axis("ev", "Explained variance");
  const color = { field: "series", type: "nominal", title: o.seriesTitle } as const;
  const description = { field: "description", type: "nominal" } as const;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: { text: "Sparsity–reconstruction frontier", subtitle: o.subtitle },
    width: 480,
    height: 320,
    data: { values: marks },
    layer: [
      o.lines
        ? {
          mark: { type: "line", point: { size: 60, filled: true } },
          encoding: { x, y, color, order: { field: "order", type: "quantitative" }, description },
        }
        : {
          mark: { type: "point", filled: true, size: 80 },
          encoding: { x, y, color, description },
        },
      {
        mark: { type: "text", dy: -10, fontSize: 10 },
        encoding: {
          x,
          y,
          text: { field: "label", type: "nominal" },
          color,
          description: { field: "label", type: "nominal" },
        },
      },
    ],
  };
}
