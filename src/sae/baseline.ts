/**
 * The baseline ReLU SAE of the paper (Sections 3.1 and 4.4): f = ReLU(W_enc(x − b_dec) + b_enc),
 * x̂ = W_dec f + b_dec, L = mean_b ‖x − x̂‖₂ + λ1 mean_b ‖f‖₁, AdamW, unit-norm decoder. It is the
 * shared step with no hooks.
 */
import type { Dispatch } from "../gpu/dispatch.ts";
import { buildStep, type StepContext } from "./step.ts";

/** Builds the baseline's step. */
export function baselineStep(ctx: StepContext): Promise<Dispatch[]> {
  return buildStep(ctx, { beforeUpdate: [], afterUpdate: [], reconOnlySteps: 0 });
}
