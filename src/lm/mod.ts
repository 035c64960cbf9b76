/**
 * Language models: load a model (Hugging Face directory, llama2.c checkpoint, or Hugging Face repo
 * id), tokenize, run it in WGSL with hooks read into GPU buffers, and generate text. The plain
 * TypeScript reference forward is what the WGSL forward is tested against. `LiveSource` feeds an
 * SAE from a model live (`sae train --model`).
 *
 * @example
 * ```ts
 * import { getGpu } from "../gpu/device.ts";
 * import { GpuLm, LmForward, loadModel } from "./mod.ts";
 * const m = await loadModel("../shared/lm/stories260K/stories260K.bin");
 * const lm = GpuLm.upload(await getGpu(), m);
 * const f = await LmForward.build(lm, {
 *   batch: 8,
 *   seq: 128,
 *   hooks: ["blocks.2.hook_resid_pre"],
 *   stopAtHook: true,
 * });
 * f.run(tokens); // u32 [8·128], each context starting with BOS
 * f.hooks["blocks.2.hook_resid_pre"]; // GPUBuffer [8·128, 64] f32
 * ```
 * @module
 */
export {
  type Activation,
  ARCHITECTURES,
  type Family,
  type LmConfig,
  type NormKind,
  parseHfConfig,
  type RopeConfig,
} from "./config.ts";
export {
  HOOK_KINDS,
  type HookKind,
  type HookPoint,
  hookPoints,
  hookSummary,
  parseHook,
  stopPoint,
} from "./hooks.ts";
export {
  defaultHub,
  type HubClient,
  isRepoId,
  type LmModel,
  loadModel,
  type LoadOptions,
  type ModelFile,
  type ModelFingerprint,
  modelFingerprint,
  modelName,
  type ModelSource,
  resolveModel,
} from "./load.ts";
export { decodeLlama2c } from "./llama2c.ts";
export {
  decodeLlama2cTokenizer,
  Llama2cTokenizer,
  loadLlama2cTokenizer,
} from "./llama2c_tokenizer.ts";
export {
  checkTokenizerFits,
  openTokenizer,
  type Tokenizer,
  TOKENIZER_LOADERS,
} from "./tokenizer.ts";
export {
  type LayerWeights,
  type LmWeights,
  type NormWeights,
  type WeightStats,
} from "./weights.ts";
export {
  type ForwardResult,
  referenceForward,
  referenceGreedy,
  type ReferenceOptions,
} from "./reference.ts";
export {
  type ForwardSpec,
  GpuLm,
  type KvCaches,
  LmForward,
  type Splice,
  type SplicePoint,
} from "./forward.ts";
export { generate, type Generated, type GenerateOptions } from "./generate.ts";
export { HookRows, type HookRowsSpec } from "./hook_rows.ts";
export {
  datasetPath,
  LIVE_DATA,
  type LiveSettings,
  liveSettings,
  LiveSource,
  modelWidth,
  textFiles,
} from "./live.ts";
