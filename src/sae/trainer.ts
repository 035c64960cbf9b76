import type { TrainConfig } from "../config.ts";

/** How a training run is driven (not part of the run's config). */
export interface TrainOptions {
  /** Run directory (runs/<name>). */
  outDir: string;
  /** Continue from the last checkpoint in outDir. */
  resume: boolean;
  /** Replace an existing run directory. */
  overwrite: boolean;
  /** Show a progress bar (off when stdout is not a terminal or in tests). */
  progress: boolean;
}

/** What a finished run reports (also saved as metrics.json). */
export interface TrainResult {
  metrics: Record<string, number>;
  outDir: string;
}

/** Trains an SAE as configured. (Being written: the GPU step lands in the next commits.) */
export function train(_cfg: TrainConfig, _opts: TrainOptions): Promise<TrainResult> {
  return Promise.reject(new Error("train(): not implemented yet"));
}
