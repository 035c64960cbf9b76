/**
 * What an SAE variant is: a name, the config keys it owns, the per-latent state it checkpoints and
 * the changes it makes to the shared step ({@link StepHooks}, built once per run). A variant is one
 * file (baseline.ts, paper.ts) registered by one line in variants.ts; ARCHITECTURE.md says which
 * hooks the architectures still to come would use.
 */
import type { CoreConfig } from "../config_core.ts";
import type { KeySpecsOf } from "../config_keys.ts";
import type { StepContext, StepHooks } from "./step.ts";

/** What a variant's build returns. */
export interface VariantParts {
  /** Its changes to the shared step (the encoder's thresholds come from {@link Variant.thresholds}). */
  hooks: Omit<StepHooks, "thresholds">;
  /** Its per-latent state buffers ([d_sae] f32 each), one per name of {@link Variant.state}. */
  state: Record<string, GPUBuffer>;
}

/** An SAE variant named `N` whose own config fields are `C`. */
export interface Variant<N extends string = string, C = Record<string, unknown>> {
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
  readonly thresholds: (cfg: CoreConfig & C) => string | null;
  /** Builds its hooks and state buffers, once per run. */
  readonly build: (ctx: StepContext & { cfg: CoreConfig & C }) => Promise<VariantParts>;
}
