/** A training run small enough for tests on the CPU adapter (about a second), and quiet options. */
import {
  DEFAULT_CONFIG,
  mergeConfig,
  type PartialConfig,
  type TrainConfig,
} from "../../src/config.ts";

/** d_in 16, d_sae 32, batch 32, 50 steps on a small synthetic problem; `over` on top. */
export function tinyRun(over: PartialConfig = {}): TrainConfig {
  return mergeConfig(DEFAULT_CONFIG, {
    d_in: 16,
    d_sae: 32,
    batch: 32,
    steps: 50,
    log_every: 10,
    checkpoint_every: 0,
    init_rows: 64,
    synthetic: { n_features: 48, n_parents: 4, children_per_parent: 2, n_groups: 2 },
  }, over);
}

/** train() options for a test: a fresh directory, no bar, no report, no signal listeners. */
export const QUIET = {
  resume: false,
  overwrite: false,
  progress: false,
  report: false,
  signals: false,
} as const;
