/**
 * The baseline ReLU SAE of the paper (Sections 3.1 and 4.4): f = ReLU(W_enc(x − b_dec) + b_enc),
 * x̂ = W_dec f + b_dec, L = mean_b ‖x − x̂‖₂ + λ1 mean_b ‖f‖₁, AdamW, unit-norm decoder. It is the
 * shared step with no hooks.
 */
import type { Variant } from "./step.ts";

/** The baseline: no hooks, no extra state. */
export const baseline: Variant = () => Promise.resolve({ hooks: {}, extra: {} });
