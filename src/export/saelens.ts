/**
 * SAELens directories: `sae export --format saelens` and `sae import`.
 *
 * A SAELens directory holds `cfg.json` and `sae_weights.safetensors` with exactly the tensors the
 * architecture's module has (SAELens loads the state dict strictly):
 *
 * | tensor      | shape          | ours                                            |
 * | ----------- | -------------- | ----------------------------------------------- |
 * | `W_enc`     | [d_in, d_sae]  | transpose of our W_enc [d_sae, d_in]            |
 * | `W_dec`     | [d_sae, d_in]  | as ours (rows unit norm)                        |
 * | `b_enc`     | [d_sae]        | as ours                                         |
 * | `b_dec`     | [d_in]         | as ours                                         |
 * | `threshold` | [d_sae]        | `jumprelu` only: the encoder's final thresholds |
 *
 * Architecture, by the encoder the run's variant declares (src/sae/variant.ts):
 *
 * | variant                                    | SAELens architecture | encoder                        |
 * | ------------------------------------------ | -------------------- | ------------------------------ |
 * | baseline, paper without adaptive_threshold | `standard`           | ReLU                           |
 * | paper with adaptive_threshold              | `jumprelu`           | τ (the last checkpoint's)      |
 * | jumprelu                                   | `jumprelu`           | θ = exp(log θ)                 |
 * | batchtopk, matryoshka                      | `jumprelu`           | θ in every slot (as SAELens saves BatchTopK and Matryoshka BatchTopK) |
 * | topk                                       | `topk`, `k` in cfg.json | the row top-k               |
 *
 * f = pre·1[pre > τ] with τ ≥ 0 is exactly SAELens' JumpReLU, ReLU(pre)·1[pre > threshold];
 * SAELens' `matryoshka_batchtopk` and `batchtopk` are training architectures only (their saved
 * inference SAE says `jumprelu`), so cfg.json's `sae_webgpu.variant` records which it was and
 * `sae import` restores it. The paper's other mechanisms, Matryoshka's nested losses and AuxK act
 * on training only.
 *
 * Input scale (normalize_activations: expected_average_only_in): SAELens' loaders do not apply a
 * stored factor at inference; a trained SAELens SAE has it folded into the weights
 * (`fold_activation_norm_scaling_factor`) and says normalize_activations "none". The export does
 * the same, then folds the decoder norms back to unit (`fold_W_dec_norm`); with unit decoder rows
 * both folds together reduce to b_enc/s, b_dec/s, threshold/s, W_enc and W_dec unchanged: the
 * exported SAE takes raw activations, reconstructs them in raw units, and its feature activations
 * are ours divided by s. The factor and the original setting are kept under cfg.json's
 * `sae_webgpu` key (SAELens ignores unknown top-level keys) and `sae import` undoes the fold.
 *
 * Decoder rows: exported unit norm. Ours are unit norm after every step; rows further than 1e-6
 * from norm 1 (an imported SAE's) are rescaled with their norm folded into W_enc, b_enc and
 * threshold, as SAELens' fold_W_dec_norm does, so reconstructions are unchanged.
 *
 * @example
 * ```ts
 * import { exportSaelens, importSaelens } from "./saelens.ts";
 * await exportSaelens("runs/demo", "exports/demo", { overwrite: false });
 * await importSaelens("exports/demo", "runs/demo-again", { overwrite: false });
 * ```
 */

import { basename, dirname, join } from "node:path";
import {
  configToYaml,
  DEFAULT_CONFIG,
  isPlainObject,
  mergeConfig,
  type PartialConfig,
  type TrainConfig,
} from "../config.ts";
import { UserError } from "../errors.ts";
import { atomicWrite, isTempNameOf, StagingDir, type Writer } from "../run/atomic.ts";
import { DirLock } from "../run/lock.ts";
import { writingTo } from "../run/output.ts";
import { CONFIG_FILE, IMPORTED_CFG_FILE, planRunDir } from "../run/rundir.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  f32Tensor,
  type Tensor,
  tensorToF32,
} from "../run/safetensors.ts";
import { type LoadedSae, loadSae, SAE_FILE } from "../sae/load.ts";
import type { SaeWeights } from "../sae/model.ts";
import { type VariantName, VARIANTS } from "../sae/variants.ts";
import { normalizesInputs } from "../config_core.ts";

