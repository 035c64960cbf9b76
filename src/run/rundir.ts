/**
 * A run directory (`runs/<name>/`): config.yaml (the full config), metrics.jsonl (one JSON line
 * per logged step), checkpoints/, and JSON results such as metrics.json.
 *
 * @example
 * ```ts
 * import { createRunDir, MetricsLog, planRunDir, writeConfig } from "./rundir.ts";
 * import { DEFAULT_CONFIG } from "../config.ts";
 * await createRunDir(await planRunDir("runs/x", { resume: false, overwrite: false }));
 * await writeConfig("runs/x", DEFAULT_CONFIG);
 * const log = await MetricsLog.open("runs/x", null);
 * await log.append({ step: 50, loss: 1.5 });
 * log.close();
 * ```
 */

import { basename, dirname, join, resolve } from "node:path";
import { configToYaml, loadConfigFile, type PartialConfig, type TrainConfig } from "../config.ts";
import { UserError } from "../errors.ts";
import { atomicWrite, swapDir, writeAllBytes, type Writer } from "./atomic.ts";
import { LOCK_FILE } from "./lock.ts";

/** The config file of a run directory. */
export const CONFIG_FILE = "config.yaml";
/** The metrics log of a run directory. */
const METRICS_FILE = "metrics.jsonl";
/** In a run made by `sae import`: the cfg.json it came from (its weights may be the only copy). */
export const IMPORTED_CFG_FILE = "saelens_cfg.json";

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/** Whether `dir` holds nothing but lock files (src/run/lock.ts). */
async function isEmptyDir(dir: string): Promise<boolean> {
  for await (const e of Deno.readDir(dir)) {
    if (e.name !== LOCK_FILE && !e.name.startsWith(`${LOCK_FILE}.`)) return false;
  }
  return true;
}

/**
 * Reads `dir/config.yaml` of an existing run (for --resume). Throws a UserError if `dir` is not a
 * run directory.
 */
export async function readRunConfig(dir: string): Promise<PartialConfig> {
  const info = await statOrNull(join(dir, CONFIG_FILE));
  if (info === null || !info.isFile) {
    throw new UserError(
      `cannot resume ${dir}: no ${CONFIG_FILE} there (not a run directory? start it without --resume)`,
    );
  }
  return await loadConfigFile(join(dir, CONFIG_FILE));
}

/** What {@link planRunDir} decided about a run's directory, before anything is written. */
export interface RunDirPlan {
  /** The directory the run writes into. */
  dir: string;
  /**
   * Where the finished run ends up: `dir`, or for a replacement (`--overwrite` of a run
   * directory), the run it replaces once it is complete ({@link swapDir}).
   */
  target: string;
  /** Whether the run continues the checkpoints in `dir`. */
  resume: boolean;
  /** Whether `dir` does not exist yet. */
  create: boolean;
}

/** The suffix of the directory a replacement trains in, beside the run it replaces. */
const REPLACEMENT_SUFFIX = ".new";
/** Inside a replacement's directory: the name of the run it replaces (a sibling). */
const REPLACES_FILE = ".replaces";

/**
 * Decides where a run writes, reading only. A fresh run needs a missing or empty directory; an
 * existing non-empty one is refused unless `resume` (it must hold config.yaml) or `overwrite`
 * (it must be a run directory, i.e. hold config.yaml). An overwrite never deletes the old run
 * first: the new one trains beside it in `DIR.new` and takes its place when it finishes, so an
 * overwrite that fails or is stopped leaves the old run as it was (`--resume DIR.new` continues
 * the replacement, which still replaces DIR when it finishes).
 */
export async function planRunDir(
  dir: string,
  { resume, overwrite }: { resume: boolean; overwrite: boolean },
): Promise<RunDirPlan> {
  if (resume && overwrite) {
    throw new UserError("--resume and --overwrite contradict each other; pass only one");
  }
  dir = dir.length > 1 ? dir.replace(/\/+$/, "") : dir;
  const info = await statOrNull(dir);
  if (info !== null && !info.isDirectory) {
    throw new UserError(`run directory ${dir} exists and is not a directory; choose another --out`);
  }
  if (resume) {
    if (info === null) throw new UserError(`cannot resume ${dir}: it does not exist`);
    await readRunConfig(dir);
    return { dir, target: (await replacedRun(dir)) ?? dir, resume: true, create: false };
  }
  if (info === null || (await isEmptyDir(dir))) {
    return { dir, target: dir, resume: false, create: info === null };
  }
  if (!overwrite) {
    throw new UserError(
      `run directory ${dir} already exists and is not empty; ` +
        `pass --resume to continue it or --overwrite to replace it`,
    );
  }
  if ((await statOrNull(join(dir, CONFIG_FILE))) === null) {
    // A guard against `--out . --overwrite` and the like: only run directories are replaced.
    throw new UserError(
      `refusing to --overwrite ${dir}: it has no ${CONFIG_FILE}, so it is not a run directory`,
    );
  }
  const staging = `${dir}${REPLACEMENT_SUFFIX}`;
  if ((await statOrNull(staging)) !== null) {
    throw new UserError(
      `cannot --overwrite ${dir}: ${staging} exists (an unfinished replacement of it?); continue ` +
        `it with --resume ${staging}, or delete it`,
    );
  }
  return { dir: staging, target: dir, resume: false, create: true };
}

