/**
 * Dead-latent resampling (dictionary_learning's `StandardTrainer` with `resample_steps`, after
 * Anthropic's "Towards Monosemanticity"), for the ReLU variants, whose dead latents have no other
 * way back (the top-k variants have AuxK): every `resample_steps` steps, the latents that have not
 * fired for more than half that many steps are re-initialised toward rows of the step's batch that
 * the SAE reconstructs badly:
 *
 * - rows sampled without replacement with probability ∝ ‖x − x̂‖² (`resample_rule: anthropic`,
 *   the default) or ∝ ‖x − x̂‖ (`dictionary_learning`, its code), one per dead latent (the first
 *   ones in index order when there are more dead latents than rows);
 * - decoder row = v/‖v‖, encoder row = 0.2·(mean ‖W_enc,i‖ over alive latents)·v/‖v‖ (anthropic)
 *   or ·v (dictionary_learning's code leaves v unnormalised), b_enc = 0, and the Adam moments of
 *   those rows zeroed.
 *
 * v is the row as the encoder sees it, x_c = x − b_dec (dictionary_learning takes x, which differs
 * only in b_dec; the synthetic data's large mean offset would make every resampled row point along
 * it). dictionary_learning also restarts the learning-rate warmup after each resampling; this does
 * not. The reconstruction errors are the step's own (before its update; dictionary_learning
 * re-encodes after it).
 *
 * The choice is made on the host at resample steps only, from one readback of the step's row
 * errors and the latents' last-fired steps; the new rows are written by GPU kernels
 * (src/kernels/resample.ts). Nothing is read back on other steps. The sampling is seeded by the
 * run's seed and the step, so a resumed run resamples identically.
 */
import type { CoreConfig } from "../config_core.ts";
import { UserError } from "../errors.ts";
import type { Gpu } from "../gpu/device.ts";
import type { Dispatch } from "../gpu/dispatch.ts";
import { resampleDispatches } from "../kernels/resample.ts";
import { Rng } from "../rng.ts";
import type { StepBuffers } from "./model.ts";

/** The resampling kernels of a session and the buffers the host fills at a resample step. */
export interface Resampler {
  /** [1 + 2·batch] u32: the count, then (latent, row) pairs. */
  pairs: GPUBuffer;
  /** [d_sae] u32: the dead mask. */
  dead: GPUBuffer;
  dispatches: Dispatch[];
}

/** Builds the resampling kernels over the step's buffers (once, when resample_steps > 0). */
export async function buildResampler(
  gpu: Gpu,
  cfg: CoreConfig,
  bufs: StepBuffers,
): Promise<Resampler> {
  if (cfg.d_sae * cfg.d_in * 4 > gpu.maxBinding) {
    throw new UserError(
      `resample_steps: the resampling kernels bind W_enc and W_dec whole, and d_sae × d_in ` +
        `exceeds this adapter's storage-binding limit: set resample_steps 0`,
    );
  }
  const P = bufs.params;
  const pairs = gpu.buffer("resample pairs", (1 + 2 * cfg.batch) * 4);
  const dead = gpu.buffer("resample dead", cfg.d_sae * 4);
  const spec = {
    m: cfg.d_sae,
    d: cfg.d_in,
    pairs: cfg.batch,
    normalizeEnc: cfg.resample_rule === "anthropic",
  };
  const dispatches = await resampleDispatches(gpu, spec, {
    wEnc: P.wEnc,
    bEnc: P.bEnc,
    wDec: P.wDec,
    xc: bufs.xc,
    pairs,
    dead,
    scal: gpu.buffer("resample scalar", 4),
  });
  return { pairs, dead, dispatches };
}

/** What to resample: the dead mask [m] (u32, 1 = dead) and (latent, row) pairs. */
export interface ResamplePlan {
  dead: Uint32Array;
  pairs: [number, number][];
}

/**
 * The plan at `step`: dead latents (step − lastFired > window/2), and rows of the batch sampled
 * without replacement ∝ rowError^power (power 2: anthropic, 1: dictionary_learning), paired with
 * the dead latents in index order.
 */
export function resamplePlan(a: {
  step: number;
  window: number;
  lastFired: Uint32Array;
  /** ‖x − x̂‖₂ of each row of the step's batch. */
  rowError: ArrayLike<number>;
  power: 1 | 2;
  seed: number;
}): ResamplePlan {
  const dead = a.lastFired.map((t) => a.step - t > a.window / 2 ? 1 : 0);
  const deadIdx: number[] = [];
  dead.forEach((v, i) => v && deadIdx.push(i));
  const B = a.rowError.length;
  const n = Math.min(deadIdx.length, B);
  const weight = Array.from(a.rowError, (e) => Number.isFinite(e) ? e ** a.power : 0);
  const rng = new Rng((a.seed ^ Math.imul(a.step, 0x9e3779b1)) >>> 0);
  const rows: number[] = [];
  for (let i = 0; i < n; i++) {
    const total = weight.reduce((s, w) => s + w, 0);
    let pick = -1;
    if (total > 0) {
      let u = rng.uniform() * total;
      for (let r = 0; r < B && pick < 0; r++) {
        if (weight[r] > 0 && (u -= weight[r]) < 0) pick = r;
      }
      // Rounding can leave u just above 0: the last row with weight.
      if (pick < 0) pick = weight.findLastIndex((w) => w > 0);
    } else {
      // Nothing left to weigh: uniformly among the rows not drawn yet.
      const left = weight.map((_, r) => r).filter((r) => !rows.includes(r));
      pick = left[Math.floor(rng.uniform() * left.length)];
    }
    rows.push(pick);
    weight[pick] = 0;
  }
  return { dead, pairs: rows.map((r, i) => [deadIdx[i], r]) };
}