/** File names of a SAELens directory. */
const SAELENS_CFG = "cfg.json";
const SAELENS_WEIGHTS = "sae_weights.safetensors";
/** The SAELens release whose on-disk format (cfg.json with `metadata`) this follows. */
const SAELENS_FORMAT_VERSION = "6.12.1";
/** A decoder row whose norm is further than this from 1 is renormalised on export. */
const UNIT_NORM_TOL = 1e-6;

/** Where the SAE was hooked: SAELens' metadata (from the run's config keys of the same names). */
export interface ModelInfo {
  model_name: string;
  hook_name: string;
  hook_layer: number;
  context_size: number;
  dataset_path: string;
}

/** What the export writes under cfg.json's `sae_webgpu` key. */
interface SaeWebgpuInfo {
  /** Our input scale s (1 unless normalize_activations was set); folded into the weights. */
  activation_norm_scaling_factor: number;
  /** The run's normalize_activations, "auto" resolved ("none" or "expected_average_only_in"). */
  normalize_activations: string;
  /** Our variant and whether τ became the JumpReLU threshold. */
  variant: string;
  adaptive_threshold: boolean;
  /** The row top-k's k (variant topk), as cfg.json's `k`. */
  k?: number;
  /** Decoder rows were renormalised (their norms folded into the encoder). */
  decoder_norm_folded: boolean;
  /** The run directory exported. */
  run: string;
}

/** An SAE in SAELens' layout, in memory. */
export interface SaelensSae {
  cfg: Record<string, unknown>;
  tensors: Record<string, Tensor>;
}

/** An SAE read from a SAELens directory, in our layout. */
export interface ImportedSae {
  d_in: number;
  d_sae: number;
  architecture: "standard" | "jumprelu" | "topk";
  apply_b_dec_to_input: boolean;
  weights: SaeWeights;
  threshold: Float32Array | null;
  /** The row top-k's k (architecture topk), else null. */
  k: number | null;
  /** Input scale (1 unless cfg.json's sae_webgpu key says our export folded one). */
  scale: number;
  cfg: Record<string, unknown>;
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

function rowNorms(w: Float32Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c] ** 2;
    out[r] = Math.sqrt(s);
  }
  return out;
}

/**
 * Default model info for a run: the keys its config records (model_name, hook_name, context_size,
 * dataset_path: set by `sae import` and by training on a language model), else the cfg.json an
 * older import kept beside it, else placeholders.
 */
async function defaultModelInfo(runDir: string, cfg: TrainConfig): Promise<ModelInfo> {
  const info: ModelInfo = {
    model_name: cfg.data === "synthetic" ? "synthetic" : "unknown",
    hook_name: "blocks.0.hook_resid_post",
    hook_layer: 0,
    context_size: cfg.context_size,
    dataset_path: cfg.data,
  };
  try {
    const prev = JSON.parse(await Deno.readTextFile(join(runDir, IMPORTED_CFG_FILE)));
    const meta = typeof prev.metadata === "object" && prev.metadata ? prev.metadata : {};
    for (const k of Object.keys(info) as (keyof ModelInfo)[]) {
      const v = meta[k] ?? prev[k];
      if (typeof v === typeof info[k]) (info as unknown as Record<string, unknown>)[k] = v;
    }
  } catch {
    // Not an imported run: placeholders.
  }
  if (cfg.model_name) info.model_name = cfg.model_name;
  if (cfg.hook_name) {
    info.hook_name = cfg.hook_name;
    const layer = /^blocks\.(\d+)\./.exec(cfg.hook_name);
    if (layer) info.hook_layer = Number(layer[1]);
  }
  if (cfg.dataset_path) info.dataset_path = cfg.dataset_path;
  return info;
}

/**
 * Our SAE in SAELens' layout (pure; see the module doc for the folds).
 */
