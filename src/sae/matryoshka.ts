/**
 * Matryoshka BatchTopK SAE (Bussmann et al. 2025, "Learning Multi-Level Features with Matryoshka
 * SAEs"; Nabeshima 2024), as dictionary_learning's `MatryoshkaBatchTopKTrainer` trains it: one
 * BatchTopK selection over the whole dictionary (batchtopk.ts: θ, its rule and AuxK included), and
 * the dictionary split into groups of sizes floor(fraction·d_sae) (the last takes the remainder);
 * level p reconstructs x from the first p + 1 groups, x̂_p = f[:, :w_p]·W_dec[:w_p] + b_dec, and
 * the loss sums the levels' reconstruction terms, so early latents must explain x on their own.
 * At inference it is BatchTopK's JumpReLU with threshold θ, as both libraries save it.
 *
 * Where the libraries differ (docs/architectures.md, "Matryoshka"): SAELens'
 * `MatryoshkaBatchTopKTrainingSAE` re-runs BatchTopK on each inner level's prefix of pre instead
 * of cutting the one selection, and sums the levels unweighted; dictionary_learning weights each
 * level by 1/G and averages (Σ_p L_p / G² in all). The sum here has SAELens' scale, so AuxK's
 * coefficient means what it means for topk and batchtopk; under Adam the overall scale matters only
 * against AuxK.
 *
 * In the step: after the forward pass, the inner levels' decodes (GEMMs over a prefix of f's
 * columns and W_dec's rows) and their residual gradients folded into dL/dx̂ with each later group's
 * correction (src/kernels/matryoshka.ts); dF then gives every latent the gradient of all levels,
 * the corrections (accumulating GEMMs over row blocks of W_dec) take away the levels a group is not
 * in, and the mask of BatchTopK's autograd follows; the corrections of dW_dec join it before the
 * update. The logged loss is the whole dictionary's reconstruction term.
 */
import type { Dispatch } from "../gpu/dispatch.ts";
import type { KeySpecsOf } from "../config_keys.ts";
import type { CoreConfig } from "../config_core.ts";
import { UserError } from "../errors.ts";
import { gemmDispatches } from "../kernels/gemm/mod.ts";
import { maskGradKernel, prefixResidualKernel } from "../kernels/matryoshka.ts";
import { auxkHooks } from "./auxk.ts";
import { batchTopKActivation, type BatchTopKConfig } from "./batchtopk.ts";
import type { TopKConfig } from "./topk.ts";
import type { Variant } from "./variant.ts";

/** Matryoshka's key. */
export interface MatryoshkaConfig {
  /**
   * The groups' sizes as fractions of d_sae, comma-separated, summing to 1 (dictionary_learning's
   * `group_fractions`): group i has floor(fraction_i·d_sae) latents, the last the remainder.
   */
  matryoshka_fractions: string;
}

/** Default: doubling groups (the fractions of a published dictionary_learning run). */
const MATRYOSHKA_KEYS: KeySpecsOf<MatryoshkaConfig> = {
  matryoshka_fractions: { default: "0.0625,0.125,0.25,0.5625", rule: { kind: "string" } },
};

/**
 * The levels' widths w_0 < ... < w_{G−1} = d_sae from `matryoshka_fractions`; a malformed list is
 * a UserError.
 */
export function matryoshkaWidths(cfg: Pick<CoreConfig, "d_sae"> & MatryoshkaConfig): number[] {
  const text = cfg.matryoshka_fractions;
  const fr = text.split(",").map((s) => Number(s.trim()));
  const sum = fr.reduce((a, b) => a + b, 0);
  if (fr.some((v) => !(v > 0)) || Math.abs(sum - 1) > 1e-6) {
    throw new UserError(
      `matryoshka_fractions '${text}' must be positive numbers separated by commas that sum to ` +
        `1 (they sum to ${sum})`,
    );
  }
  const m = cfg.d_sae;
  const sizes = fr.slice(0, -1).map((v) => Math.floor(v * m));
  sizes.push(m - sizes.reduce((a, b) => a + b, 0));
  if (sizes.some((n) => n < 1)) {
    throw new UserError(
      `matryoshka_fractions '${text}' leaves a group of d_sae = ${m} empty: use fewer or larger ` +
        `fractions`,
    );
  }
  let w = 0;
  return sizes.map((n) => w += n);
}

