/**
 * The training configuration: one flat-ish object with snake_case keys, the same names in YAML
 * files, in config.yaml of a run directory and (with '-' for '_') as CLI flags.
 */

/** Synthetic ground-truth activation generator settings (see src/data/synthetic.ts). */
export interface SyntheticConfig {
  /** Number of ground-truth directions (more than d_in: superposition). */
  n_features: number;
  /** Target mean number of active ground-truth features per row (mean L0 of the truth). */
  mean_l0: number;
  /** Firing probabilities follow p_i ∝ (i + 1)^-power_law_exponent, scaled to mean_l0. */
  power_law_exponent: number;
  /** Magnitudes of active features: |N(magnitude_mean, magnitude_std)|, strictly positive. */
  magnitude_mean: number;
  magnitude_std: number;
  /** Groups of correlated features: n_groups groups of group_size features each. */
  n_groups: number;
  group_size: number;
  /** Probability that a group member fires given its group fires. */
  group_correlation: number;
  /** Feature-absorption setting: n_parents "first letter" parents, each with children. */
  n_parents: number;
  children_per_parent: number;
  /** Firing probability of each parent (a child fires only with its parent). */
  parent_probability: number;
  /** Target/spurious concept pair for SCR: each concept fires with this probability ... */
  concept_probability: number;
  /** ... and the two co-occur with this correlation (phi coefficient of the two labels). */
  concept_correlation: number;
  /** Norm of the large shared mean offset added to every row. */
  offset_norm: number;
  /** Standard deviation of isotropic Gaussian noise added per coordinate. */
  noise_std: number;
  /** Seed of the ground truth (dictionary, hierarchy) and of the sample stream. */
  seed: number;
}

/** Every option of a training run. */
export interface TrainConfig {
  /** SAE variant: "baseline" is the paper's ReLU SAE (Sections 3.1, 4.4). */
  variant: "baseline";
  /** Seed for initialisation and data order. */
  seed: number;
  /** Activation width. */
  d_in: number;
  /** Number of SAE latents. */
  d_sae: number;
  /** Rows per training step. */
  batch: number;
  /** Total optimizer steps. */
  steps: number;
  /** AdamW peak learning rate. */
  lr: number;
  /** Linear LR warmup length in steps (LR rises from lr/warmup_steps to lr). */
  warmup_steps: number;
  /** AdamW decoupled weight decay (applied to every parameter, as torch.optim.AdamW does). */
  weight_decay: number;
  beta1: number;
  beta2: number;
  adam_eps: number;
  /** λ1: weight of the mean L1 norm of the latents. */
  l1: number;
  /** "l2": mean over the batch of ‖x − x̂‖₂ (paper Eq. 4); "squared": mean of ‖x − x̂‖₂². */
  recon_loss: "l2" | "squared";
  /** Subtract b_dec from the input before encoding (SAELens' apply_b_dec_to_input). */
  apply_b_dec_to_input: boolean;
  /** How b_dec is initialised from a data sample. */
  b_dec_init: "mean" | "geometric_median" | "zeros";
  /** Rows sampled to initialise b_dec and estimate the normalisation scale. */
  init_rows: number;
  /** "none" (paper) or scale inputs to mean norm √d_in (SAELens expected_average_only_in). */
  normalize_activations: "none" | "expected_average_only_in";
  /** A latent that has not fired for this many steps counts as dead. */
  dead_steps: number;
  /** A latent firing on more than this fraction of rows counts as dense. */
  dense_threshold: number;
  /** Log (read back scalars) every N steps. */
  log_every: number;
  /** Write a checkpoint every N steps (0: only the final one). */
  checkpoint_every: number;
  /** "synthetic" or a path/glob of activation files. */
  data: string;
  /** Settings of the synthetic generator (used when data is "synthetic"). */
  synthetic: SyntheticConfig;
}

/** Defaults of the synthetic generator: small enough for the CPU adapter. */
export const DEFAULT_SYNTHETIC: SyntheticConfig = {
  n_features: 256,
  mean_l0: 6,
  power_law_exponent: 0.5,
  magnitude_mean: 1.0,
  magnitude_std: 0.3,
  n_groups: 8,
  group_size: 4,
  group_correlation: 0.5,
  n_parents: 26,
  children_per_parent: 3,
  parent_probability: 0.02,
  concept_probability: 0.3,
  concept_correlation: 0.6,
  offset_norm: 4.0,
  noise_std: 0.01,
  seed: 1,
};

/** Defaults of every training option (CPU-sized; configs/baseline.yaml has the paper's). */
export const DEFAULT_CONFIG: TrainConfig = {
  variant: "baseline",
  seed: 42,
  d_in: 64,
  d_sae: 512,
  batch: 512,
  steps: 3000,
  lr: 3e-4,
  warmup_steps: 1000,
  weight_decay: 1e-2,
  beta1: 0.9,
  beta2: 0.999,
  adam_eps: 1e-8,
  l1: 0.04,
  recon_loss: "l2",
  apply_b_dec_to_input: true,
  b_dec_init: "geometric_median",
  init_rows: 4096,
  normalize_activations: "none",
  dead_steps: 1000,
  dense_threshold: 0.1,
  log_every: 50,
  checkpoint_every: 1000,
  data: "synthetic",
  synthetic: DEFAULT_SYNTHETIC,
};
