/**
 * Metric accumulators kept on the GPU (wgsl/metrics.wgsl), read back only at log steps: the words
 * the kernel writes (METRIC_INDEX), their averages ({@link summarize}) and the TypeScript reference.
 */
import metricsSrc from "../../wgsl/metrics.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, kernel } from "../gpu/dispatch.ts";
import { type StepState, withCommon } from "./common.ts";
import { hasSubgroups } from "./collectives.ts";

/**
 * Slot of each accumulator (mirrors the writes at the end of wgsl/metrics.wgsl; `ortho` and the
 * orthogonality share of `loss` are added by the paper variant's `ortho_total`, wgsl/paper.wgsl).
 */
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
  /** Health flags: 0 finite, 1 infinite, 2 NaN since the last read (src/kernels/health.ts). */
  recon_bad: 10,
  l1_bad: 11,
  /** Set by wgsl/health.wgsl (parameters after the update). */
  params_bad: 12,
  /** First step of the window whose loss terms or batch were not finite (0: none). */
  first_bad_step: 13,
  input_bad: 14,
  /** Steps whose sparse-latent plan chose the sparse kernels (src/kernels/sparse.ts). */
  sparse_steps: 15,
  /** The orthogonality penalty λ_ortho·R·Σ α c² of the step (paper variant; also in `loss`). */
  ortho: 16,
} as const;

/** Accumulator buffer length in f32 words. */
export const METRIC_WORDS = 17;

/**
 * Invocations of the metrics kernel's one workgroup (RED_WG in wgsl/metrics.wgsl): it loops over
 * every row and latent, so a group wider than WG shortens each invocation's share.
 */
const METRICS_WG = 256;

/** Averages over the steps since the last read. */
export interface StepMetrics {
  /**
   * Loss optimized: reconstruction term + λ1·L1 + the orthogonality term (λ1 and the
   * orthogonality term are 0 in a recon-only phase; the latter is the paper variant's).
   */
  loss: number;
  /** The orthogonality term λ_ortho·R·Σ_{i≠j} α_ij c_ij² (0 without one). */
  ortho: number;
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
    ortho: acc[I.ortho] / n,
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

/** Buffers of the metrics kernel. */
export interface MetricsBuffers {
  rowstats: GPUBuffer; // [B, 3] ‖r‖, ‖r‖², ‖x − x̄‖² (src/kernels/loss.ts)
  fstats: GPUBuffer; // [d_sae, 2] fires, Σf (src/kernels/reduce.ts)
  lastFired: GPUBuffer; // [d_sae] u32 step a latent last fired
  acc: GPUBuffer; // [METRIC_WORDS] accumulators
  state: GPUBuffer; // step state (src/kernels/common.ts)
}

/** Builds the dispatch that folds a step's statistics into `acc`. */
export function metricsKernel(gpu: Gpu, s: MetricsSpec, b: MetricsBuffers): Promise<Dispatch> {
  const B = s.batch, M = s.dSae;
  return kernel(gpu, {
    label: "metrics",
    code: withCommon(metricsSrc, hasSubgroups(gpu)),
    constants: {
      B,
      M,
      D: s.dIn,
      SQUARED: s.squared ? 1 : 0,
      DEAD_STEPS: s.deadSteps,
      DENSE: s.denseThreshold,
      RED_WG: METRICS_WG,
    },
    buffers: [b.rowstats, b.fstats, b.lastFired, b.acc, b.state],
    groups: [1, 1, 1],
    // Sums of 3 row and 4 latent statistics; reads rowstats, fstats and last_fired once.
    cost: { flops: 3 * B + 4 * M, bytes: 4 * (3 * B + 3 * M + 2 * METRIC_WORDS) },
  });
}

/** 0 finite, 1 infinite, 2 NaN (wgsl/metrics.wgsl's `badness`). */
function badness(x: number): number {
  return Number.isNaN(x) ? 2 : Number.isFinite(x) ? 0 : 1;
}

/** Reference of {@link metricsKernel}: folds one step into `acc` in place (f64 sums). */
export function metricsReference(
  s: MetricsSpec,
  acc: Float32Array,
  rowstats: Float32Array,
  fstats: Float32Array,
  lastFired: Uint32Array,
  st: StepState,
): void {
  const I = METRIC_INDEX;
  const B = s.batch, M = s.dSae;
  let rn = 0, rss = 0, tss = 0;
  for (let b = 0; b < B; b++) {
    rn += rowstats[3 * b];
    rss += rowstats[3 * b + 1];
    tss += rowstats[3 * b + 2];
  }
  let fires = 0, sum = 0, dead = 0, dense = 0;
  for (let i = 0; i < M; i++) {
    fires += fstats[2 * i];
    sum += fstats[2 * i + 1];
    // u32 arithmetic, as on the GPU: a latent "fired" after this step counts as dead.
    if (((st.step - lastFired[i]) >>> 0) >= s.deadSteps) dead++;
    if (fstats[2 * i] > Math.fround(s.denseThreshold) * B) dense++;
  }
  const l1 = sum / B;
  acc[I.steps] += 1;
  acc[I.loss] += (s.squared ? rss : rn) / B + st.l1_coef * B * l1;
  acc[I.l2] += rn / B;
  acc[I.mse] += rss / (B * s.dIn);
  acc[I.l1] += l1;
  acc[I.l0] += fires / B;
  acc[I.resid_ss] += rss;
  acc[I.total_ss] += tss;
  acc[I.dead] = dead / M;
  acc[I.dense] += dense / M;
  const recon = Math.max(badness(rn), badness(rss)), l1Bad = badness(sum), input = badness(tss);
  if (Math.max(recon, l1Bad, input) > 0) {
    if (acc[I.first_bad_step] === 0) acc[I.first_bad_step] = st.step;
    acc[I.recon_bad] = Math.max(acc[I.recon_bad], recon);
    acc[I.l1_bad] = Math.max(acc[I.l1_bad], l1Bad);
    acc[I.input_bad] = Math.max(acc[I.input_bad], input);
  }
}
