/**
 * Runs a sweep (src/ablate/sweep.ts) into one directory and summarises it:
 *
 *   OUT/<run>/            one run directory per distinct config (train(); aliases share it)
 *   OUT/sweep.yaml        the sweep as run (`sae ablate --sweep OUT/sweep.yaml` repeats it)
 *   OUT/ablation.md|csv|json   one row per run: overrides, L0, EV, MSE, L1, dead, MMCS, recovery
 *   OUT/frontier.svg      L0 vs explained variance along each λ1 sweep
 *   OUT/ablation.svg      L0 and explained variance of every run
 *
 * Resumable: a run whose metrics.json exists and whose config.yaml matches is not redone; a run
 * directory with a matching config.yaml but no metrics.json is continued from its last
 * checkpoint; a directory whose config.yaml differs is refused (delete it to retrain).
 *
 * @example
 * ```ts
 * import { defaultSweep } from "./sweep.ts";
 * import { runSweep } from "./run.ts";
 * await runSweep(defaultSweep("cpu"), "runs/ablate-cpu", { progress: false });
 * ```
 */

import { join } from "node:path";
import { stringify as stringifyYaml } from "yaml";
import { loadConfigFile, type TrainConfig, validateConfig } from "../config.ts";
import { UserError } from "../errors.ts";
import { atomicWrite, atomicWriteAll, pathExists, removeStaleTemps } from "../run/atomic.ts";
import { DirLock } from "../run/lock.ts";
import { writingTo } from "../run/output.ts";
import { CONFIG_FILE } from "../run/rundir.ts";
import { TrainingInterrupted } from "../errors.ts";
import { train as realTrain } from "../sae/trainer.ts";
import { ablationSvg, frontierSvg } from "./plots.ts";
import {
  canonicalJson,
  flattenLayer,
  type ResolvedRun,
  resolveSweep,
  type Sweep,
} from "./sweep.ts";
import {
  type AblationRow,
  collectRows,
  type Frontier,
  frontiers,
  METRICS_JSON,
  toCsv,
  toMarkdown,
} from "./table.ts";

/** The files a sweep writes into its directory (besides the run directories). */
const SUMMARY_FILES = [
  "sweep.yaml",
  "ablation.md",
  "ablation.csv",
  "ablation.json",
  "frontier.svg",
  "ablation.svg",
];

/** Options of {@link runSweep}. */
export interface RunSweepOptions {
  /** Train only these runs (names or aliases); the summary still covers every finished run. */
  only?: string[];
  /** Show train()'s progress bar. */
  progress: boolean;
  /** Where progress lines go (default: stderr). */
  log?: (line: string) => void;
  /** The trainer (tests wrap it to count calls). */
  train?: typeof realTrain;
  /** Where the sweep came from, for error messages (default "the sweep"). */
  source?: string;
}

/** What happened to one run in this invocation. */
export interface RunOutcome {
  name: string;
  status: "skipped" | "trained" | "resumed" | "failed" | "not selected";
  /** Wall-clock seconds of train() (trained or resumed runs). */
  seconds?: number;
  error?: string;
}

/** What {@link writeSummary} produced. */
export interface Summary {
  rows: AblationRow[];
  frontiers: Frontier[];
  /** Paths of the files written. */
  files: string[];
}

/** What {@link runSweep} did. */
export interface SweepReport extends Summary {
  outcomes: RunOutcome[];
}

/** The first key (dotted) whose value differs between two configs, with both values. */
function firstDifference(a: TrainConfig, b: TrainConfig): string {
  const fa = new Map(flattenLayer(a));
  const fb = new Map(flattenLayer(b));
  for (const key of new Set([...fa.keys(), ...fb.keys()])) {
    if (canonicalJson(fa.get(key)) !== canonicalJson(fb.get(key))) {
      return `${key}: ${fa.get(key)} there, ${fb.get(key)} in the sweep`;
    }
  }
  return "none";
}

/**
 * The state of a run's directory: "new" (absent, empty or without config.yaml: train() decides),
 * "finished" (matching config.yaml and metrics.json) or "partial" (matching config.yaml only).
 * A config.yaml that differs from the run's config is a UserError.
 */
export async function runDirState(
  dir: string,
  run: ResolvedRun,
): Promise<"new" | "finished" | "partial"> {
  const configPath = join(dir, CONFIG_FILE);
  if (!(await pathExists(configPath))) return "new";
  const saved = validateConfig(await loadConfigFile(configPath), configPath);
  if (canonicalJson(saved) !== canonicalJson(run.cfg)) {
    throw new UserError(
      `${dir} holds a run of '${run.name}' with a different config (${
        firstDifference(saved, run.cfg)
      }); delete that directory to retrain it, or pass another --out`,
    );
  }
  return (await pathExists(join(dir, METRICS_JSON))) ? "finished" : "partial";
}

/** Picks the runs named by `only` (names or aliases); unknown names are a UserError. */
function selectRuns(runs: ResolvedRun[], only: string[] | undefined): Set<string> {
  if (only === undefined) return new Set(runs.map((r) => r.name));
  const byName = new Map<string, string>();
  for (const r of runs) for (const n of [r.name, ...r.aliases]) byName.set(n, r.name);
  const out = new Set<string>();
  for (const n of only) {
    const name = byName.get(n);
    if (name === undefined) {
      throw new UserError(
        `--only: no run named '${n}' in the sweep (runs: ${[...byName.keys()].join(", ")})`,
      );
    }
    out.add(name);
  }
  return out;
}

