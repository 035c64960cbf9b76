/**
 * Core and ground-truth metrics, accumulated on the host in f64 from batches of x, x̂ and f read
 * back from the GPU forward pass (src/eval/evaluate.ts). Definitions: docs/metrics.md.
 *
 * @example
 * ```ts
 * const acc = new CoreAccumulator(16, 32);
 * acc.addRecon(x, xhat);     // x, x̂: [rows, 16] in raw activation units
 * acc.addSparsity(f);        // f: [rows, 32]
 * const core = acc.result(unavailable("no language model"));
 * ```
 */
import type { BatchTruth } from "../data/synthetic.ts";
import type { Recovery } from "./groundtruth.ts";
import type { CoreMetrics, GroundTruthMetrics, Unavailable } from "./schema.ts";

/** A latent is dense when it fires on more than this fraction of the sparsity rows (SAEBench). */
export const DENSE_FREQUENCY = 0.1;
/** Width of a density-histogram bin in log10(frequency). */
const DENSITY_BIN_WIDTH = 0.25;
/** ‖x‖ below this counts as 1 in the L2 ratio's denominator (as SAEBench does). */
const L2_RATIO_MIN_NORM = 1e-4;

/** A metric that needs something the run does not have. */
export function unavailable(reason: string): Unavailable {
  return { available: false, reason };
}

/** a / b, or `fallback` when the quotient is not finite (0/0, x/0): eval.json holds only numbers. */
function ratio(a: number, b: number, fallback: number): number {
  const q = a / b;
  return Number.isFinite(q) ? q : fallback;
}

/**
 * Histogram of log10(firing frequency) over latents that fired at least once; latents that never
 * fired are counted in `never_fired`. Bins are DENSITY_BIN_WIDTH wide from floor(log10(1/rows))
 * (the smallest non-zero frequency rows allow) to 0, each [lo, hi) except the last, which also
 * holds frequency 1.
 *
 * @param fires [d_sae] rows on which each latent fired
 * @param rows rows counted
 */
export function densityHistogram(
  fires: ArrayLike<number>,
  rows: number,
): CoreMetrics["density_histogram"] {
  const lo = Math.min(-DENSITY_BIN_WIDTH, Math.floor(Math.log10(1 / Math.max(rows, 1))));
  const nBins = Math.round(-lo / DENSITY_BIN_WIDTH);
  const edges = Array.from({ length: nBins + 1 }, (_, i) => lo + i * DENSITY_BIN_WIDTH);
  const counts = new Array<number>(nBins).fill(0);
  let never = 0;
  for (let i = 0; i < fires.length; i++) {
    if (fires[i] <= 0) {
      never++;
      continue;
    }
    const l = Math.log10(fires[i] / rows);
    const b = Math.floor((l - lo) / DENSITY_BIN_WIDTH + 1e-9);
    counts[Math.max(0, Math.min(nBins - 1, b))]++;
  }
  return { edges, counts, never_fired: never };
}

/**
 * Accumulates the core metrics: reconstruction metrics over the rows passed to
 * {@link CoreAccumulator.addRecon}, sparsity metrics over those passed to
 * {@link CoreAccumulator.addSparsity}.
 */
export class CoreAccumulator {
  readonly dIn: number;
  readonly dSae: number;
  private reconRows = 0;
  private sparsityRows = 0;
  // Reconstruction sums (f64).
  private rss = 0; // Σ‖x − x̂‖²
  private cosSum = 0; // Σ cos(x, x̂)
  private ratioSum = 0; // Σ ‖x̂‖/‖x‖
  private xhatSq = 0; // Σ‖x̂‖²
  private xDotXhat = 0; // Σ x·x̂
  // Total variance about a shift c (the first row) for stability: Σ(x − c), Σ‖x − c‖².
  private shift: Float64Array | null = null;
  private shiftedSum: Float64Array;
  private shiftedSq = 0;
  // Sparsity sums.
  private l0Sum = 0;
  private l1Sum = 0;
  /** fires: [d_sae] rows on which each latent fired (f > 0) over the sparsity rows. */
  readonly fires: Float64Array;

  constructor(dIn: number, dSae: number) {
    this.dIn = dIn;
    this.dSae = dSae;
    this.shiftedSum = new Float64Array(dIn);
    this.fires = new Float64Array(dSae);
  }

  /** Adds rows of x and x̂ ([rows, d_in] each, the same units). */
  addRecon(x: ArrayLike<number>, xhat: ArrayLike<number>): void {
    const d = this.dIn;
    const rows = x.length / d;
    if (!Number.isInteger(rows) || xhat.length !== x.length) {
      throw new Error(`addRecon: x (${x.length}) and x̂ (${xhat.length}) must be [rows, ${d}]`);
    }
    if (this.shift === null && rows > 0) {
      this.shift = Float64Array.from({ length: d }, (_, k) => x[k]);
    }
    const c = this.shift!;
    for (let r = 0; r < rows; r++) {
      const o = r * d;
      let xx = 0, hh = 0, xh = 0, rr = 0, ss = 0;
      for (let k = 0; k < d; k++) {
        const xv = x[o + k], hv = xhat[o + k];
        xx += xv * xv;
        hh += hv * hv;
        xh += xv * hv;
        rr += (xv - hv) * (xv - hv);
        const s = xv - c[k];
        this.shiftedSum[k] += s;
        ss += s * s;
      }
      const nx = Math.sqrt(xx), nh = Math.sqrt(hh);
      this.rss += rr;
      this.shiftedSq += ss;
      this.cosSum += nx > 0 && nh > 0 ? xh / (nx * nh) : 0;
      this.ratioSum += nh / (nx < L2_RATIO_MIN_NORM ? 1 : nx);
      this.xhatSq += hh;
      this.xDotXhat += xh;
    }
    this.reconRows += rows;
  }

