/**
 * BatchTopK SAE (Bussmann et al. 2024), as SAELens' `BatchTopKTrainingSAE` trains it: in training
 * f keeps the floor(k·batch) largest ReLU(pre) over the whole batch (src/kernels/topk.ts), with no
 * L1 term and TopK's AuxK; a running threshold θ follows the smallest positive kept value and
 * replaces the batch rule at inference: f = ReLU(pre)·1[pre > θ], which is how SAELens saves it
 * (a JumpReLU SAE with threshold θ in every slot). θ is the `threshold` state ([d_sae], θ in every
 * slot), checkpointed, applied by the final evaluation, `sae eval` and the host encoder, and
 * exported as JumpReLU's `threshold`.
 *
 * θ's rule (`topk_threshold`): "saelens" (θ₀ = 0, θ ← (1 − lr)·θ + lr·v whenever the batch kept a
 * positive value, lr = topk_threshold_lr) or "dictionary_learning" (θ₀ = −1, from
 * threshold_start_step on θ ← v the first time, then β·θ + (1 − β)·v, β = threshold_beta).
 */
import { DECAY, key, type KeySpecsOf, oneOf, PROBABILITY } from "../config_keys.ts";
import type { CoreConfig } from "../config_core.ts";
import {
  allocBatchTopKScratch,
  batchThresholdKernel,
  batchTopKDispatches,
  THETA_INIT,
  type ThetaRule,
  thetaSpreadKernel,
} from "../kernels/topk.ts";
import { auxkHooks } from "./auxk.ts";
import type { Activation } from "./forward.ts";
import type { StepContext } from "./step.ts";
import type { TopKConfig } from "./topk.ts";
import type { Variant } from "./variant.ts";

/** BatchTopK's keys (Matryoshka, which selects the same way, reads them too). */
export interface BatchTopKConfig {
  /** How θ follows the batch: SAELens' rule or dictionary_learning's (module doc). */
  topk_threshold: ThetaRule["kind"];
  /** SAELens' `topk_threshold_lr`: the rate of θ's moving average. */
  topk_threshold_lr: number;
  /** dictionary_learning's `threshold_beta`: θ's decay. */
  threshold_beta: number;
  /** dictionary_learning's `threshold_start_step`: θ is left alone until this step. */
  threshold_start_step: number;
}

/** Defaults: SAELens' rule and its lr; dictionary_learning's β and start step for its rule. */
const BATCHTOPK_KEYS: KeySpecsOf<BatchTopKConfig> = {
  topk_threshold: oneOf(["saelens", "dictionary_learning"], "saelens"),
  topk_threshold_lr: key(0.01, PROBABILITY),
  threshold_beta: key(0.999, DECAY),
  threshold_start_step: { default: 1000, rule: { kind: "int", min: 0 } },
};

/** θ's rule from a config. */
export function thetaRule(cfg: BatchTopKConfig): ThetaRule {
  return cfg.topk_threshold === "saelens" ? { kind: "saelens", lr: cfg.topk_threshold_lr } : {
    kind: "dictionary_learning",
    beta: cfg.threshold_beta,
    startStep: cfg.threshold_start_step,
  };
}

/**
 * The batch selection as the training activation, θ's update after it and θ spread over the
 * `threshold` state: the activation, and that state ([d_sae] f32, θ₀ in every slot).
 */
export async function batchTopKActivation(
  ctx: StepContext & { cfg: CoreConfig & TopKConfig & BatchTopKConfig },
): Promise<{ activation: Activation; threshold: GPUBuffer }> {
  const { gpu, cfg, bufs } = ctx;
  const B = cfg.batch, m = cfg.d_sae;
  const rule = thetaRule(cfg);
  const pre = gpu.buffer("pre", B * m * 4); // [B, m] pre-activations
  const scratch = allocBatchTopKScratch(gpu, B);
  const threshold = gpu.upload("threshold", new Float32Array(m).fill(THETA_INIT[rule.kind]));
  const theta = { buf: threshold, index: 0 };
  return {
    activation: {
      pre,
      dispatches: [
        ...await batchTopKDispatches(gpu, { B, m, k: cfg.k }, { pre, f: bufs.f, scratch }),
        await batchThresholdKernel(gpu, rule, { scratch, theta, state: bufs.state }),
        await thetaSpreadKernel(gpu, m, theta),
      ],
    },
    threshold,
  };
}

/** The BatchTopK SAE. */
export const batchtopk: Variant<"batchtopk", BatchTopKConfig, TopKConfig> = {
  name: "batchtopk",
  keys: BATCHTOPK_KEYS,
  state: ["threshold"],
  thresholds: () => "threshold",
  build: async (ctx) => {
    const { activation, threshold } = await batchTopKActivation(ctx);
    const aux = await auxkHooks(ctx, ctx.cfg.auxk, ctx.cfg.k_aux, activation.pre);
    return { hooks: { activation, noL1: true, ...aux }, state: { threshold } };
  },
};
