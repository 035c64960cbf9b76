/** Metric accumulators kept on the GPU (wgsl/metrics.wgsl) and read back only at log steps. */
import metricsSrc from "../../wgsl/metrics.wgsl" with { type: "text" };
import healthSrc from "../../wgsl/health.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { cdiv, type Dispatch, kernel } from "../gpu/dispatch.ts";
import { rowParts } from "../gpu/split.ts";
import type { ParamBuffers, ParamName } from "./model.ts";
import { STATE_WGSL } from "./state.ts";

/** Slot of each accumulator (mirrors the writes at the end of wgsl/metrics.wgsl). */
export const METRIC_INDEX = {
  steps: 0,
  loss: 1,
  l2: 2,
  mse: 3,
  l1: 4,
  l0: 5,
  resid_ss: 6,
  total_ss: 7,
  dead: 8,
  dense: 9,
  /** Health flags: 0 finite, 1 infinite, 2 NaN since the last read (see {@link health}). */
  recon_bad: 10,
  l1_bad: 11,
  params_bad: 12,
  /** First step of the window whose loss terms or batch were not finite (0: none). */
  first_bad_step: 13,
  input_bad: 14,
  /** Steps whose sparse-latent plan chose the sparse kernels (src/kernels/sparse.ts). */
  sparse_steps: 15,
} as const;

/** Accumulator buffer length in f32 words. */
export const METRIC_WORDS = 16;

/** Averages over the steps since the last read. */
export interface StepMetrics {
  /** Loss optimized: reconstruction term + λ1·L1 (λ1 = 0 in a recon-only phase; no ortho term). */
  loss: number;
  /** Mean ‖x − x̂‖₂. */
  l2: number;
  /** Mean squared error per element. */
  mse: number;
  /** Mean ‖f‖₁. */
  l1: number;
  /** Mean number of active latents per row. */
  l0: number;
  /** 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖² over the window (x̄: each batch's mean). */
  explained_variance: number;
  /** Fraction of latents that have not fired for dead_steps steps. */
  dead_fraction: number;
  /** Mean fraction of latents firing on more than dense_threshold of a batch's rows. */
  dense_fraction: number;
  /** Fraction of steps that ran the sparse-latent kernels (sparse_max_density). */
  sparse_fraction: number;
}

/** Turns accumulator words into averages (host-side, once per log line). */
export function summarize(acc: Float32Array): StepMetrics {
  const I = METRIC_INDEX;
  const n = Math.max(acc[I.steps], 1);
  return {
    loss: acc[I.loss] / n,
    l2: acc[I.l2] / n,
    mse: acc[I.mse] / n,
    l1: acc[I.l1] / n,
    l0: acc[I.l0] / n,
    explained_variance: 1 - acc[I.resid_ss] / Math.max(acc[I.total_ss], 1e-30),
    dead_fraction: acc[I.dead],
    dense_fraction: acc[I.dense] / n,
    sparse_fraction: acc[I.sparse_steps] / n,
  };
}

/** Shapes and settings of the metrics kernel. */
export interface MetricsSpec {
  batch: number;
  dSae: number;
  dIn: number;
  squared: boolean;
  deadSteps: number;
  denseThreshold: number;
}

/** Builds the dispatch that folds a step's statistics into `acc`. */
export function metricsKernel(
  gpu: Gpu,
  s: MetricsSpec,
  b: {
    rowstats: GPUBuffer;
    fstats: GPUBuffer;
    lastFired: GPUBuffer;
    acc: GPUBuffer;
    state: GPUBuffer;
  },
): Promise<Dispatch> {
  return kernel(gpu, {
    label: "metrics",
    code: STATE_WGSL + metricsSrc,
    constants: {
      B: s.batch,
      M: s.dSae,
      D: s.dIn,
      SQUARED: s.squared ? 1 : 0,
      DEAD_STEPS: s.deadSteps,
      DENSE: s.denseThreshold,
    },
    buffers: [b.rowstats, b.fstats, b.lastFired, b.acc, b.state],
    groups: [1, 1, 1],
  });
}

/** 0 finite, 1 infinite, 2 NaN. */
export type Badness = 0 | 1 | 2;

/** What went non-finite in the accumulated window (all 0 when healthy). */
export interface Health {
  /** The reconstruction term (Σ‖x − x̂‖ or Σ‖x − x̂‖²). */
  recon: Badness;
  /** The sparsity term Σf. */
  l1: Badness;
  /** A parameter after an update (wgsl/health.wgsl). */
  params: Badness;
  /** The batch itself (Σ‖x − x̄‖²): the data holds NaN or infinity. */
  input: Badness;
  /** First step whose loss terms or batch were bad (0: none seen, or only a parameter). */
  firstStep: number;
}

/** Reads the health flags of an accumulator buffer. */
export function health(acc: Float32Array): Health {
  const I = METRIC_INDEX;
  const b = (v: number): Badness => (v >= 2 ? 2 : v >= 1 ? 1 : 0);
  return {
    recon: b(acc[I.recon_bad]),
    l1: b(acc[I.l1_bad]),
    params: b(acc[I.params_bad]),
    input: b(acc[I.input_bad]),
    firstStep: acc[I.first_bad_step],
  };
}

/** Whether any flag of `h` is set. */
export function isBad(h: Health): boolean {
  return h.recon + h.l1 + h.params + h.input > 0;
}

/**
 * Builds the once-per-step parameter check that sets the params_bad flag in `acc` (one dispatch,
 * or one per range of W_enc/W_dec rows when they exceed the binding limit; the biases are checked
 * by the first).
 */
export async function healthKernel(
  gpu: Gpu,
  params: Record<ParamName, ParamBuffers>,
  acc: GPUBuffer,
): Promise<Dispatch[]> {
  const WG = 256;
  const [dSae, dIn] = params.wEnc.shape;
  const out: Dispatch[] = [];
  const bufs = [params.wEnc.p, params.wDec.p];
  for (const { r0, r1, views: [enc, dec] } of rowParts(gpu, dSae, dIn, bufs)) {
    const n = (r1 - r0) * dIn;
    // About 16 elements a thread for the large matrices, at most 1024 workgroups.
    const groups = Math.max(1, Math.min(1024, cdiv(n, WG * 16)));
    out.push(
      await kernel(gpu, {
        label: "health",
        code: healthSrc,
        constants: {
          N_WENC: n,
          N_BENC: r0 === 0 ? params.bEnc.size : 0,
          N_WDEC: n,
          N_BDEC: r0 === 0 ? params.bDec.size : 0,
          STRIDE: groups * WG,
          OFF_ENC: enc.off,
          OFF_DEC: dec.off,
        },
        buffers: [enc.binding, params.bEnc.p, dec.binding, params.bDec.p, acc],
        groups: [groups, 1, 1],
      }),
    );
  }
  return out;
}
