/**
 * AuxK (Gao et al. 2024 §A.2), the dead-latent loss the top-k variants (topk.ts, batchtopk.ts,
 * matryoshka.ts) share: in each row the k_aux dead latents with the largest pre-activations
 * reconstruct the residual e = x − x̂ (held constant), ê = auxf·W_dec without b_dec, and
 * L_aux = coef·scale·mean_b ‖ê − e‖² (/ Σ_d Var_b(e) where normalised) joins the loss. Two
 * definitions (docs/architectures.md, "AuxK"):
 *
 * | `auxk`                | coef | scale                 | normalised | ranks      | source                                  |
 * | --------------------- | ---: | --------------------- | ---------- | ---------- | --------------------------------------- |
 * | `saelens` (default)   |    1 | min(dead / k_aux, 1)  | no         | pre        | SAELens `calculate_topk_aux_loss`       |
 * | `dictionary_learning` | 1/32 | 1                     | yes        | ReLU(pre)  | dictionary_learning `get_auxiliary_loss`, Gao et al.'s α |
 *
 * A latent is dead when it has not fired for `dead_steps` steps (SAELens' dead_feature_window is
 * this with dead_steps = window + 2; dictionary_learning counts 10M tokens instead).
 *
 * In the step: the dead mask, the selection, ê, the loss and g = dL_aux/dê after the forward pass
 * (before the statistics update last-fired); g·W_dec[j] into dL/dpre of the listed latents after
 * dF; dW_dec += auxfᵀ·g before the update. dL/dpre then reaches latents where f = 0, so the sparse
 * path keeps dW_enc and db_enc dense. On a step without dead latents (every step before
 * dead_steps) the loss is 0 and a plan dispatch skips the rest on the GPU (indirect dispatch).
 */
import type { CoreConfig } from "../config_core.ts";
import { gemmDispatches } from "../kernels/gemm/mod.ts";
import {
  allocAuxKScratch,
  allocTopKLists,
  auxGradKernel,
  type AuxKSpec,
  auxLossDispatches,
  auxPlanDispatches,
  deadMaskKernel,
  rowTopKKernel,
} from "../kernels/topk.ts";
import { UserError } from "../errors.ts";
import type { StepContext, StepHooks } from "./step.ts";

/** Which AuxK loss a top-k variant adds. */
export type AuxKKind = "saelens" | "dictionary_learning" | "off";

/** The kernels' spec of `kind` for a batch of B rows of d_in, k_aux given (0: d_in / 2). */
export function auxkSpec(
  kind: Exclude<AuxKKind, "off">,
  cfg: Pick<CoreConfig, "batch" | "d_in">,
  kAux: number,
): AuxKSpec & { reluBefore: boolean } {
  const sae = kind === "saelens";
  return {
    B: cfg.batch,
    d: cfg.d_in,
    kAux: kAux > 0 ? kAux : Math.floor(cfg.d_in / 2),
    coef: sae ? 1 : 1 / 32,
    deadScale: sae,
    normalize: !sae,
    reluBefore: !sae,
  };
}

/**
 * The step hooks of AuxK over the pre-activations `pre` [B, d_sae] (the encoder's output before
 * the variant's activation); nothing where `kind` is "off".
 */
export async function auxkHooks(
  ctx: StepContext,
  kind: AuxKKind,
  kAux: number,
  pre: GPUBuffer,
): Promise<Pick<StepHooks, "afterForward" | "afterDpre" | "beforeUpdate" | "dpreBeyondF">> {
  if (kind === "off") return {};
  const { gpu, cfg, bufs } = ctx;
  const B = cfg.batch, d = cfg.d_in, m = cfg.d_sae;
  const s = auxkSpec(kind, cfg, kAux);
  const k = Math.min(s.kAux, m);
  if (!(Number.isInteger(s.kAux) && s.kAux >= 1)) {
    throw new UserError(`k_aux must be a positive integer (0: d_in / 2), got ${kAux}`);
  }
  const dead = gpu.buffer("auxk dead", m * 4); // [m] u32: 1 where dead
  const aux = gpu.buffer("auxk scalars", 4 * 4); // [4] f32: AUX_INDEX
  const auxf = gpu.buffer("auxk f", B * m * 4); // [B, m] the dead latents' kept values
  const recons = gpu.buffer("auxk recons", B * d * 4); // [B, d] ê = auxf·W_dec
  const g = gpu.buffer("auxk grad", B * d * 4); // [B, d] dL_aux/dê
  const lists = allocTopKLists(gpu, B, k);
  const W = bufs.params.wDec;
  const f16 = { f16: cfg.gemm_f16 };
  const forward = [
    ...await rowTopKKernel(
      gpu,
      { B, m, k, reluBefore: s.reluBefore, reluAfter: false },
      { pre, f: auxf, lists, mask: dead },
      { label: "auxk topk" },
    ),
    ...await gemmDispatches(
      gpu,
      { label: "auxk decode", M: B, N: d, K: m, transA: false, transB: false, epilogue: "none" },
      { a: auxf, b: W.p, c: recons },
      f16,
    ),
    ...await auxLossDispatches(gpu, s, {
      x: bufs.x,
      xhat: bufs.xhat,
      recons,
      g,
      aux,
      scratch: allocAuxKScratch(gpu, B, d),
    }),
  ];
  const grad = await auxGradKernel(
    gpu,
    { B, m, d, kAux: k, reluBefore: s.reluBefore },
    { lists, g, wDec: W.p, dpre: bufs.dpre },
  );
  const dWdec = await gemmDispatches(
    gpu,
    { label: "auxk dW_dec", M: m, N: d, K: B, transA: true, transB: false, epilogue: "accumulate" },
    { a: auxf, b: g, c: W.g },
    f16,
  );
  // Until a latent dies (dead_steps into the run at the earliest) AuxK is 0: skip its work.
  const { plan, planned } = await auxPlanDispatches(gpu, aux, [...forward, ...grad, ...dWdec]);
  const at = (i: number, n: number) => planned.slice(i, i + n);
  return {
    afterForward: [
      await deadMaskKernel(gpu, m, cfg.dead_steps, {
        lastFired: bufs.lastFired,
        state: bufs.state,
        dead,
        aux,
      }),
      plan,
      ...at(0, forward.length),
    ],
    afterDpre: at(forward.length, grad.length),
    beforeUpdate: at(forward.length + grad.length, dWdec.length),
    dpreBeyondF: true,
  };
}
