/**
 * sae: train sparse autoencoders on language-model activations with WebGPU (Deno).
 *
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, loadSae, train } from "./mod.ts";
 * const { metrics } = await train({ ...DEFAULT_CONFIG, steps: 200 }, {
 *   outDir: "runs/demo",
 *   resume: false,
 *   overwrite: true,
 *   progress: false,
 * });
 * const sae = await loadSae("runs/demo");
 * ```
 * @module
 */
export {
  type CoreConfig,
  DEFAULT_CONFIG,
  DEFAULT_SYNTHETIC,
  loadConfigFile,
  mergeConfig,
  type PartialConfig,
  type SyntheticConfig,
  type TrainConfig,
  validateConfig,
} from "./src/config.ts";
export { UserError } from "./src/errors.ts";
export { createGpu, getGpu, Gpu } from "./src/gpu/device.ts";
export type { ActivationSource } from "./src/data/source.ts";
export { type BatchTruth, SyntheticSource, type SyntheticTruth } from "./src/data/synthetic.ts";
export { ShuffleBuffer } from "./src/data/shuffle.ts";
export { train, type TrainOptions, type TrainResult } from "./src/sae/trainer.ts";
export { formatReport } from "./src/eval/final.ts";
export { encodeRows, type LoadedSae, loadSae } from "./src/sae/load.ts";
export type { SaeWeights } from "./src/sae/model.ts";
export { groundTruthRecovery, type Recovery } from "./src/eval/groundtruth.ts";
export { Rng } from "./src/rng.ts";
export * from "./src/lm/mod.ts";
