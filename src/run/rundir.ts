/**
 * A run directory (`runs/<name>/`): config.yaml (the full config), metrics.jsonl (one JSON line
 * per logged step), checkpoints/, and JSON results such as metrics.json.
 *
 * @example
 * ```ts
 * import { MetricsLog, prepareRunDir, writeConfig } from "./rundir.ts";
 * import { DEFAULT_CONFIG } from "../config.ts";
 * await prepareRunDir("runs/x", { resume: false, overwrite: false });
 * await writeConfig("runs/x", DEFAULT_CONFIG);
 * const log = await MetricsLog.open("runs/x", null);
 * await log.append({ step: 50, loss: 1.5 });
 * log.close();
 * ```
 */

import { join } from "node:path";
import { configToYaml, loadConfigFile, type PartialConfig, type TrainConfig } from "../config.ts";
import { UserError } from "../errors.ts";
import { atomicWrite, writeAllBytes, type Writer } from "./atomic.ts";

/** The config file of a run directory. */
export const CONFIG_FILE = "config.yaml";
/** The metrics log of a run directory. */
const METRICS_FILE = "metrics.jsonl";

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

async function isEmptyDir(dir: string): Promise<boolean> {
  for await (const _ of Deno.readDir(dir)) return false;
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

/**
 * Makes `dir` ready for a run. A fresh run needs a missing or empty directory; an existing
 * non-empty one is refused unless `resume` (it must hold config.yaml) or `overwrite` (it must be
 * a run directory, i.e. hold config.yaml, and is then emptied).
 */
export async function prepareRunDir(
  dir: string,
  { resume, overwrite }: { resume: boolean; overwrite: boolean },
): Promise<void> {
  if (resume && overwrite) {
    throw new UserError("--resume and --overwrite contradict each other; pass only one");
  }
  const info = await statOrNull(dir);
  if (info !== null && !info.isDirectory) {
    throw new UserError(`run directory ${dir} exists and is not a directory; choose another --out`);
  }
  if (resume) {
    if (info === null) throw new UserError(`cannot resume ${dir}: it does not exist`);
    await readRunConfig(dir);
    return;
  }
  if (info !== null && !(await isEmptyDir(dir))) {
    if (!overwrite) {
      throw new UserError(
        `run directory ${dir} already exists and is not empty; ` +
          `pass --resume to continue it or --overwrite to replace it`,
      );
    }
    const cfg = await statOrNull(join(dir, CONFIG_FILE));
    if (cfg === null) {
      // A guard against `--out . --overwrite` and the like: only run directories are deleted.
      throw new UserError(
        `refusing to --overwrite ${dir}: it has no ${CONFIG_FILE}, so it is not a run directory`,
      );
    }
    await Deno.remove(dir, { recursive: true });
  }
  await Deno.mkdir(dir, { recursive: true });
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
 * Keeps the lines of a metrics log up to and including `step`: everything from the first line
 * with a larger step (or the first line that does not parse: a write cut short) is dropped.
 */
export function truncateMetrics(text: string, step: number): string {
  const kept: string[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      break;
    }
    const s = (rec as { step?: unknown } | null)?.step;
    if (typeof s === "number" && s > step) break;
    kept.push(line);
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
    await atomicWrite(path, truncateMetrics(text, resumeStep), { writer });
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