/** The run a replacement's directory replaces (its sibling), or null for an ordinary run. */
async function replacedRun(dir: string): Promise<string | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(dir, REPLACES_FILE));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
  let name: unknown;
  try {
    name = JSON.parse(text).replaces;
  } catch {
    name = null;
  }
  if (typeof name !== "string" || name === "" || /[/\\]/.test(name)) {
    throw new UserError(`${join(dir, REPLACES_FILE)} is damaged: delete it to resume ${dir} alone`);
  }
  const target = join(dirname(dir), name);
  return resolve(target) === resolve(dir) ? null : target;
}

/**
 * Makes the planned directory (already validated: see {@link planRunDir}): creates it if needed
 * and, for a replacement, records the run it replaces. config.yaml is the caller's to write.
 */
export async function createRunDir(plan: RunDirPlan): Promise<void> {
  await Deno.mkdir(plan.dir, { recursive: true });
  if (plan.target !== plan.dir && !plan.resume) {
    await atomicWrite(
      join(plan.dir, REPLACES_FILE),
      JSON.stringify({ replaces: basename(plan.target) }) + "\n",
    );
  }
}

/**
 * Puts a finished replacement in the place of the run it replaces ({@link swapDir}) and drops its
 * record of that run.
 */
export async function replaceRun(plan: RunDirPlan): Promise<void> {
  await swapDir(plan.dir, plan.target);
  await Deno.remove(join(plan.target, REPLACES_FILE)).catch(() => {});
}

/** Writes `dir/config.yaml` atomically. */
export async function writeConfig(dir: string, cfg: TrainConfig): Promise<void> {
  await atomicWrite(join(dir, CONFIG_FILE), configToYaml(cfg));
}

/** Writes `dir/name` as pretty JSON atomically (`writer`: see {@link atomicWrite}). */
export async function writeJson(
  dir: string,
  name: string,
  obj: unknown,
  writer?: Writer,
): Promise<void> {
  await atomicWrite(join(dir, name), JSON.stringify(obj, null, 2) + "\n", { writer });
}

/**
 * Keeps the lines of a metrics log up to and including `step`: everything from the first line of
 * a later step on is dropped, unless a line of an earlier step follows it (then that line alone
 * is out of order, i.e. damaged, and dropped). A line that is not JSON is dropped and the lines
 * around it kept; each dropped damaged line is reported to `dropped` with its number (not the
 * last line, which a write cut short leaves).
 */
export function truncateMetrics(
  text: string,
  step: number,
  dropped: (lineNo: number, line: string) => void = () => {},
): string {
  const lines = text.split("\n");
  const steps = lines.map((line): number | null | undefined => {
    if (line.trim() === "") return undefined;
    try {
      const s = (JSON.parse(line) as { step?: unknown } | null)?.step;
      return typeof s === "number" ? s : null;
    } catch {
      return undefined;
    }
  });
  // The last line that belongs before the checkpoint: later ones are after it.
  const lastKept = steps.findLastIndex((s) => typeof s === "number" && s <= step);
  const lastLine = lines.findLastIndex((l) => l.trim() !== "");
  const kept: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const s = steps[i];
    if (lines[i].trim() === "") continue;
    if (s === undefined) {
      if (i !== lastLine) dropped(i + 1, lines[i]);
      continue;
    }
    if (typeof s === "number" && s > step) {
      if (i > lastKept) break;
      dropped(i + 1, lines[i]);
      continue;
    }
    kept.push(lines[i]);
  }
  return kept.map((l) => l + "\n").join("");
}

/** metrics.jsonl: one JSON object per line, appended as training goes. */
export class MetricsLog {
  private constructor(
    private file: Deno.FsFile,
    readonly path: string,
    private writer: Writer = writeAllBytes,
  ) {}

  /**
   * Opens `dir/metrics.jsonl`. `resumeStep` null starts an empty log; a step keeps the lines up to
   * that step (the checkpoint the run resumes from), so the finished log matches an
   * uninterrupted run.
   */
  static async open(
    dir: string,
    resumeStep: number | null,
    writer?: Writer,
    warn: (line: string) => void = (line) => console.error(line),
  ): Promise<MetricsLog> {
    const path = join(dir, METRICS_FILE);
    if (resumeStep === null) {
      const file = await Deno.open(path, { write: true, create: true, truncate: true });
      return new MetricsLog(file, path, writer);
    }
    let text = "";
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    const kept = truncateMetrics(text, resumeStep, (n, line) =>
      warn(
        `warning: ${path} line ${n} is damaged (${
          JSON.stringify(line.length > 40 ? line.slice(0, 37) + "..." : line)
        }: not JSON, or a step out of order); dropped, the lines around it are kept`,
      ));
    await atomicWrite(path, kept, { writer });
    const file = await Deno.open(path, { append: true });
    return new MetricsLog(file, path, writer);
  }

  /** Appends one record as a line. */
  async append(record: Record<string, unknown>): Promise<void> {
    await this.writer(this.file, new TextEncoder().encode(JSON.stringify(record) + "\n"));
  }

  /** Closes the file. */
  close(): void {
    this.file.close();
  }
}
