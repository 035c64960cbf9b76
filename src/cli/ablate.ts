/**
 * `sae ablate`: run the paper's ablations (or a sweep from YAML) into one directory and write the
 * table (Markdown, CSV, JSON) and the plots. Finished runs are not redone, so the command can be
 * stopped and started again.
 *
 * @example
 * ```sh
 * deno task ablate --list
 * deno task ablate --only baseline,method
 * deno task ablate --scale paper --set data=acts/
 * deno task ablate --preset architectures
 * deno task ablate --preset lm --corpus stories-corpus.jsonl
 * ```
 */

import { Command, Option } from "@commander-js/extra-typings";
import { basename, extname, join } from "node:path";
import { mergeConfig, type PartialConfig, setFlagLayer } from "../config.ts";
import { UserError } from "../errors.ts";
import { collect } from "./options.ts";
import { runDirState, runSweep } from "../ablate/run.ts";
import { architecturesSweep, finishArchitectures } from "../ablate/architectures.ts";
import { finishLm, type LmPlan, lmPlan, lmSweep, prepareLm } from "../ablate/lm.ts";
import {
  defaultSweep,
  describeOverrides,
  loadSweepFile,
  resolveSweep,
  type Scale,
  SCALES,
  type Sweep,
} from "../ablate/sweep.ts";

/** The `ablate` command's options (no action attached). */
export function makeAblateCommand() {
  return new Command("ablate")
    .description(
      "run the paper's ablations (baseline, method, λ_ortho, EMA decay, τ_base, each mechanism " +
        "off, λ1 frontiers) and write ablation.md/.csv/.json, frontier.svg and ablation.svg; " +
        "finished runs are not redone",
    )
    .option(
      "--sweep <file>",
      "YAML sweep { base: {config keys}, runs: { name: {overrides} } } instead of the built-in " +
        "one (default: none, the built-in sweep of --scale)",
    )
    .addOption(
      new Option(
        "--scale <scale>",
        "sizes of the built-in sweep: cpu (minutes on a CPU adapter) or paper (the paper's " +
          "d = 2304, batch 2048, 4882 steps) (default: cpu)",
      ).choices(SCALES),
    )
    .addOption(
      new Option(
        "--preset <name>",
        "a built-in comparison instead of the paper's ablations: architectures (every variant " +
          "over its sparsity knob on three synthetic settings, compared at matched L0 with " +
          "absorption and SCR; writes architectures.md/.json/.svg); lm (the same on stories260K " +
          "from ../shared/lm at two layers, trained on a corpus sampled from the model, scored " +
          "with KL-div and CE-loss on held-out text; writes lm.md/.json/.svg) (default: none)",
      ).choices(PRESETS),
    )
    .option(
      "--corpus <file>",
      "with --preset lm: the training corpus (.jsonl or .txt), reused when it exists, else " +
        "2M tokens sampled from the model into it (default: runs/lm-corpus.jsonl)",
    )
    .option(
      "--out <dir>",
      "output directory (default: runs/ablate-<scale>, runs/ablate-<preset> or runs/ablate-<file>)",
    )
    .option("--only <names>", "comma-separated run names to train (default: all runs)")
    .option(
      "--set <key=value>",
      "override a config key of every run's base, e.g. --set steps=500; repeatable (default: none)",
      collect,
    )
    .option("--list", "print the runs with their overrides and state, then exit (default: off)")
    .option("--no-progress", "hide the progress bars (default: shown when stdout is a terminal)");
}

/** What commander parsed for `ablate`. */
export type AblateFlags = ReturnType<ReturnType<typeof makeAblateCommand>["opts"]>;

/** The built-in presets of `--preset`. */
const PRESETS = ["architectures", "lm"] as const;

/** The sweep, output directory and --only list that `flags` ask for. */
export async function resolveAblateFlags(
  flags: AblateFlags,
): Promise<
  {
    sweep: Sweep;
    outDir: string;
    only?: string[];
    source: string;
    preset?: string;
    /** The lm preset's plan. */
    lm?: LmPlan;
  }
