/**
 * The baseline ReLU SAE of the paper (Sections 3.1 and 4.4): f = ReLU(W_enc(x − b_dec) + b_enc),
 * x̂ = W_dec f + b_dec, L = mean_b ‖x − x̂‖₂ + λ1 mean_b ‖f‖₁, AdamW, unit-norm decoder. It is the
 * shared step with no hooks, no keys and no state of its own.
 */
import type { Variant } from "./variant.ts";

/** The baseline. */
export const baseline: Variant<"baseline", Record<never, never>> = {
  name: "baseline",
  keys: {},
  state: [],
  thresholds: () => null,
  build: () => Promise.resolve({ hooks: {}, state: {} }),
};
