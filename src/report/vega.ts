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

/** The x axis of every L0-vs-explained-variance chart (field `l0`). */
export const L0_AXIS = {
  field: "l0",
  type: "quantitative",
  title: "L0 (active latents per row)",
  scale: { zero: false },
} as const;

/** The y axis of every L0-vs-explained-variance chart (field `ev`). */
export const EV_AXIS = {
  field: "ev",
  type: "quantitative",
  title: "Explained variance",
  scale: { zero: false },
} as const;
