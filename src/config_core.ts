/**
 * The training options every variant shares (the core keys), with their defaults and rules, and the
 * synthetic generator's section. src/config.ts adds each registered variant's own keys and does
 * the validation; modules below the variant registry (the step, the model, the variants) type
 * their config with {@link CoreConfig}, so nothing under src/sae/variants.ts imports src/config.ts.
 */
import { DECAY, NON_NEGATIVE, POSITIVE, PROBABILITY, type Rule } from "./config_keys.ts";

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

/** The options of a training run that every variant shares. */
export interface CoreConfig {
  /**
   * SAE variant, a name registered in src/sae/variants.ts ({@link TrainConfig} narrows the type):
   * "baseline" is the paper's ReLU SAE (Sections 3.1, 4.4); "paper" adds the paper's Section 4
   * mechanisms (its keys: src/sae/paper.ts); "topk", "batchtopk", "jumprelu" and "matryoshka"
   * are the architectures of docs/architectures.md.
   */
  variant: string;
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
  /**
   * Store the operands of the step's GEMMs as f16 (packed rgba16float textures; products and sums
   * stay f32; parameters, moments and gradients stay f32). Off by default.
   */
  gemm_f16: boolean;
  /**
   * Sparse latents: when at most this fraction of f's entries is active in a step, the decoder
   * product and the backward products with f and dL/dpre run over the active entries only
   * (src/kernels/sparse.ts; chosen on the GPU each step). 0 turns it off. Same results up to
   * summation order. Default 0.05: the crossover measured on lavapipe at B=1024, d_in 512,
   * d_sae 4096 is 7-8% (bench/RESULTS.md); on a GPU it is unmeasured.
   */
  sparse_max_density: number;
  /**
   * Smallest step, in dense-product FLOPs 2·batch·d_in·d_sae, for which the sparse-latent path is
   * built at all: below it the lists and the plan cost more than the products they can save (at
   * the CPU default shape, 2^24, they added 13% to `deno task train`). 0: always.
   */
  sparse_min_flops: number;
  /** How b_dec is initialised from a data sample. */
  b_dec_init: "mean" | "geometric_median" | "zeros";
  /** Rows sampled to initialise b_dec and estimate the normalisation scale. */
  init_rows: number;
  /**
   * "none" (paper), or scale inputs to mean norm √d_in (SAELens' expected_average_only_in), so λ1
   * means the same on data of any scale; "auto" (default): expected_average_only_in for activation
   * files, none for the synthetic generator (whose λ1 defaults are tuned unscaled).
   */
  normalize_activations: "none" | "expected_average_only_in" | "auto";
  /** A latent that has not fired for this many steps counts as dead. */
  dead_steps: number;
  /** A latent firing on more than this fraction of rows counts as dense. */
  dense_threshold: number;
  /** Log (read back scalars) every N steps. */
  log_every: number;
  /** Write a checkpoint every N steps (0: only the final one). */
  checkpoint_every: number;
  /**
   * "synthetic", a path/glob of activation files, or "live": activations of the language model
   * `model` at `hook_name`, computed on the same device as the step from the text `dataset_path`
   * (src/lm/live.ts).
   */
  data: string;
  /**
   * Where the activations came from, under the names SAELens' config gives them (cfg.json,
   * `metadata`), so an export and `sae eval --model` know the model and hook: the model's name (a
   * Hugging Face repo id, or the base name of its directory or llama2.c file; "" when not recorded,
   * e.g. synthetic data).
   */
  model_name: string;
  /** The hook point, TransformerLens-named (`blocks.2.hook_resid_pre`); "" when not recorded. */
  hook_name: string;
  /** Tokens per context the activations were taken from, BOS included. */
  context_size: number;
  /** Whether each context began with BOS (SAELens' prepend_bos). */
  prepend_bos: boolean;
  /**
   * The text the activations came from (a path or dataset id); "" when not recorded. A live run
   * reads it: its text files, separated by the path-list separator (':'; ';' on Windows) as PATH.
   */
  dataset_path: string;
  /**
   * Live training (data "live"): the language model, a Hugging Face directory, a llama2.c `.bin`
   * or a repo id; "" otherwise.
   */
  model: string;
  /** Live training: the tokenizer file ("" : the one beside the model). */
  tokenizer: string;
  /** Live training: contexts per forward pass of the model (SAELens' store_batch_size_prompts). */
  lm_batch: number;
  /**
   * Live training: contexts whose activations (BOS left out) the mixing buffer holds, refilled
   * half at a time (SAELens' n_batches_in_buffer × store_batch_size_prompts); a multiple of
   * 2·lm_batch. Costs contexts·(context_size − 1)·d_in·4 bytes on the device and in checkpoints.
   */
  buffer_contexts: number;
  /**
   * Activation files only: skip rows holding NaN/Inf (and count them) instead of stopping with an
   * error naming the shard and row.
   */
  skip_bad_rows: boolean;
  /** Steps at the start with the reconstruction loss only (paper §4.4 phase 1: 1000). */
  recon_only_steps: number;
  /**
   * Every this many steps, latents that have not fired for more than half as many are resampled
   * toward badly reconstructed rows (dictionary_learning's `resample_steps`; src/sae/resample.ts).
   * 0: never. Meant for the ReLU variants (the top-k variants have AuxK).
   */
  resample_steps: number;
  /**
   * How rows are sampled and encoder rows set: "anthropic" (∝ ‖x − x̂‖², normalised rows) or
   * "dictionary_learning" (its code: ∝ ‖x − x̂‖, encoder row unnormalised).
   */
  resample_rule: "anthropic" | "dictionary_learning";
  /** Settings of the synthetic generator (used when data is "synthetic"). */
  synthetic: SyntheticConfig;
}