function toSaelens(sae: LoadedSae, model: ModelInfo, run = ""): SaelensSae {
  const { d_in: d, d_sae: m } = sae.cfg;
  const w = sae.weights;
  const threshold = sae.threshold;
  const s = sae.scale;
  const norms = rowNorms(w.wDec, m, d);
  const fold = norms.some((n) => n > 0 && Math.abs(n - 1) > UNIT_NORM_TOL);
  let wEnc = w.wEnc, wDec = w.wDec, bEnc = w.bEnc, bDec = w.bDec, th = threshold;
  if (fold) {
    wEnc = w.wEnc.slice();
    wDec = w.wDec.slice();
    bEnc = w.bEnc.slice();
    th = threshold?.slice() ?? null;
    for (let i = 0; i < m; i++) {
      const n = norms[i];
      if (!(n > 0)) continue;
      for (let k = 0; k < d; k++) {
        wDec[i * d + k] = w.wDec[i * d + k] / n;
        wEnc[i * d + k] = w.wEnc[i * d + k] * n;
      }
      bEnc[i] = w.bEnc[i] * n;
      if (th && threshold) th[i] = threshold[i] * n;
    }
  }
  if (s !== 1) {
    bEnc = bEnc.map((v) => v / s);
    bDec = bDec.map((v) => v / s);
    th = th?.map((v) => v / s) ?? null;
  }
  const k = sae.k ?? null;
  const architecture = k !== null ? "topk" : th ? "jumprelu" : "standard";
  const tensors: Record<string, Tensor> = {
    W_enc: f32Tensor([d, m], transpose(wEnc, m, d)),
    W_dec: f32Tensor([m, d], wDec),
    b_enc: f32Tensor([m], bEnc),
    b_dec: f32Tensor([d], bDec),
  };
  if (th) tensors.threshold = f32Tensor([m], th);
  const meta = {
    model_name: model.model_name,
    hook_name: model.hook_name,
    hook_layer: model.hook_layer,
    hook_head_index: null,
    context_size: model.context_size,
    dataset_path: model.dataset_path,
    prepend_bos: sae.cfg.prepend_bos,
    model_from_pretrained_kwargs: {},
    seqpos_slice: [null],
    neuronpedia_id: null,
    sae_lens_version: SAELENS_FORMAT_VERSION,
    sae_lens_training_version: null,
  };
  const info: SaeWebgpuInfo = {
    activation_norm_scaling_factor: s,
    normalize_activations: normalizesInputs(sae.cfg) ? "expected_average_only_in" : "none",
    variant: sae.cfg.variant,
    adaptive_threshold: th !== null,
    ...(k !== null ? { k } : {}),
    decoder_norm_folded: fold,
    run,
  };
  const cfg: Record<string, unknown> = {
    architecture,
    d_in: d,
    d_sae: m,
    ...(k !== null ? { k } : {}),
    dtype: "float32",
    device: "cpu",
    apply_b_dec_to_input: sae.cfg.apply_b_dec_to_input,
    normalize_activations: "none",
    reshape_activations: "none",
    // Pre-6.0 readers (and SAEBench's helpers) take these from the top level.
    ...meta,
    activation_fn_str: "relu",
    activation_fn_kwargs: {},
    finetuning_scaling_factor: false,
    dataset_trust_remote_code: true,
    // SAELens 6 reads the model and hook from here.
    metadata: meta,
    sae_webgpu: info,
  };
  return { cfg, tensors };
}

/**
 * Checks that `dir` may receive an export, reading only: missing, empty (or holding only the
 * temporary files of an interrupted older export), or with `overwrite` a SAELens directory.
 */
