/** SAEs for the language-model evaluation tests: random, exact, all-zero; as runs on disk. */
import { join } from "node:path";
import { DEFAULT_CONFIG, mergeConfig, type PartialConfig } from "../../src/config.ts";
import { writeConfig } from "../../src/run/rundir.ts";
import { encodeSafetensors, f32Tensor, type Tensor } from "../../src/run/safetensors.ts";
import { Rng } from "../../src/rng.ts";
import { type LoadedSae, saeFileBytes } from "../../src/sae/load.ts";
import { weightTensors } from "../../src/sae/model.ts";
import { randArray } from "../helpers/check.ts";
import { llama2cTokenizerBytes } from "../lm/fixtures.ts";

/** An SAE of random weights (W_dec rows unit norm), with thresholds when `tau` is given. */
export function randomSae(
  dIn: number,
  dSae: number,
  seed: number,
  opts: { scale?: number; tau?: number; over?: PartialConfig } = {},
): LoadedSae {
  const rng = new Rng(seed);
  const wDec = randArray(rng, dSae * dIn);
  for (let i = 0; i < dSae; i++) {
    const row = wDec.subarray(i * dIn, (i + 1) * dIn);
    const n = Math.hypot(...row);
    for (let k = 0; k < dIn; k++) row[k] /= n;
  }
  return {
    cfg: mergeConfig(DEFAULT_CONFIG, { d_in: dIn, d_sae: dSae, ...opts.over }),
    weights: {
      wEnc: randArray(rng, dSae * dIn, -0.5, 0.5),
      bEnc: randArray(rng, dSae, -0.3, 0.3),
      wDec,
      bDec: randArray(rng, dIn, -0.2, 0.2),
    },
    scale: opts.scale ?? 1,
    threshold: opts.tau === undefined ? null : new Float32Array(dSae).fill(opts.tau),
  };
}

/**
 * An SAE that reconstructs every input exactly: d_sae = 2·d_in, W_enc = W_dec = [I; −I], biases
 * 0, so f = [ReLU(s·x); ReLU(−s·x)] and x̂ = ReLU(s·x) − ReLU(−s·x) = s·x; every product is by 0
 * or ±1, so it is exact in f32 (and with scale s a power of 2, x̂ / s = x exactly). Thresholds 0
 * (when `thresholds`) pass every positive pre-activation.
 */
export function exactSae(dIn: number, opts: { scale?: number; thresholds?: boolean } = {}) {
  const m = 2 * dIn;
  const w = new Float32Array(m * dIn);
  for (let k = 0; k < dIn; k++) {
    w[k * dIn + k] = 1;
    w[(dIn + k) * dIn + k] = -1;
  }
  return {
    cfg: mergeConfig(DEFAULT_CONFIG, { d_in: dIn, d_sae: m }),
    weights: { wEnc: w, bEnc: new Float32Array(m), wDec: w.slice(), bDec: new Float32Array(dIn) },
    scale: opts.scale ?? 1,
    threshold: opts.thresholds ? new Float32Array(m) : null,
  } satisfies LoadedSae;
}

/** An SAE whose reconstruction is 0 whatever the input (W_dec = 0, b_dec = 0). */
export function zeroSae(dIn: number, dSae: number): LoadedSae {
  const sae = randomSae(dIn, dSae, 1);
  sae.weights.wDec.fill(0);
  sae.weights.bDec.fill(0);
  return sae;
}

/** Writes `sae` as a run directory (config.yaml, sae.safetensors) that loadSae reads. */
export async function writeRun(dir: string, sae: LoadedSae): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  await writeConfig(dir, sae.cfg);
  if (sae.threshold) {
    const t: Record<string, Tensor> = {
      ...weightTensors(sae.weights, sae.cfg.d_in, sae.cfg.d_sae),
      threshold: f32Tensor([sae.cfg.d_sae], sae.threshold),
    };
    await Deno.writeFile(
      join(dir, "sae.safetensors"),
      encodeSafetensors(t, { d_in: String(sae.cfg.d_in), scale: String(sae.scale) }),
    );
  } else {
    await Deno.writeFile(
      join(dir, "sae.safetensors"),
      saeFileBytes(sae.cfg, sae.weights, sae.scale),
    );
  }
  return dir;
}

/** A llama2.c tokenizer file of `n` tokens (tests/lm/fixtures.ts' builder). */
export const tinyTokenizer = llama2cTokenizerBytes;
