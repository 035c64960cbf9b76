/**
 * The paper's method (Section 4) on top of the shared step:
 *   - EMA activation frequency and its variance per latent (Eq. 1)            → paper stats
 *   - dynamic thresholds τ_i = τ_base(1 ∓ β var_i) as adaptive masking (Eq. 2) → encoder epilogue
 *   - importance s_i = ‖dL_recon/df_i‖₂ · freq_i / max_j freq_j (Eq. 3)         → grad_mask + stats
 *   - correlation-aware orthogonality λ Σ_{i≠j} α_ij (w_i·w_j)² (Eqs. 4-5)       → chunked GEMMs
 *   - importance-weighted learning rates                                       → AdamW factors
 * The recon-only warmup phase (§4.4) is the schedule's recon_only_steps: until it ends the L1
 * term, thresholds, orthogonality and learning-rate factors are off; the statistics still update.
 * Readings of the paper's gaps: docs/method.md. Its values at the paper's scale: configs/paper.yaml.
 */
import {
  BOOL,
  DECAY,
  key,
  type KeySpecsOf,
  NON_NEGATIVE,
  oneOf,
  POSITIVE,
  PROBABILITY,
} from "../config_keys.ts";
import type { CoreConfig } from "../config_core.ts";
import {
  allocPaper,
  gradMaskKernel,
  orthoGradDispatches,
  type PaperSpec,
  paperStatsKernel,
} from "../kernels/paper.ts";
import type { Variant } from "./variant.ts";

/** The method's config keys. */
export interface PaperConfig {
  /** γ of the EMA activation frequency (Eq. 1). */
  ema_decay: number;
  /** τ_base of the dynamic threshold (Eq. 2). */
  tau_base: number;
  /** β, the variance sensitivity of the threshold (Eq. 2). */
  tau_beta: number;
  /**
   * "decrease": τ = τ_base(1 − β·var), Eq. 2 as printed; "increase": τ = τ_base(1 + β·var), the
   * prose ("erratic features see increased thresholds").
   */
  tau_variance_sign: "decrease" | "increase";
  /** Mask latents whose pre-activation is not above their dynamic threshold (§4.1). */
  adaptive_threshold: boolean;
  /** λ_ortho of the correlation-aware orthogonality penalty (Eq. 4); 0 switches it off. */
  lambda_ortho: number;
  /** ε of Eq. 5. */
  ortho_eps: number;
  /**
   * "mean": the penalty is averaged over the m(m−1) ordered pairs; "sum": summed, as Eq. 4 prints
   * it (then λ_ortho's effect grows with d_sae²; docs/method.md).
   */
  ortho_reduction: "mean" | "sum";
  /** Weight α_ij by the importance product s_i s_j / max s_k s_l (Eq. 5); false: weight 1. */
  ortho_importance: boolean;
  /**
   * ρ of the importance-weighted learning rate: latent i's rows update with
   * lr · ((1 − ρ) + ρ · s_i / max_j s_j); 0 switches it off.
   */
  importance_lr: number;
}

/** Defaults (the paper's values where it gives one; configs/paper.yaml cites them) and rules. */
const PAPER_KEYS: KeySpecsOf<PaperConfig> = {
  ema_decay: key(0.999, DECAY),
  tau_base: key(0.3, NON_NEGATIVE),
  tau_beta: key(1.0, NON_NEGATIVE),
  tau_variance_sign: oneOf(["decrease", "increase"], "decrease"),
  adaptive_threshold: key(true, BOOL),
  lambda_ortho: key(0.1, NON_NEGATIVE),
  ortho_eps: key(1e-6, POSITIVE),
  ortho_reduction: oneOf(["mean", "sum"], "mean"),
  ortho_importance: key(true, BOOL),
  importance_lr: key(0.5, PROBABILITY),
};

/** The statistics kernels' settings from a config. */
export function paperSpec(cfg: CoreConfig & PaperConfig): PaperSpec {
  return {
    batch: cfg.batch,
    dSae: cfg.d_sae,
    emaDecay: cfg.ema_decay,
    tauBase: cfg.tau_base,
    tauBeta: cfg.tau_beta,
    tauSign: cfg.tau_variance_sign,
    adaptive: cfg.adaptive_threshold,
    lambdaOrtho: cfg.lambda_ortho,
    orthoEps: cfg.ortho_eps,
    orthoImportance: cfg.ortho_importance,
    orthoMean: cfg.ortho_reduction === "mean",
    importanceLr: cfg.importance_lr,
  };
}

/** The method: its EMA statistics, thresholds and learning-rate factors are checkpointed. */
export const paper: Variant<"paper", PaperConfig> = {
  name: "paper",
  keys: PAPER_KEYS,
  state: ["ema_freq", "ema_var", "tau", "lr_scale"],
  thresholds: (cfg) => cfg.adaptive_threshold ? "tau" : null,
  build: async ({ gpu, cfg, bufs }) => {
    const s = paperSpec(cfg);
    const pb = allocPaper(gpu, cfg.d_sae);
    const P = bufs.params;
    const ortho = cfg.lambda_ortho > 0
      ? await orthoGradDispatches(
        gpu,
        cfg.d_sae,
        cfg.d_in,
        { wDec: P.wDec.p, gDec: P.wDec.g, weight: pb.weight, pscal: pb.pscal },
        undefined,
        { f16: cfg.gemm_f16 },
      )
      : [];
    return {
      hooks: {
        afterReconGrad: await gradMaskKernel(gpu, s, pb, {
          dpre: bufs.dpre,
          f: bufs.f,
          state: bufs.state,
        }),
        beforeUpdate: [
          await paperStatsKernel(gpu, s, pb, { fstats: bufs.fstats, state: bufs.state }),
          ...ortho,
        ],
        lrScale: cfg.importance_lr > 0 ? pb.lrScale : undefined,
      },
      state: { ema_freq: pb.freq, ema_var: pb.fvar, tau: pb.tau, lr_scale: pb.lrScale },
    };
  },
};