async function checkExportDir(dir: string, overwrite: boolean): Promise<void> {
  let entries: string[] = [];
  try {
    const info = await Deno.stat(dir);
    if (!info.isDirectory) throw new UserError(`--out ${dir} exists and is not a directory`);
    entries = [...Deno.readDirSync(dir)].map((e) => e.name).filter((name) =>
      !isTempNameOf(name, SAELENS_CFG) && !isTempNameOf(name, SAELENS_WEIGHTS)
    );
  } catch (err) {
    if (err instanceof Deno.errors.NotADirectory) {
      throw new UserError(`cannot write ${dir}: ${err.message}; choose another --out`);
    }
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (entries.length > 0) {
    if (!overwrite) {
      throw new UserError(`--out ${dir} exists and is not empty; pass --overwrite to replace it`);
    }
    if (!entries.includes(SAELENS_CFG)) {
      throw new UserError(
        `refusing to --overwrite ${dir}: it has no ${SAELENS_CFG}, so it is not a SAELens directory`,
      );
    }
  }
}

/**
 * Writes `files` (name → bytes) into a directory beside `target` and swaps it in when complete
 * (src/run/atomic.ts: StagingDir), so `target` is the old directory or the new one, never a mix or
 * nothing; `lock` (a run directory's) is held while it is swapped.
 */
async function writeDirBeside(
  target: string,
  files: [string, Uint8Array | string][],
  lock: boolean,
  writer?: Writer,
): Promise<void> {
  const parent = dirname(target.replace(/\/+$/, "") || ".");
  await writingTo(target, "--out", () => Deno.mkdir(parent, { recursive: true }));
  const held = lock && (await Deno.stat(target).catch(() => null))?.isDirectory
    ? await writingTo(target, "--out", () => DirLock.acquire(target, "sae import"))
    : null;
  try {
    const staging = await writingTo(target, "--out", () => StagingDir.create(target));
    try {
      for (const [name, data] of files) {
        const path = join(staging.path, name);
        await writingTo(join(target, name), "--out", () => atomicWrite(path, data, { writer }));
      }
    } catch (err) {
      await staging.abort();
      throw err;
    }
    await writingTo(target, "--out", () => staging.commit());
  } finally {
    await held?.release();
  }
}

/** Options of {@link exportSaelens}. */
export interface ExportOptions {
  overwrite: boolean;
  /** Byte writer of the files (tests inject failures; see src/run/atomic.ts). */
  writer?: Writer;
  /** Overrides of the model info written to cfg.json. */
  model?: Partial<ModelInfo>;
}

/**
 * Writes `runDir`'s SAE as a SAELens directory `outDir` (beside it first, then swapped in: an
 * existing export is replaced only by a complete one); returns what was written.
 */
export async function exportSaelens(
  runDir: string,
  outDir: string,
  opts: ExportOptions,
): Promise<SaelensSae> {
  const sae = await loadSae(runDir);
  const model = { ...(await defaultModelInfo(runDir, sae.cfg)), ...opts.model };
  const out = toSaelens(sae, model, runDir);
  await checkExportDir(outDir, opts.overwrite);
  await writeDirBeside(
    outDir,
    [
      [SAELENS_WEIGHTS, encodeSafetensors(out.tensors)],
      [SAELENS_CFG, JSON.stringify(out.cfg, null, 2) + "\n"],
    ],
    false,
    opts.writer,
  );
  return out;
}

function positiveInt(cfg: Record<string, unknown>, key: string, file: string): number {
  const v = cfg[key];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
    throw new UserError(`${file}: '${key}' must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * Reads a SAELens directory (standard, jumprelu or topk, any float dtype) into our layout. `scale`
 * overrides the input scale (for an `expected_average_only_in` SAE whose factor was not folded).
 * Throws one-line UserErrors for missing or malformed files and shape mismatches.
 */
async function readSaelens(dir: string, scale?: number): Promise<ImportedSae> {
  const cfgPath = join(dir, SAELENS_CFG);
  const wPath = join(dir, SAELENS_WEIGHTS);
  const info = await Deno.stat(dir).catch(() => null);
  if (info === null || !info.isDirectory) {
    throw new UserError(
      `${dir} ${info ? "is not a directory" : "does not exist"}: pass a SAELens directory ` +
        `(${SAELENS_CFG} + ${SAELENS_WEIGHTS})`,
    );
  }
  let text: string;
  try {
    text = await Deno.readTextFile(cfgPath);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new UserError(`${cfgPath} not found: is ${dir} a SAELens directory?`);
    }
    throw err;
  }
  let cfg: unknown;
  try {
    cfg = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${cfgPath} is not valid JSON (${(err as Error).message.split("\n")[0]})`);
  }
  if (!isPlainObject(cfg)) throw new UserError(`${cfgPath} is not a JSON object`);
  const d = positiveInt(cfg, "d_in", cfgPath);
  const m = positiveInt(cfg, "d_sae", cfgPath);
  const arch = cfg.architecture ?? "standard";
  if (arch !== "standard" && arch !== "jumprelu" && arch !== "topk") {
    throw new UserError(
      `${cfgPath}: architecture ${JSON.stringify(arch)} is not supported (standard, jumprelu or ` +
        `topk)`,
    );
  }
  const k = arch === "topk" ? positiveInt(cfg, "k", cfgPath) : null;
  if (k !== null && k > m) {
    throw new UserError(`${cfgPath}: 'k' ${k} is larger than d_sae ${m}`);
  }
  const act = cfg.activation_fn ?? cfg.activation_fn_str ?? "relu";
  if (act !== "relu") {
    throw new UserError(`${cfgPath}: activation ${JSON.stringify(act)} is not supported (relu)`);
  }
  const applyBDec = cfg.apply_b_dec_to_input ?? true;
  if (typeof applyBDec !== "boolean") {
    throw new UserError(`${cfgPath}: 'apply_b_dec_to_input' must be true or false`);
  }
  let norm = cfg.normalize_activations ?? "none";
  if (typeof norm === "boolean") norm = norm ? "expected_average_only_in" : "none";
  const ours = isPlainObject(cfg.sae_webgpu) ? cfg.sae_webgpu : null;
  const folded = ours !== null && typeof ours.activation_norm_scaling_factor === "number"
    ? ours.activation_norm_scaling_factor
    : 1;
  if (norm === "expected_average_only_in") {
    if (scale === undefined) {
      throw new UserError(
        `${cfgPath}: normalize_activations 'expected_average_only_in' needs the dataset's norm ` +
          `scaling factor, which the directory does not hold; pass --scale X`,
      );
    }
  } else if (norm !== "none") {
    throw new UserError(
      `${cfgPath}: normalize_activations ${JSON.stringify(norm)} is not supported ` +
        `(none or expected_average_only_in)`,
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(wPath);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new UserError(`${wPath} not found: is ${dir} a SAELens directory?`);
    }
    throw err;
  }
  let tensors: Record<string, Tensor>;
  try {
    tensors = decodeSafetensors(bytes).tensors;
  } catch (err) {
    if (err instanceof UserError) throw new UserError(`${wPath}: ${err.message}`);
    throw err;
  }
  const want: Record<string, number[]> = { W_enc: [d, m], W_dec: [m, d], b_enc: [m], b_dec: [d] };
  if (arch === "jumprelu") want.threshold = [m];
  const got: Record<string, Float32Array> = {};
  for (const [name, shape] of Object.entries(want)) {
    const t = tensors[name];
    if (!t) {
      throw new UserError(
        `${wPath}: tensor '${name}' is missing (has: ${Object.keys(tensors).join(", ") || "none"})`,
      );
    }
    if (t.shape.join() !== shape.join()) {
      const hint = name === "W_enc" && t.shape.join() === [m, d].join()
        ? " (SAELens stores W_enc as [d_in, d_sae]: transposed?)"
        : "";
      throw new UserError(
        `${wPath}: tensor '${name}' has shape [${t.shape}] but cfg.json's d_in ${d}, d_sae ${m} ` +
          `need [${shape}]${hint}`,
      );
    }
    if (t.dtype === "I32" || t.dtype === "U32") {
      throw new UserError(`${wPath}: tensor '${name}' is ${t.dtype}, not a float tensor`);
    }
    got[name] = tensorToF32(t);
    const bad = got[name].findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      const where = shape.length === 2
        ? ` (row ${Math.floor(bad / shape[1])}, column ${bad % shape[1]})`
        : "";
      throw new UserError(
        `${wPath}: tensor '${name}' holds ${got[name][bad]} at index ${bad}${where}: the SAE is ` +
          `damaged or diverged; refusing to import it`,
      );
    }
  }
  const extra = Object.keys(tensors).filter((n) => !(n in want));
  if (extra.length > 0) {
    throw new UserError(
      `${wPath}: unexpected tensor(s) ${extra.join(", ")} for architecture ${arch} ` +
        `(a fine-tuning scaling factor or another architecture is not supported)`,
    );
  }
  const s = scale ?? folded;
  let bEnc = got.b_enc, bDec = got.b_dec, threshold = got.threshold ?? null;
  if (scale === undefined && folded !== 1) {
    // Undo our own export's fold of the input scale (module doc).
    bEnc = bEnc.map((v) => v * s);
    bDec = bDec.map((v) => v * s);
    threshold = threshold?.map((v) => v * s) ?? null;
  }
  // With --scale (an unfolded expected_average_only_in SAE) the weights take scaled inputs as is.
  return {
    d_in: d,
    d_sae: m,
    architecture: arch,
    apply_b_dec_to_input: applyBDec,
    weights: { wEnc: transpose(got.W_enc, d, m), bEnc, wDec: got.W_dec, bDec },
    threshold,
    k,
    scale: s,
    cfg,
  };
}

