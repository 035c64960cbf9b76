/**
 * TopK SAE (Gao et al. 2024), as SAELens' `TopKTrainingSAE` trains it: f = ReLU(TopK_k(pre)) per
 * row (the k largest pre-activations, ReLU after the selection: docs/architectures.md), the squared
 * reconstruction loss with no L1 term, and AuxK for dead latents (auxk.ts). The row top-k is the
 * encoder the variant declares, so training, the final evaluation, `sae eval`, the host encoder
 * and the export all select the same way; with exactly k kept per row the sparse-latent path takes
 * its lists from the selection.
 *
 * The keys `k`, `auxk` and `k_aux` are declared here and read by the other top-k variants
 * (batchtopk.ts, matryoshka.ts) too.
 */
import { key, type KeySpecsOf, oneOf, POSITIVE } from "../config_keys.ts";
import { auxkHooks, type AuxKKind } from "./auxk.ts";
import type { Variant } from "./variant.ts";

/** The top-k variants' shared keys. */
export interface TopKConfig {
  /**
   * topk: latents kept in every row (an integer ≤ d_sae; SAELens' `k`). batchtopk, matryoshka: the
   * mean kept per row, floor(k·batch) kept over the batch (may be fractional, as SAELens' float k).
   */
  k: number;
  /**
   * The dead-latent loss: "saelens" (SAELens' default: coefficient 1, scaled by min(dead/k_aux, 1),
   * no normalisation), "dictionary_learning" (Gao et al.'s α = 1/32, normalised by the residual's
   * variance), "off". src/sae/auxk.ts has the table.
   */
  auxk: AuxKKind;
  /** Dead latents per row in the AuxK reconstruction; 0: d_in / 2 (Gao et al. B.1). */
  k_aux: number;
}

/** Defaults (docs/architectures.md has the sources) and rules. */
const TOPK_KEYS: KeySpecsOf<TopKConfig> = {
  k: key(16, POSITIVE),
  auxk: oneOf(["saelens", "dictionary_learning", "off"], "saelens"),
  k_aux: { default: 0, rule: { kind: "int", min: 0 } },
};

/** The TopK SAE. */
export const topk: Variant<"topk", TopKConfig> = {
  name: "topk",
  keys: TOPK_KEYS,
  state: [],
  thresholds: () => null,
  topk: (cfg) => cfg.k,
  build: async (ctx) => {
    const { cfg } = ctx;
    // (k is checked, 1 ≤ k ≤ d_sae an integer, where the session builds the selection.)
    const pre = ctx.activation?.pre;
    if (!pre) throw new Error("topk: the session builds the row top-k before the variant");
    return {
      hooks: { noL1: true, ...await auxkHooks(ctx, cfg.auxk, cfg.k_aux, pre) },
      state: {},
    };
  },
};
