/**
 * The shape of eval.json, written by `sae eval` and read by `sae report`: one source of truth for
 * the three modules that fill it (core metrics, ground truth, absorption and SCR).
 */

/** A metric that needs something this run does not have (e.g. the language model). */
export interface Unavailable {
  available: false;
  reason: string;
}

/** Core metrics as SAEBench defines them (docs/metrics.md). */
export interface CoreMetrics {
  mse: number;
  explained_variance: number;
  cosine_similarity: number;
  l2_ratio: number;
  relative_reconstruction_bias: number;
  l0: number;
  l1: number;
  dead_fraction: number;
  dense_fraction: number;
  /** log10 of each latent's firing frequency, histogrammed; latents that never fired are counted apart. */
  density_histogram: { edges: number[]; counts: number[]; never_fired: number };
  kl_div_score: Unavailable | number;
  ce_loss_score: Unavailable | number;
  recon_rows: number;
  sparsity_rows: number;
}

/** Recovery of the synthetic generator's ground truth. */
export interface GroundTruthMetrics {
  mmcs: number;
  recovered_at_0_9: number;
  /** Per true feature: best-matching latent, its cosine, and activation precision/recall. */
  features: {
    feature: number;
    latent: number;
    cosine: number;
    precision: number;
    recall: number;
  }[];
  mean_precision: number;
  mean_recall: number;
}

/** Feature absorption on the "first letter" hierarchy (paper Fig. 2). */
export interface AbsorptionMetrics {
  /** Per letter: absorption rate in [0, 1] and the parent's latent(s). */
  per_letter: { letter: string; absorption: number; parent_latents: number[]; rows: number }[];
  mean: number;
  std: number;
}

/** Spurious correlation removal (paper Fig. 1b), SAEBench's normalised score per k. */
export interface ScrMetrics {
  k: number[];
  score: number[];
}

/** eval.json. */
export interface EvalReport {
  sae: string;
  data: string;
  core: CoreMetrics;
  ground_truth?: GroundTruthMetrics;
  absorption?: AbsorptionMetrics;
  scr?: ScrMetrics;
}
