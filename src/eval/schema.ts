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

/**
 * The language model's behaviour with the SAE spliced in (`sae eval --model`), as SAEBench's core
 * evaluation reports it (sae_bench/evals/core/main.py; definitions in docs/metrics.md). Means are
 * over every kept token of every batch; the scores are formed from those means.
 */
export interface LmMetrics {
  /** The model as given (directory, file or repo id). */
  model: string;
  /** The hook the SAE replaced. */
  hook: string;
  /** The evaluation text files. */
  text: string[];
  context_size: number;
  /** Contexts per batch (SAEBench's batch_size_prompts). */
  batch_size_prompts: number;
  /** Batches evaluated (fewer than asked where the text ended). */
  batches: number;
  /** Tokens in the KL means: every position whose token is not in `ignored_token_ids`. */
  kl_tokens: number;
  /** Tokens in the CE means: those positions except each context's last (no next token). */
  ce_tokens: number;
  /** Token ids left out of the means (SAEBench's ignore_tokens: BOS, EOS, pad). */
  ignored_token_ids: number[];
  /** Whether those tokens keep their own activation in the spliced pass instead of x̂. */
  exclude_special_tokens_from_reconstruction: boolean;
  /** (KL_zero − KL_sae) / KL_zero. */
  kl_div_score: number;
  /** Mean KL(p_clean ‖ p_sae) per token, nats. */
  kl_div_with_sae: number;
  /** Mean KL(p_clean ‖ p_zero) per token, nats. */
  kl_div_with_ablation: number;
  /** (CE_zero − CE_sae) / (CE_zero − CE_clean). */
  ce_loss_score: number;
  /** Mean next-token cross-entropy, nats: with x̂ spliced in, clean, with the hook zeroed. */
  ce_loss_with_sae: number;
  ce_loss_without_sae: number;
  ce_loss_with_ablation: number;
}

/** eval.json. */
export interface EvalReport {
  sae: string;
  data: string;
  core: CoreMetrics;
  /** With a language model (`sae eval --model`): KL and CE with the SAE spliced in. */
  lm?: LmMetrics;
  ground_truth?: GroundTruthMetrics;
  absorption?: AbsorptionMetrics;
  scr?: ScrMetrics;
}