> {
  let sweep: Sweep;
  let source: string;
  let defaultOut: string;
  let lm: LmPlan | undefined;
  if (flags.corpus !== undefined && flags.preset !== "lm") {
    throw new UserError("--corpus applies only with --preset lm");
  }
  if (flags.preset !== undefined) {
    if (flags.sweep !== undefined || flags.scale !== undefined) {
      throw new UserError("--preset is a sweep of its own: drop --sweep and --scale");
    }
    source = `the ${flags.preset} preset`;
    defaultOut = `runs/ablate-${flags.preset}`;
    if (flags.preset === "lm") {
      lm = lmPlan(flags.corpus === undefined ? {} : { corpus: flags.corpus });
      sweep = lmSweep(lm, flags.out ?? defaultOut);
    } else sweep = architecturesSweep();
  } else if (flags.sweep !== undefined) {
    if (flags.scale !== undefined) {
      throw new UserError(
        "--scale picks the built-in sweep; with --sweep FILE put the sizes in the file's 'base'",
      );
    }
    sweep = await loadSweepFile(flags.sweep);
    source = flags.sweep;
    defaultOut = `runs/ablate-${basename(flags.sweep, extname(flags.sweep))}`;
  } else {
    const scale: Scale = (flags.scale as Scale | undefined) ?? "cpu";
    sweep = defaultSweep(scale);
    source = `the built-in ${scale} sweep`;
    defaultOut = `runs/ablate-${scale}`;
  }
  const sets = (flags.set ?? []).map(setFlagLayer);
  if (sets.length > 0) {
    sweep = { ...sweep, base: mergeConfig(sweep.base as PartialConfig, ...sets) };
  }
  let only: string[] | undefined;
  if (flags.only !== undefined) {
    only = flags.only.split(",").map((s) => s.trim()).filter((s) => s !== "");
    if (only.length === 0) throw new UserError("--only needs at least one run name");
  }
  if (lm) lm = { ...lm, base: sweep.base };
  return { sweep, outDir: flags.out ?? defaultOut, only, source, preset: flags.preset, lm };
}

/** `--list`: one line per distinct run with its overrides, aliases and state in `outDir`. */
export async function listRuns(sweep: Sweep, outDir: string, source: string): Promise<string> {
  const runs = resolveSweep(sweep, source);
  const width = Math.max(...runs.map((r) => r.name.length));
  const lines = [
    `${runs.length} runs (${sweep.runs.length} names) of ${source}, into ${outDir}:`,
    `base: ${describeOverrides(sweep.base) || "(defaults)"}`,
  ];
  for (const r of runs) {
    let state: string;
    try {
      state = await runDirState(join(outDir, r.name), r);
    } catch {
      state = "config differs";
    }
    const label = state === "new" ? "todo" : state === "finished" ? "done" : state;
    const aliases = r.aliases.length > 0 ? `  (also: ${r.aliases.join(", ")})` : "";
    lines.push(
      `  ${r.name.padEnd(width)}  [${label}]  ${describeOverrides(r.overrides) || "-"}${aliases}`,
    );
  }
  return lines.join("\n") + "\n";
}

/** `sae ablate`, ready to register on the program. */
export function ablateCommand() {
  return makeAblateCommand().action(async (flags) => {
    const { sweep, outDir, only, source, preset, lm } = await resolveAblateFlags(flags);
    if (flags.list) {
      console.log((await listRuns(sweep, outDir, source)).trimEnd());
      return;
    }
    const t0 = performance.now();
    if (lm) await prepareLm(lm, outDir);
    const report = await runSweep(sweep, outDir, {
      only,
      source,
      progress: flags.progress !== false && Deno.stdout.isTerminal(),
    });
    let files = report.files;
    if (preset === "architectures") {
      const arch = await finishArchitectures(resolveSweep(sweep, source), outDir);
      console.log((await Deno.readTextFile(arch.files[0])).trimEnd());
      files = [...arch.files, ...files];
    } else if (lm) {
      const trained = Object.fromEntries(
        report.outcomes.filter((o) => o.seconds !== undefined).map((o) => [o.name, o.seconds!]),
      );
      const res = await finishLm(lm, resolveSweep(sweep, source), outDir, { trained });
      console.log((await Deno.readTextFile(res.files[0])).trimEnd());
      files = [...res.files, ...files];
    } else {
      console.log((await Deno.readTextFile(join(outDir, "ablation.md"))).trimEnd());
    }
    console.log(`\nwrote ${files.join(", ")}`);
    const trained = report.outcomes.filter((o) => o.seconds !== undefined);
    const skipped = report.outcomes.filter((o) => o.status === "skipped").length;
    console.log(
      `${trained.length} run(s) trained, ${skipped} finished earlier, in ${
        ((performance.now() - t0) / 1000).toFixed(0)
      } s`,
    );
    const failed = report.outcomes.filter((o) => o.status === "failed");
    if (failed.length > 0) {
      throw new UserError(
        `${failed.length} run(s) failed: ${
          failed.map((f) => `${f.name} (${f.error})`).join("; ")
        }; the finished runs are kept, run the command again to retry`,
      );
    }
  });
}
