/** Loading a trained SAE from its run directory. */
import { join } from "node:path";
import { type TrainConfig, validateConfig } from "../config.ts";
import { UserError } from "../errors.ts";
import { readRunConfig } from "../run/rundir.ts";
import { decodeSafetensors, tensorToF32 } from "../run/safetensors.ts";
import { PARAM_NAMES, paramShapes, type SaeWeights } from "./model.ts";

/** A trained SAE: its config, weights and input scale. */
export interface LoadedSae {
  cfg: TrainConfig;
  weights: SaeWeights;
  /** Factor applied to raw activations before encoding (1 unless normalize_activations is set). */
  scale: number;
}

/**
 * Loads `dir/sae.safetensors` and `dir/config.yaml` written by {@link train}.
 *
 * @example
 * ```ts
 * import { encodeRows, loadSae } from "./mod.ts";
 * const sae = await loadSae("runs/demo");
 * const f = encodeRows(sae, new Float32Array(sae.cfg.d_in)); // [1, d_sae]
 * ```
 */
export async function loadSae(dir: string): Promise<LoadedSae> {
  const cfg = validateConfig(await readRunConfig(dir), join(dir, "config.yaml"));
  const path = join(dir, "sae.safetensors");
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch {
    throw new UserError(`${path} not found: is ${dir} a finished run directory?`);
  }
  const { tensors, metadata } = decodeSafetensors(bytes);
  const shapes = paramShapes(cfg.d_in, cfg.d_sae);
  const weights = {} as SaeWeights;
  for (const n of PARAM_NAMES) {
    const t = tensors[n];
    if (!t || t.shape.join() !== shapes[n].join()) {
      throw new UserError(`${path}: tensor '${n}' missing or not of shape [${shapes[n]}]`);
    }
    weights[n] = tensorToF32(t);
  }
  return { cfg, weights, scale: Number(metadata.scale ?? 1) };
}

/** Encodes raw rows x [n, d_in] on the CPU: f = ReLU(W_enc(scale·x − b_dec) + b_enc), [n, d_sae]. */
export function encodeRows(sae: LoadedSae, x: Float32Array): Float32Array {
  const { d_in: d, d_sae: m, apply_b_dec_to_input } = sae.cfg;
  const w = sae.weights;
  const n = x.length / d;
  const f = new Float32Array(n * m);
  const xc = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    for (let k = 0; k < d; k++) {
      xc[k] = sae.scale * x[r * d + k] - (apply_b_dec_to_input ? w.bDec[k] : 0);
    }
    for (let i = 0; i < m; i++) {
      let s = w.bEnc[i];
      for (let k = 0; k < d; k++) s += w.wEnc[i * d + k] * xc[k];
      f[r * m + i] = Math.max(s, 0);
    }
  }
  return f;
}