/** Whether inputs are scaled to mean norm √d_in under `cfg` ("auto" resolved by the data). */
export function normalizesInputs(
  cfg: Pick<CoreConfig, "normalize_activations" | "data">,
): boolean {
  const n = cfg.normalize_activations;
  return n === "expected_average_only_in" || (n === "auto" && cfg.data !== "synthetic");
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

/**
 * Defaults of the core options: CPU-sized and tuned for the synthetic data (squared loss, λ1 0.3,
 * lr 3e-3; see docs/method.md for why). configs/baseline.yaml has the paper's values.
 */
export const CORE_DEFAULTS: Omit<CoreConfig, "synthetic"> = {
  variant: "baseline",
  seed: 42,
  d_in: 64,
  d_sae: 512,
  batch: 256,
  steps: 3000,
  lr: 3e-3,
  warmup_steps: 100,
  weight_decay: 1e-2,
  beta1: 0.9,
  beta2: 0.999,
  adam_eps: 1e-8,
  l1: 0.3,
  recon_loss: "squared",
  apply_b_dec_to_input: true,
  gemm_f16: false,
  sparse_max_density: 0.05,
  sparse_min_flops: 2 ** 28,
  b_dec_init: "geometric_median",
  init_rows: 2048,
  normalize_activations: "auto",
  dead_steps: 1000,
  dense_threshold: 0.1,
  log_every: 50,
  checkpoint_every: 1000,
  data: "synthetic",
  model_name: "",
  hook_name: "",
  context_size: 128,
  prepend_bos: true,
  dataset_path: "",
  model: "",
  tokenizer: "",
  lm_batch: 32,
  buffer_contexts: 256,
  skip_bad_rows: false,
  recon_only_steps: 0,
  resample_steps: 0,
  resample_rule: "anthropic",
};

/** Allowed values of `recon_loss`. */
const RECON_LOSSES = ["l2", "squared"] as const satisfies readonly CoreConfig[
  "recon_loss"
][];
/** Allowed values of `b_dec_init`. */
const B_DEC_INITS = [
  "mean",
  "geometric_median",
  "zeros",
] as const satisfies readonly CoreConfig[
  "b_dec_init"
][];
/** Allowed values of `normalize_activations`. */
const NORMALIZATIONS = [
  "none",
  "expected_average_only_in",
  "auto",
] as const satisfies readonly CoreConfig[
  "normalize_activations"
][];

const UINT32_MAX = 0xffffffff;
const SEED: Rule = { kind: "int", min: 0, max: UINT32_MAX };

/** One rule per core key except `synthetic` (a section with its own rules) and `variant` (its
 * values are the registry's: src/config.ts). */
export const CORE_RULES: Record<Exclude<keyof CoreConfig, "synthetic" | "variant">, Rule> = {
  seed: SEED,
  d_in: { kind: "int", min: 1 },
  d_sae: { kind: "int", min: 1 },
  // One row per workgroup along a dispatch dimension: WebGPU guarantees at most 65535.
  batch: { kind: "int", min: 1, max: 65535 },
  steps: { kind: "int", min: 1 },
  lr: POSITIVE,
  warmup_steps: { kind: "int", min: 0 },
  weight_decay: NON_NEGATIVE,
  beta1: DECAY,
  beta2: DECAY,
  adam_eps: POSITIVE,
  l1: NON_NEGATIVE,
  recon_loss: { kind: "enum", values: RECON_LOSSES },
  apply_b_dec_to_input: { kind: "bool" },
  gemm_f16: { kind: "bool" },
  sparse_max_density: PROBABILITY,
  sparse_min_flops: NON_NEGATIVE,
  b_dec_init: { kind: "enum", values: B_DEC_INITS },
  init_rows: { kind: "int", min: 1 },
  normalize_activations: { kind: "enum", values: NORMALIZATIONS },
  dead_steps: { kind: "int", min: 1 },
  dense_threshold: PROBABILITY,
  log_every: { kind: "int", min: 1 },
  checkpoint_every: { kind: "int", min: 0 },
  data: { kind: "string" },
  model_name: { kind: "string", empty: true },
  hook_name: { kind: "string", empty: true },
  context_size: { kind: "int", min: 2 },
  prepend_bos: { kind: "bool" },
  dataset_path: { kind: "string", empty: true },
  model: { kind: "string", empty: true },
  tokenizer: { kind: "string", empty: true },
  lm_batch: { kind: "int", min: 1 },
  buffer_contexts: { kind: "int", min: 2 },
  skip_bad_rows: { kind: "bool" },
  recon_only_steps: { kind: "int", min: 0 },
  resample_steps: { kind: "int", min: 0 },
  resample_rule: { kind: "enum", values: ["anthropic", "dictionary_learning"] },
};

/**
 * Rules of the `synthetic` section. Partial on purpose: a key added to SyntheticConfig without a
 * rule here still gets its default's type checked (and tests/config_test.ts asks for a rule).
 */
export const SYNTHETIC_RULES: Partial<Record<keyof SyntheticConfig, Rule>> = {
  n_features: { kind: "int", min: 1 },
  mean_l0: NON_NEGATIVE,
  power_law_exponent: NON_NEGATIVE,
  magnitude_mean: NON_NEGATIVE,
  magnitude_std: NON_NEGATIVE,
  n_groups: { kind: "int", min: 0 },
  group_size: { kind: "int", min: 0 },
  group_correlation: PROBABILITY,
  n_parents: { kind: "int", min: 0 },
  children_per_parent: { kind: "int", min: 0 },
  parent_probability: PROBABILITY,
  concept_probability: PROBABILITY,
  // A phi coefficient, not a probability.
  concept_correlation: { kind: "number", min: -1, max: 1 },
  offset_norm: NON_NEGATIVE,
  noise_std: NON_NEGATIVE,
  seed: SEED,
};