/**
 * The model, hook and text a SAELens cfg.json records (SAELens 6 under `metadata`, older ones at
 * the top level), as our config keys of the same names; values of the wrong type are left out.
 */
function recordedModel(cfg: Record<string, unknown>): Partial<TrainConfig> {
  const meta = isPlainObject(cfg.metadata) ? cfg.metadata : {};
  const get = (k: string) => meta[k] ?? cfg[k];
  const out: Partial<TrainConfig> = {};
  for (const k of ["model_name", "hook_name", "dataset_path"] as const) {
    const v = get(k);
    if (typeof v === "string") out[k] = v;
  }
  const ctx = get("context_size");
  if (typeof ctx === "number" && Number.isSafeInteger(ctx) && ctx >= 2) out.context_size = ctx;
  const bos = get("prepend_bos");
  if (typeof bos === "boolean") out.prepend_bos = bos;
  return out;
}

/** Options of {@link importSaelens}. */
export interface ImportOptions {
  overwrite: boolean;
  /** Byte writer of the files (tests inject failures; see src/run/atomic.ts). */
  writer?: Writer;
  /** Input scale of an unfolded expected_average_only_in SAE. */
  scale?: number;
}

/**
 * The variant an imported SAE's run config names: the one our export recorded under cfg.json's
 * `sae_webgpu` key (for the paper variant with its adaptive_threshold), else the SAELens
 * architecture's (standard: baseline, jumprelu: jumprelu, topk: topk).
 */
