/**
 * The trained SAE of a run directory: `sae.safetensors` (the final weights and input scale, written
 * by the trainer and by `sae import`), `config.yaml`, and the thresholds τ the encoder applies
 * when the run's variant has them (the final checkpoint's state, or an imported `threshold`).
 */
import { join } from "node:path";
import { type TrainConfig, validateConfig } from "../config.ts";
import { UserError } from "../errors.ts";
import { loadLatestCheckpoint } from "../run/checkpoint.ts";
import { CONFIG_FILE, readRunConfig } from "../run/rundir.ts";
import { decodeSafetensors, encodeSafetensors, tensorToF32 } from "../run/safetensors.ts";
import { encodeInto } from "./encode.ts";
import { type SaeWeights, weightsFromTensors, weightTensors } from "./model.ts";
import { extraTensor } from "./snapshot.ts";
import { variantOf } from "./variants.ts";

/** A trained SAE: its config, weights, input scale and encoder thresholds. */
export interface LoadedSae {
  cfg: TrainConfig;
  weights: SaeWeights;
  /** Factor applied to raw activations before encoding (1 unless normalize_activations is set). */
  scale: number;
  /**
   * threshold: [d_sae] the τ the encoder applies, f = pre·1[pre > max(τ, 0)] (an imported JumpReLU
   * SAE's, or the paper variant's with adaptive_threshold), or null for ReLU.
   */
  threshold: Float32Array | null;
  /** The row top-k's k when the encoder is SAELens' TopK (variant topk); null or absent: none. */
  k?: number | null;
}

/** The final weights' file in a run directory. */
export const SAE_FILE = "sae.safetensors";

/** sae.safetensors: the weights with d_in, d_sae and the input scale as metadata. */
export function saeFileBytes(cfg: TrainConfig, weights: SaeWeights, scale: number): Uint8Array {
  return encodeSafetensors(weightTensors(weights, cfg.d_in, cfg.d_sae), {
    format: "sae-webgpu",
    d_in: String(cfg.d_in),
    d_sae: String(cfg.d_sae),
    scale: String(scale),
  });
}

/**
 * Loads `dir/sae.safetensors` and `dir/config.yaml` written by {@link train} (or `sae import`),
 * with the thresholds the SAE encodes with.
 *
 * @example
 * ```ts
 * import { encodeRows, loadSae } from "./mod.ts";
 * const sae = await loadSae("runs/demo");
 * const f = encodeRows(sae, new Float32Array(sae.cfg.d_in)); // [1, d_sae]
 * ```
 */
export async function loadSae(dir: string): Promise<LoadedSae> {
  const configFile = join(dir, CONFIG_FILE);
  if (!(await Deno.stat(configFile).catch(() => null))?.isFile) {
    throw new UserError(
      `${dir} is not a run directory (no ${CONFIG_FILE} there): pass a directory written by ` +
        `'sae train' or 'sae import'`,
    );
  }
  const cfg = validateConfig(await readRunConfig(dir), configFile);
  const path = join(dir, SAE_FILE);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch {
    throw new UserError(`${path} not found: is ${dir} a finished run directory?`);
  }
  let decoded;
  try {
    decoded = decodeSafetensors(bytes);
  } catch (err) {
    if (err instanceof UserError) throw new UserError(`${path}: ${err.message} (damaged?)`);
    throw err;
  }
  const { tensors, metadata } = decoded;
  const weights = weightsFromTensors(tensors, cfg.d_in, cfg.d_sae, path);
  let threshold: Float32Array | null;
  if (tensors.threshold) {
    if (tensors.threshold.shape.join() !== String(cfg.d_sae)) {
      throw new UserError(`${path}: tensor 'threshold' is not of shape [${cfg.d_sae}]`);
    }
    threshold = tensorToF32(tensors.threshold);
  } else {
    threshold = await finalThresholds(dir, cfg, weights);
  }
  const k = variantOf(cfg.variant).topk?.(cfg) ?? null;
  return { cfg, weights, scale: Number(metadata.scale ?? 1), threshold, k };
}

/**
 * The thresholds a trained run's encoder applied at its last step: the variant's threshold state in
 * the last checkpoint, checked to be the checkpoint of the final weights; null if it has none.
 */
async function finalThresholds(
  dir: string,
  cfg: TrainConfig,
  weights: SaeWeights,
): Promise<Float32Array | null> {
  const name = variantOf(cfg.variant).thresholds(cfg);
  if (name === null) return null;
  const ckpt = await loadLatestCheckpoint(dir);
  const tau = ckpt ? extraTensor(ckpt.tensors, name) : null;
  if (!ckpt || !tau) {
    throw new UserError(
      `${dir}: the ${cfg.variant} variant's thresholds (extra.${name}) are in the final ` +
        `checkpoint, and ${dir}/checkpoints has none with them`,
    );
  }
  const wDec = ckpt.tensors.wDec ? tensorToF32(ckpt.tensors.wDec) : null;
  if (!wDec || wDec.length !== weights.wDec.length || wDec.some((v, i) => v !== weights.wDec[i])) {
    throw new UserError(
      `${ckpt.path} does not hold the final weights of ${dir} (was the run extended or ` +
        `interrupted?): its thresholds do not belong to sae.safetensors`,
    );
  }
  return tau;
}

/**
 * Encodes raw rows x [n, d_in] on the CPU with the SAE's own encoder (its input scale and, where it
 * has them, its thresholds τ or its row top-k): f [n, d_sae], the codes the trained SAE computes
 * on the GPU.
 *
 * @example
 * ```ts
 * import { encodeRows, loadSae } from "./mod.ts";
 * const sae = await loadSae("runs/demo");
 * const f = encodeRows(sae, new Float32Array(sae.cfg.d_in)); // [1, d_sae]
 * ```
 */
export function encodeRows(sae: LoadedSae, x: Float32Array): Float32Array {
  const { d_in, d_sae, apply_b_dec_to_input } = sae.cfg;
  const f = new Float32Array((x.length / d_in) * d_sae);
  encodeInto(
    {
      dIn: d_in,
      dSae: d_sae,
      applyBDec: apply_b_dec_to_input,
      scale: sae.scale,
      tau: sae.threshold,
      k: sae.k,
    },
    sae.weights,
    x,
    f,
  );
  return f;
}