/** The Matryoshka BatchTopK SAE. */
export const matryoshka: Variant<"matryoshka", MatryoshkaConfig, TopKConfig & BatchTopKConfig> = {
  name: "matryoshka",
  keys: MATRYOSHKA_KEYS,
  state: ["threshold"],
  thresholds: () => "threshold",
  build: async (ctx) => {
    const { gpu, cfg, bufs } = ctx;
    const B = cfg.batch, d = cfg.d_in, m = cfg.d_sae;
    const widths = matryoshkaWidths(cfg);
    const levels = widths.length - 1;
    for (
      const [what, n] of [["f", B * m], ["W_dec", m * d], [
        "the prefix residuals",
        levels * B * d,
      ]] as const
    ) {
      if (n * 4 > gpu.maxBinding) {
        throw new UserError(
          `variant matryoshka binds ${what} (${
            (n * 4 / 2 ** 20).toFixed(1)
          } MiB) whole, over this ` +
            `adapter's storage-binding limit: lower batch or d_sae`,
        );
      }
    }
    const { activation, threshold } = await batchTopKActivation(ctx);
    const aux = await auxkHooks(ctx, cfg.auxk, cfg.k_aux, activation.pre);
    const P = bufs.params;
    const f16 = { f16: cfg.gemm_f16 };
    const xhatP = gpu.buffer("matryoshka xhat", Math.max(levels, 1) * B * d * 4); // [levels, B, d]
    const negT = gpu.buffer("matryoshka corrections", Math.max(levels, 1) * B * d * 4); // same
    const decodes: Dispatch[] = [], dpreFix: Dispatch[] = [], dWdecFix: Dispatch[] = [];
    for (let p = 0; p < levels; p++) {
      decodes.push(
        ...await gemmDispatches(
          gpu,
          {
            label: "matryoshka decode",
            M: B,
            N: d,
            K: widths[p],
            transA: false,
            transB: false,
            epilogue: "bias",
          },
          { a: bufs.f, b: P.wDec.p, c: xhatP, e: P.bDec.p },
          { ...f16, layout: { lda: m, offC: p * B * d } },
        ),
      );
      // Group p + 1 (latents w_p .. w_{p+1}) is absent from levels 0..p: negT[p] takes them away.
      const start = widths[p], size = widths[p + 1] - widths[p];
      dpreFix.push(
        ...await gemmDispatches(
          gpu,
          {
            label: "matryoshka dF",
            M: B,
            N: size,
            K: d,
            transA: false,
            transB: true,
            epilogue: "accumulate",
          },
          { a: negT, b: P.wDec.p, c: bufs.dpre },
          { ...f16, layout: { offA: p * B * d, offB: start * d, ldc: m, offC: start } },
        ),
      );
      dWdecFix.push(
        ...await gemmDispatches(
          gpu,
          {
            label: "matryoshka dW_dec",
            M: size,
            N: d,
            K: B,
            transA: true,
            transB: false,
            epilogue: "accumulate",
          },
          { a: bufs.f, b: negT, c: P.wDec.g },
          { ...f16, layout: { lda: m, offA: start, offB: p * B * d, offC: start * d } },
        ),
      );
    }
    const inner = levels === 0 ? [] : [
      ...decodes,
      await prefixResidualKernel(
        gpu,
        { B, d, levels, squared: cfg.recon_loss === "squared" },
        { x: bufs.x, xhatP, negT, dxhat: bufs.dxhat },
      ),
    ];
    return {
      hooks: {
        activation,
        noL1: true,
        afterForward: [...inner, ...(aux.afterForward ?? [])],
        afterReconGrad: [
          ...dpreFix,
          await maskGradKernel(gpu, B * m, { f: bufs.f, dpre: bufs.dpre }),
        ],
        afterDpre: aux.afterDpre,
        dpreBeyondF: aux.dpreBeyondF,
        beforeUpdate: [...dWdecFix, ...(aux.beforeUpdate ?? [])],
      },
      state: { threshold },
    };
  },
};
