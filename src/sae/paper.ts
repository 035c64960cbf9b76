/**
 * The paper's method (Section 4) on top of the shared step:
 *   - EMA activation frequency and its variance per latent (Eq. 1)            → paper stats
 *   - dynamic thresholds τ_i = τ_base(1 ∓ β var_i) as adaptive masking (Eq. 2) → encoder epilogue
 *   - importance s_i = ‖dL_recon/df_i‖₂ · freq_i / max_j freq_j (Eq. 3)         → grad_mask + stats
 *   - correlation-aware orthogonality λ Σ_{i≠j} α_ij (w_i·w_j)² (Eqs. 4-5)       → chunked GEMMs
 *   - importance-weighted learning rates                                       → AdamW factors
 * The recon-only warmup phase (§4.4) is the schedule's recon_only_steps: until it ends the L1
 * term, thresholds, orthogonality and learning-rate factors are off; the statistics still update.
 * Readings of the paper's gaps: docs/method.md.
 */
import {
  allocPaper,
  gradMaskKernel,
  orthoGradDispatches,
  paperSpec,
  paperStatsKernel,
} from "../kernels/paper.ts";
import type { Variant } from "./step.ts";

/** Builds the method's hooks; its EMA statistics are checkpointed. */
export const paper: Variant = async ({ gpu, cfg, bufs }) => {
  const s = paperSpec(cfg);
  const pb = allocPaper(gpu, cfg.d_sae);
  const P = bufs.params;
  const ortho = cfg.lambda_ortho > 0
    ? await orthoGradDispatches(
      gpu,
      cfg.d_sae,
      cfg.d_in,
      {
        wDec: P.wDec.p,
        gDec: P.wDec.g,
        weight: pb.weight,
        pscal: pb.pscal,
      },
      undefined,
      { f16: cfg.gemm_f16 },
    )
    : [];
  return {
    hooks: {
      thresholds: cfg.adaptive_threshold ? pb.tau : undefined,
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
    extra: { ema_freq: pb.freq, ema_var: pb.fvar, tau: pb.tau, lr_scale: pb.lrScale },
  };
};
