/**
 * An evaluator context without a GPU for the absorption/SCR adapter tests: a hand-built SAE whose
 * encoder and decoder rows are the synthetic dictionary (d_sae 256), encoded on the CPU.
 */
import { DEFAULT_CONFIG, DEFAULT_SYNTHETIC } from "../../src/config.ts";
import type { ActivationSource } from "../../src/data/source.ts";
import { SyntheticSource } from "../../src/data/synthetic.ts";
import type { EvalContext } from "../../src/eval/evaluate.ts";
import type { Gpu } from "../../src/gpu/device.ts";
import { encodeRows, type LoadedSae } from "../../src/sae/load.ts";

/** `ctx` reads a synthetic source; `plainCtx` a non-synthetic one. */
export function fakeContext(): Promise<{ ctx: EvalContext; plainCtx: EvalContext }> {
  const d = 64;
  const src = new SyntheticSource({ ...DEFAULT_SYNTHETIC, seed: 11 }, d);
  const dict = src.truth.dictionary;
  const m = dict.length / d;
  const sae: LoadedSae = {
    cfg: { ...DEFAULT_CONFIG, d_in: d, d_sae: m, apply_b_dec_to_input: true },
    weights: {
      wEnc: dict.slice(),
      bEnc: new Float32Array(m).fill(-0.4),
      wDec: dict.slice(),
      bDec: src.truth.offset.slice(),
    },
    scale: 1,
    threshold: null,
  };
  const ctx: EvalContext = {
    gpu: {} as Gpu,
    sae,
    source: src,
    truth: src.truth,
    encode: (rows) => Promise.resolve(encodeRows(sae, rows)),
    batch: 256,
  };
  const plain: ActivationSource = {
    dIn: d,
    description: "files",
    nextBatch: () => Promise.resolve(),
    state: () => null,
    restore: () => {},
  };
  return Promise.resolve({ ctx, plainCtx: { ...ctx, source: plain, truth: undefined } });
}

/**
 * `rows` synthetic rows with their truth and the "oracle" latents an ideal SAE would give:
 * f[r, feature] = the feature's true magnitude, decoder rows = the true dictionary.
 */
export async function oracleBatch(seed: number, d: number, rows: number) {
  const src = new SyntheticSource({ ...DEFAULT_SYNTHETIC, seed }, d);
  const x = new Float32Array(rows * d); // x: [rows, d] f32
  const truth = await src.nextBatchWithTruth(x);
  const dict = src.truth.dictionary;
  const nF = dict.length / d;
  const f = new Float32Array(rows * nF); // f: [rows, nF] f32
  for (let r = 0; r < rows; r++) {
    for (let e = truth.rowPtr[r]; e < truth.rowPtr[r + 1]; e++) {
      f[r * nF + truth.features[e]] = truth.magnitudes[e];
    }
  }
  return { src, x, truth, dict, nF, f };
}