function importedVariant(sae: ImportedSae): PartialConfig {
  const ours = isPlainObject(sae.cfg.sae_webgpu) ? sae.cfg.sae_webgpu : {};
  const known = VARIANTS.map((v) => v.name) as string[];
  const recorded = typeof ours.variant === "string" && known.includes(ours.variant)
    ? ours.variant as VariantName
    : null;
  const byArch = { standard: "baseline", jumprelu: "jumprelu", topk: "topk" } as const;
  const variant = recorded ?? byArch[sae.architecture];
  return {
    variant,
    ...(variant === "paper" ? { adaptive_threshold: sae.architecture === "jumprelu" } : {}),
    ...(sae.k !== null ? { k: sae.k } : {}),
  };
}

/**
 * Converts a SAELens directory into a run directory (config.yaml, sae.safetensors, and the
 * original cfg.json as saelens_cfg.json) that {@link loadSae} reads, written beside the target
 * and swapped in when complete (an `overwrite` never empties the old run first). A JumpReLU
 * threshold is kept as the `threshold` tensor of sae.safetensors ({@link loadSae} reads it back);
 * a TopK SAE's k is the config's `k` under variant topk.
 */
export async function importSaelens(
  dir: string,
  runDir: string,
  opts: ImportOptions,
): Promise<{ sae: ImportedSae; cfg: TrainConfig }> {
  const sae = await readSaelens(dir, opts.scale);
  const cfg = mergeConfig(DEFAULT_CONFIG, {
    ...importedVariant(sae),
    d_in: sae.d_in,
    d_sae: sae.d_sae,
    apply_b_dec_to_input: sae.apply_b_dec_to_input,
    normalize_activations: sae.scale === 1 ? "none" : "expected_average_only_in",
    ...recordedModel(sae.cfg),
  });
  // Only the checks: the run directory is written beside and swapped in (never emptied first).
  await planRunDir(runDir, { resume: false, overwrite: opts.overwrite });
  const d = sae.d_in, m = sae.d_sae;
  const tensors: Record<string, Tensor> = {
    wEnc: f32Tensor([m, d], sae.weights.wEnc),
    bEnc: f32Tensor([m], sae.weights.bEnc),
    wDec: f32Tensor([m, d], sae.weights.wDec),
    bDec: f32Tensor([d], sae.weights.bDec),
  };
  if (sae.threshold) tensors.threshold = f32Tensor([m], sae.threshold);
  await writeDirBeside(
    runDir,
    [
      [CONFIG_FILE, configToYaml(cfg)],
      [
        SAE_FILE,
        encodeSafetensors(tensors, {
          format: "sae-webgpu",
          d_in: String(d),
          d_sae: String(m),
          scale: String(sae.scale),
          source: `saelens:${basename(dir)}`,
          architecture: sae.architecture,
        }),
      ],
      [IMPORTED_CFG_FILE, JSON.stringify(sae.cfg, null, 2) + "\n"],
    ],
    true,
    opts.writer,
  );
  return { sae, cfg };
}
