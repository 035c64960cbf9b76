/**
 * What an SAE variant is: a name, the config keys it owns, the per-latent state it checkpoints and
 * the changes it makes to the shared step ({@link StepHooks}, built once per run). A variant is one
 * file (baseline.ts, paper.ts, topk.ts, batchtopk.ts, jumprelu.ts, matryoshka.ts) registered by
 * one line in variants.ts; ARCHITECTURE.md says which hooks each uses.
 */
import type { CoreConfig } from "../config_core.ts";
import type { KeySpecsOf } from "../config_keys.ts";
import type { StepContext, StepHooks } from "./step.ts";

/** What a variant's build returns. */
export interface VariantParts {
  /**
   * Its changes to the shared step. The encoder the variant declares ({@link Variant.thresholds},
   * {@link Variant.topk}) is built by the session; `hooks.activation` replaces it in training only
   * (BatchTopK trains with the batch selection and encodes with its threshold).
   */
  hooks: Omit<StepHooks, "thresholds">;
  /** Its per-latent state buffers ([d_sae] f32 each), one per name of {@link Variant.state}. */
  state: Record<string, GPUBuffer>;
}

/**
 * An SAE variant named `N` whose own config fields are `C`; `R` are fields it reads that another
 * variant declares (the top-k variants share topk.ts's `k`; every config holds every variant's keys).
 */
export interface Variant<N extends string = string, C = Record<string, unknown>, R = unknown> {
  /** The config's `variant` value. */
  readonly name: N;
  /**
   * The config keys it owns: flat, next to the core keys (so YAML files, `--set` and config.yaml
   * spell them as before), each with its default and rule. Every config holds every variant's keys.
   */
  readonly keys: KeySpecsOf<C>;
  /** Its per-latent state, by name, as checkpoints store it (`extra.<name>`), in that order. */
  readonly state: readonly string[];
  /**
   * The state buffer that holds the thresholds τ the encoder applies under `cfg`, f = pre·1[pre >
   * max(τ, 0)] (on the GPU and on the host), or null for plain ReLU.
   */
  readonly thresholds: (cfg: CoreConfig & C & R) => string | null;
  /**
   * The row top-k the encoder applies under `cfg` (SAELens' TopK: f = ReLU(TopK_k(pre)) per row,
   * in training and at inference), or null; absent: null.
   */
  readonly topk?: (cfg: CoreConfig & C & R) => number | null;
  /** Builds its hooks and state buffers, once per run. */
  readonly build: (ctx: StepContext & { cfg: CoreConfig & C & R }) => Promise<VariantParts>;
}
