/**
 * `sae report RUN...`: report.html with SVG plots (training curves, L0–EV frontier, SCR vs k,
 * absorption by letter, latent density, ground-truth recovery) and a table of final metrics over
 * the given run directories (or the runs inside a sweep's directory). See src/report/report.ts.
 *
 * @example
 * ```sh
 * deno task sae report runs/*                 # ./report.html (+ report-*.svg)
 * deno task sae report runs/demo               # runs/demo/report.html
 * deno task sae report runs/a runs/b --out cmp.html
 * ```
 */

import { Command } from "@commander-js/extra-typings";
import { join } from "node:path";
import { writeReport } from "../report/report.ts";

/** The `report` command's options (no action attached). */
function makeReportCommand() {
  return new Command("report")
    .description(
      "write an HTML report with SVG plots (curves, frontier, SCR, absorption, density, ground " +
        "truth) and a final-metrics table over run directories",
    )
    .argument("<runs...>", "run directories, or directories holding runs (a sweep's output)")
    .option(
      "--out <file>",
      "HTML file to write; the SVGs go next to it as <file>-<section>.svg " +
        "(default: RUN/report.html for one run, ./report.html for several)",
    );
}

/** `sae report`, ready to register on the program. */
export function reportCommand() {
  return makeReportCommand().action(async (runs, flags) => {
    const out = flags.out ?? (runs.length === 1 ? join(runs[0], "report.html") : "report.html");
    const { svgs, runs: read } = await writeReport(runs, out);
    console.log(`wrote ${out} (${read.length} run(s), ${svgs.length} plot(s))`);
  });
}
