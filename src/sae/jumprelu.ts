/**
 * JumpReLU SAE (Rajamanoharan et al. 2024; Gemma Scope), as SAELens' `JumpReLUTrainingSAE` trains
 * it: per-latent thresholds θ = exp(log θ), f = pre·1[pre > θ], straight-through gradients for
 * log θ with a rectangle kernel of bandwidth ε, and an L0 penalty λ·mean_b Σ_i H(pre − θ_i) through
 * the same estimator, no L1 term (src/kernels/jumprelu.ts; docs/architectures.md).
 *
 * log θ is a parameter of its own: AdamW with the run's settings (lr, warmup, betas, and the
 * weight decay the project applies to every parameter, as torch.optim.AdamW does; SAELens' Adam has
 * none: set weight_decay 0 to match it), its moments checkpointed as variant state. After its
 * update θ = exp(log θ) is written to the `threshold` state, the encoder's thresholds at inference.
 *
 * Defaults are SAELens': ε = `jumprelu_bandwidth` 0.05 (Gemma Scope and dictionary_learning use
 * 0.001), θ₀ = `jumprelu_init_threshold` 0.01, λ = `l0_coefficient` 1; SAELens' optional L0
 * warm-up (`l0_warm_up_steps`, 0 by default), tanh sparsity mode and pre-activation loss are not
 * implemented.
 */
import { key, type KeySpecsOf, POSITIVE } from "../config_keys.ts";
import { adamSpec, adamwKernel } from "../kernels/adamw.ts";
import { jumpReluBackwardKernel, thetaExpKernel, thresholdActKernel } from "../kernels/jumprelu.ts";
import type { Variant } from "./variant.ts";

/** JumpReLU's keys (SAELens' names). */
export interface JumpReluConfig {
  /** ε, the rectangle kernel's bandwidth in the straight-through estimator. */
  jumprelu_bandwidth: number;
  /** θ₀, every latent's initial threshold. */
  jumprelu_init_threshold: number;
  /** λ, the L0 penalty's weight: the sparsity knob. */
  l0_coefficient: number;
}

/** Defaults: SAELens'. */
const JUMPRELU_KEYS: KeySpecsOf<JumpReluConfig> = {
  jumprelu_bandwidth: key(0.05, POSITIVE),
  jumprelu_init_threshold: key(0.01, POSITIVE),
  l0_coefficient: key(1, { kind: "number", min: 0 }),
};

/** The JumpReLU SAE. */
export const jumprelu: Variant<"jumprelu", JumpReluConfig> = {
  name: "jumprelu",
  keys: JUMPRELU_KEYS,
  state: ["log_threshold", "log_threshold_adam_m", "log_threshold_adam_v", "threshold"],
  thresholds: () => "threshold",
  build: async ({ gpu, cfg, bufs }) => {
    const B = cfg.batch, m = cfg.d_sae;
    const theta0 = cfg.jumprelu_init_threshold;
    const logTheta = gpu.upload("log threshold", new Float32Array(m).fill(Math.log(theta0)));
    const gLogTheta = gpu.buffer("log threshold grad", m * 4);
    const adamM = gpu.buffer("log threshold adam m", m * 4);
    const adamV = gpu.buffer("log threshold adam v", m * 4);
    const threshold = gpu.upload("threshold", new Float32Array(m).fill(theta0));
    const pre = gpu.buffer("pre", B * m * 4); // [B, m] pre-activations
    const l0Row = gpu.buffer("jumprelu l0 rows", B * 4); // [B] u32
    const l0Coef = {
      buf: gpu.upload("l0 coefficient", new Float32Array([cfg.l0_coefficient])),
      index: 0,
    };
    return {
      hooks: {
        activation: {
          pre,
          dispatches: await thresholdActKernel(gpu, { B, m }, {
            pre,
            f: bufs.f,
            l0Row,
            theta: { kind: "log", buf: logTheta },
          }),
        },
        noL1: true,
        afterReconGrad: await jumpReluBackwardKernel(
          gpu,
          { B, m, bandwidth: cfg.jumprelu_bandwidth },
          { pre, dpre: bufs.dpre, logTheta, gLogTheta, l0Coef },
        ),
        beforeUpdate: [
          ...await adamwKernel(gpu, "log_threshold", m, adamSpec(cfg), {
            p: logTheta,
            g: gLogTheta,
            m: adamM,
            v: adamV,
          }, bufs.state),
          await thetaExpKernel(gpu, m, { logTheta, theta: threshold }),
        ],
      },
      state: {
        log_threshold: logTheta,
        log_threshold_adam_m: adamM,
        log_threshold_adam_v: adamV,
        threshold,
      },
    };
  },
};
