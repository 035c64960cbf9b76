/**
 * The paper's method (Section 4) on top of the shared step:
 *   - EMA activation frequency and its variance per latent (Eq. 1)            → paper stats
 *   - dynamic thresholds τ_i = τ_base(1 ∓ β var_i) as adaptive masking (Eq. 2) → encoder epilogue
 *   - importance s_i = ‖dL_recon/df_i‖₂ · freq_i / max_j freq_j (Eq. 3)         → grad_mask + stats
 *   - correlation-aware orthogonality λ R Σ_{i≠j} α_ij (w_i·w_j)² (Eqs. 4-5)     → chunked GEMMs
 *   - importance-weighted learning rates                                       → AdamW factors
 * The recon-only warmup phase (§4.4) is the schedule's recon_only_steps: until it ends the L1
 * term, thresholds, orthogonality and learning-rate factors are off; the statistics still update.
 * Importance (the raw-gradient pass, which also keeps dF dense on the sparse path) runs only when
 * the orthogonality weights or the learning-rate factors use it.
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
  type LrForm,
  needsImportance,
  orthoGradDispatches,
  type OrthoReduction,
  type PaperSpec,
  paperStatsKernel,
  type TauVariance,
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
  /**
   * What var(freq(f_i)) measures: "rate", the exponentially weighted variance of the batch firing
   * rate (≈ freq(1 − freq)/B on shuffled batches); "token", that of the per-token firing
   * indicator whose mean Eq. 1 tracks (≈ freq(1 − freq)). docs/method.md.
   */
  tau_variance: TauVariance;
  /** Mask latents whose pre-activation is not above their dynamic threshold (§4.1). */
  adaptive_threshold: boolean;
  /** λ_ortho of the correlation-aware orthogonality penalty (Eq. 4); 0 switches it off. */
  lambda_ortho: number;
  /** ε of Eq. 5. */
  ortho_eps: number;
  /**
   * The scale R of Eq. 4's Σ_{i≠j}: "sum" R = 1 (as printed); "mean" R = 1/(m(m−1)), the average
   * over ordered pairs; "per_latent" R = 1/m, each latent's sum over its partners averaged over
   * latents; "recon" R = L_recon/m, per latent in units of the batch's reconstruction loss (held
   * constant), which makes the term's weight independent of the activations' scale.
   * docs/method.md.
   */
  ortho_reduction: OrthoReduction;
  /** Weight α_ij by the importance product s_i s_j / max s_k s_l (Eq. 5); false: weight 1. */
  ortho_importance: boolean;
  /**
   * ρ of the importance-weighted learning rate: latent i's rows update with lr times a factor set
   * by `importance_lr_form`; 0 switches it off.
   */
  importance_lr: number;
  /**
   * The factor: "max" (1 − ρ) + ρ·s_i/max_j s_j (at most 1: unimportant latents slowed);
   * "mean" (1 − ρ) + ρ·s_i/mean_j s_j (the same redistribution with the average factor 1);
   * "inverse" 1 − ρ·s_i/max_j s_j (important latents slowed, under-used ones at the full rate).
   */
  importance_lr_form: LrForm;
}

/** Defaults (the paper's values where it gives one; configs/paper.yaml cites them) and rules. */
const PAPER_KEYS: KeySpecsOf<PaperConfig> = {
  ema_decay: key(0.999, DECAY),
  tau_base: key(0.3, NON_NEGATIVE),
  tau_beta: key(1.0, NON_NEGATIVE),
  tau_variance_sign: oneOf(["decrease", "increase"], "decrease"),
  tau_variance: oneOf(["rate", "token"], "rate"),
  adaptive_threshold: key(true, BOOL),
  lambda_ortho: key(0.1, NON_NEGATIVE),
  ortho_eps: key(1e-6, POSITIVE),
  ortho_reduction: oneOf(["mean", "sum", "per_latent", "recon"], "mean"),
  ortho_importance: key(true, BOOL),
  importance_lr: key(0.5, PROBABILITY),
  importance_lr_form: oneOf(["max", "mean", "inverse"], "max"),
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
    tauVariance: cfg.tau_variance,
    adaptive: cfg.adaptive_threshold,
    reconOnlySteps: cfg.recon_only_steps,
    lambdaOrtho: cfg.lambda_ortho,
    orthoEps: cfg.ortho_eps,
    orthoImportance: cfg.ortho_importance,
    orthoReduction: cfg.ortho_reduction,
    squared: cfg.recon_loss === "squared",
    importanceLr: cfg.importance_lr,
    lrForm: cfg.importance_lr_form,
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
    const pb = allocPaper(gpu, s);
    const P = bufs.params;
    const ortho = cfg.lambda_ortho > 0
      ? await orthoGradDispatches(
        gpu,
        cfg.d_sae,
        cfg.d_in,
        { wDec: P.wDec.p, gDec: P.wDec.g, weight: pb.weight, pscal: pb.pscal, acc: bufs.acc },
        undefined,
        { f16: cfg.gemm_f16 },
      )
      : [];
    const x = { dpre: bufs.dpre, f: bufs.f, state: bufs.state };
    return {
      hooks: {
        afterReconGrad: needsImportance(s) ? await gradMaskKernel(gpu, s, pb, x) : undefined,
        beforeUpdate: [
          await paperStatsKernel(gpu, s, pb, {
            fstats: bufs.fstats,
            state: bufs.state,
            rowstats: bufs.rowstats,
          }),
          ...ortho,
        ],
        lrScale: cfg.importance_lr > 0 ? pb.lrScale : undefined,
      },
      state: { ema_freq: pb.freq, ema_var: pb.fvar, tau: pb.tau, lr_scale: pb.lrScale },
    };
  },
};