/** The sweep as YAML, loadable by loadSweepFile (every original name, aliases included). */
function sweepToYaml(sweep: Sweep): string {
  const runs: Record<string, unknown> = {};
  for (const r of sweep.runs) runs[r.name] = r.overrides;
  return "# The sweep of this ablation, written by `sae ablate`; " +
    "`sae ablate --sweep <this file> --out <this directory>` repeats or resumes it.\n" +
    stringifyYaml({ base: sweep.base, runs });
}

/**
 * Trains every selected run of `sweep` into `outDir/<name>/` (skipping finished runs, resuming
 * partial ones), then writes the table and the plots (see {@link writeSummary}). A run that fails is
 * reported and the others go on; the report lists the failures. A selected run whose directory
 * holds another config stops everything before any training (a UserError naming it). The
 * directory is locked while the sweep runs (a second sweep into it is refused at once).
 */
export async function runSweep(
  sweep: Sweep,
  outDir: string,
  opts: RunSweepOptions,
): Promise<SweepReport> {
  const runs = resolveSweep(sweep, opts.source);
  const selected = selectRuns(runs, opts.only);
  const todo = runs.filter((r) => selected.has(r.name));
  // Before anything is trained or written: every selected directory must match its run.
  const states = new Map<string, Awaited<ReturnType<typeof runDirState>>>();
  for (const run of todo) states.set(run.name, await runDirState(join(outDir, run.name), run));
  await writingTo(outDir, "--out", () => Deno.mkdir(outDir, { recursive: true }));
  const lock = await writingTo(outDir, "--out", () => DirLock.acquire(outDir, "sae ablate"));
  try {
    // Under the lock no other ablation writes here: temporary files are a killed one's.
    await removeStaleTemps(SUMMARY_FILES.map((f) => join(outDir, f)));
    const sweepFile = join(outDir, SUMMARY_FILES[0]);
    await writingTo(sweepFile, "--out", () => atomicWrite(sweepFile, sweepToYaml(sweep)));
    return await trainAll(sweep, outDir, opts, runs, selected, states);
  } finally {
    await lock.release();
  }
}

/** Trains the selected runs of a locked sweep directory, then writes the summary. */
async function trainAll(
  sweep: Sweep,
  outDir: string,
  opts: RunSweepOptions,
  runs: ResolvedRun[],
  selected: Set<string>,
  states: Map<string, Awaited<ReturnType<typeof runDirState>>>,
): Promise<SweepReport> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const trainFn = opts.train ?? realTrain;
  const todo = runs.filter((r) => selected.has(r.name));

  const outcomes: RunOutcome[] = [];
  let i = 0;
  for (const run of runs) {
    if (!selected.has(run.name)) {
      outcomes.push({ name: run.name, status: "not selected" });
      continue;
    }
    i++;
    const dir = join(outDir, run.name);
    const tag = `[${i}/${todo.length}] ${run.name}`;
    try {
      const state = states.get(run.name)!;
      if (state === "finished") {
        log(`${tag}: finished earlier, not redone`);
        outcomes.push({ name: run.name, status: "skipped" });
        continue;
      }
      log(`${tag}: ${state === "partial" ? "resuming" : "training"} → ${dir}`);
      const t0 = performance.now();
      const { metrics } = await trainFn(run.cfg, {
        outDir: dir,
        resume: state === "partial",
        overwrite: false,
        progress: opts.progress,
        report: false,
      });
      const seconds = (performance.now() - t0) / 1000;
      log(
        `${tag}: ${seconds.toFixed(1)} s | L0 ${metrics.l0.toFixed(2)} | EV ${
          metrics.explained_variance.toFixed(4)
        }`,
      );
      outcomes.push({
        name: run.name,
        status: state === "partial" ? "resumed" : "trained",
        seconds,
      });
    } catch (err) {
      // Ctrl-C / SIGTERM stops the sweep (the run checkpointed itself; rerunning resumes it).
      if (err instanceof TrainingInterrupted) throw err;
      const msg = err instanceof Error ? err.message : String(err);
      const detail = err instanceof UserError || !(err instanceof Error) ? msg : err.stack ?? msg;
      log(`${tag}: failed: ${detail}`);
      outcomes.push({ name: run.name, status: "failed", error: msg.split("\n")[0] });
    }
  }
  const summary = await writeSummary(runs, outDir, sweep);
  return { ...summary, outcomes };
}

/**
 * Collects every run's metrics.json and writes ablation.md, ablation.csv, ablation.json,
 * frontier.svg and ablation.svg into `outDir` (each atomically).
 */
export async function writeSummary(
  runs: ResolvedRun[],
  outDir: string,
  sweep?: Sweep,
): Promise<Summary> {
  const rows = await collectRows(runs, outDir);
  const fronts = frontiers(runs, rows);
  const files: [string, string][] = [
    ["ablation.md", toMarkdown(rows)],
    ["ablation.csv", toCsv(rows)],
    [
      "ablation.json",
      JSON.stringify({ base: sweep?.base ?? null, rows, frontiers: fronts }, null, 2) + "\n",
    ],
    ["frontier.svg", await frontierSvg(fronts)],
    ["ablation.svg", await ablationSvg(rows)],
  ];
  await writingTo(outDir, "--out", () => Deno.mkdir(outDir, { recursive: true }));
  const paths = files.map(([name]) => join(outDir, name));
  // The table and the plots are replaced together: never files of two versions side by side.
  await writingTo(
    join(outDir, "ablation.md"),
    "--out",
    () => atomicWriteAll(files.map(([name, text]) => [join(outDir, name), text])),
  );
  return { rows, frontiers: fronts, files: paths };
}