  /** Adds rows of latents f ([rows, d_sae]). */
  addSparsity(f: ArrayLike<number>): void {
    const m = this.dSae;
    const rows = f.length / m;
    if (!Number.isInteger(rows)) {
      throw new Error(`addSparsity: f (${f.length}) is not [rows, ${m}]`);
    }
    for (let r = 0; r < rows; r++) {
      const o = r * m;
      let l0 = 0, l1 = 0;
      for (let i = 0; i < m; i++) {
        const v = f[o + i];
        if (v > 0) {
          l0++;
          this.fires[i]++;
        }
        l1 += Math.abs(v);
      }
      this.l0Sum += l0;
      this.l1Sum += l1;
    }
    this.sparsityRows += rows;
  }

  /**
   * The metrics so far, with the KL-divergence and CE-loss scores (numbers from the language
   * model, src/eval/lm.ts; without one, why they are unavailable).
   */
  result(kl: Unavailable | number, ce: Unavailable | number = kl): CoreMetrics {
    const n = this.reconRows, s = this.sparsityRows, d = this.dIn;
    let mean2 = 0;
    for (let k = 0; k < d; k++) mean2 += this.shiftedSum[k] * this.shiftedSum[k];
    // Σ_rows ‖x − x̄‖² (x̄: the mean over all reconstruction rows).
    const totalSS = Math.max(0, this.shiftedSq - (n > 0 ? mean2 / n : 0));
    let dead = 0, dense = 0;
    for (let i = 0; i < this.dSae; i++) {
      if (this.fires[i] === 0) dead++;
      if (s > 0 && this.fires[i] / s > DENSE_FREQUENCY) dense++;
    }
    return {
      mse: ratio(this.rss, n * d, 0),
      explained_variance: ratio(totalSS - this.rss, totalSS, this.rss === 0 ? 1 : 0),
      cosine_similarity: ratio(this.cosSum, n, 0),
      l2_ratio: ratio(this.ratioSum, n, 0),
      relative_reconstruction_bias: ratio(this.xhatSq, this.xDotXhat, 0),
      l0: ratio(this.l0Sum, s, 0),
      l1: ratio(this.l1Sum, s, 0),
      dead_fraction: ratio(dead, this.dSae, 0),
      dense_fraction: ratio(dense, this.dSae, 0),
      density_histogram: densityHistogram(this.fires, s),
      kl_div_score: kl,
      ce_loss_score: ce,
      recon_rows: n,
      sparsity_rows: s,
    };
  }
}

/**
 * Per true feature j with best-matching latent i (the decoder row of highest cosine with g_j):
 * counts rows where f_i > 0, rows where j is active, and rows where both hold.
 */
export class GroundTruthAccumulator {
  /** bestLatent: [n_features] the latent matched to each true feature. */
  readonly bestLatent: Uint32Array;
  readonly dSae: number;
  private readonly truePos: Float64Array; // [n_features]
  private readonly active: Float64Array; // [n_features]
  private readonly fires: Float64Array; // [d_sae]
  private rows = 0;

  constructor(bestLatent: Uint32Array, dSae: number) {
    this.bestLatent = bestLatent;
    this.dSae = dSae;
    this.truePos = new Float64Array(bestLatent.length);
    this.active = new Float64Array(bestLatent.length);
    this.fires = new Float64Array(dSae);
  }

  /** Adds a batch: latents f [rows, d_sae] and the batch's per-row truth (CSR). */
  add(f: ArrayLike<number>, truth: BatchTruth): void {
    const m = this.dSae;
    const rows = truth.rowPtr.length - 1;
    if (f.length < rows * m) throw new Error(`GroundTruthAccumulator: f holds < ${rows} rows`);
    for (let r = 0; r < rows; r++) {
      const o = r * m;
      for (let i = 0; i < m; i++) if (f[o + i] > 0) this.fires[i]++;
      for (let e = truth.rowPtr[r]; e < truth.rowPtr[r + 1]; e++) {
        const j = truth.features[e];
        this.active[j]++;
        if (f[o + this.bestLatent[j]] > 0) this.truePos[j]++;
      }
    }
    this.rows += rows;
  }

  /**
   * The ground-truth metrics. Precision = TP / rows where the latent fired, recall = TP / rows
   * where the feature was active, 0 when the denominator is 0; the means are over the features
   * active in at least one row (a feature that never occurred says nothing either way).
   */
  result(rec: Recovery): GroundTruthMetrics {
    const features: GroundTruthMetrics["features"] = [];
    let pSum = 0, rSum = 0, counted = 0;
    for (let j = 0; j < this.bestLatent.length; j++) {
      const i = this.bestLatent[j];
      const precision = ratio(this.truePos[j], this.fires[i], 0);
      const recall = ratio(this.truePos[j], this.active[j], 0);
      features.push({ feature: j, latent: i, cosine: rec.best[j], precision, recall });
      if (this.active[j] > 0) {
        pSum += precision;
        rSum += recall;
        counted++;
      }
    }
    return {
      mmcs: rec.mmcs,
      recovered_at_0_9: rec.recovered,
      features,
      mean_precision: ratio(pSum, counted, 0),
      mean_recall: ratio(rSum, counted, 0),
    };
  }
}
