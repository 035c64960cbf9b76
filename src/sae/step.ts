/**
 * The training step, in order, as one list of GPU dispatches built once per run:
 *
 *   schedule      st.step += 1; lr (warmup), Adam bias powers, L1 coefficient      [1]
 *   x̄             xmean = mean_b x                                                 [d]
 *   prepare       x ← scale·x;  xc = x − b_dec                                      [B,d]
 *   encode        f = ReLU(xc·W_encᵀ + b_enc) (or the variant's activation of pre)  [B,m]
 *   decode        x̂ = f·W_dec + b_dec                                               [B,d]
 *   residual      dL/dx̂ = r/(B‖r‖) (or 2r/B), row stats                              [B,d]
 *   (variant)     afterForward: extra losses and their residual gradients
 *   dF            dL/dpre = (dL/dx̂·W_decᵀ + λ1/B)·1[f>0]                            [B,m]
 *   (variant)     afterReconGrad, afterDpre: gradient into dL/dpre
 *   dW_dec        fᵀ·dL/dx̂                                                          [m,d]
 *   dW_enc        (dL/dpre)ᵀ·xc                                                     [m,d]
 *   db_enc        Σ_b dL/dpre                                                       [m]
 *   db_dec        Σ_b dL/dx̂ − db_enc·W_enc                                          [d]
 *   stats         per-latent fires and Σf, last-fired step                          [m]
 *   metrics       fold the step's statistics into the accumulators                  [16]
 *   project       remove each dW_dec row's component along its (unit) decoder row   [m,d]
 *   adamw ×4      update W_enc, b_enc, W_dec, b_dec
 *   normalize     decoder rows back to unit norm                                    [m,d]
 *
 * With sparse_max_density > 0 (src/kernels/sparse.ts), f's active entries are listed after the
 * encoder (CSR) and a plan dispatch picks, on the GPU, per step: the dense decode, dF, dW_dec and
 * dW_enc GEMMs, or sparse kernels over the active entries (CSC lists built for the backward).
 *
 * A variant (src/sae/variant.ts; baseline.ts, paper.ts, topk.ts, ...) supplies the pieces it
 * changes through {@link StepHooks}; this file never needs to know which variant runs.
 */
import type { Gpu } from "../gpu/device.ts";
import type { Dispatch } from "../gpu/dispatch.ts";
import { adamSpec, adamwKernel } from "../kernels/adamw.ts";
import { normalizeKernel, projectGradKernel } from "../kernels/decoder.ts";
import { gemmDispatches } from "../kernels/gemm/mod.ts";
import { type LossSpec, residualKernel } from "../kernels/loss.ts";
import { bDecGradKernel, colSumKernel, featureStatsKernel } from "../kernels/reduce.ts";
import { scheduleKernel } from "../kernels/schedule.ts";
import {
  colStatsKernel,
  cscColsKernel,
  csrRowsKernel,
  planDispatches,
  sddmmRowsKernels,
  type SparseLists,
  type SparseShape,
  spmmColsKernel,
  spmmRowsKernel,
} from "../kernels/sparse.ts";
import type { CoreConfig } from "../config_core.ts";
import { type Activation, forwardPass } from "./forward.ts";
import { topkListsToCsrKernel } from "../kernels/topk.ts";
import { METRIC_INDEX, metricsKernel } from "../kernels/metrics.ts";
import { PARAM_NAMES, type StepBuffers } from "./model.ts";
import { STATE_INDEX } from "../kernels/common.ts";

/** What a step is built from. */
export interface StepContext {
  gpu: Gpu;
  cfg: CoreConfig;
  bufs: StepBuffers;
  /** Input normalisation factor (1 = none), fixed for the run. */
  scale: number;
  /**
   * The activation of the encoder the variant declares (the row top-k of Variant.topk), built by
   * the session before the variant: its pre-activations are what AuxK ranks.
   */
  activation?: Activation;
}

/** What a variant changes in the shared step (every field optional: the baseline sets none). */
export interface StepHooks {
  /**
   * Per-latent thresholds τ [m]: the encoder keeps f_i only where its pre-activation > max(τ_i, 0).
   * Set by the session from the variant's declared threshold state (Variant.thresholds).
   */
  thresholds?: GPUBuffer;
  /**
   * Replaces the encoder's activation (then `thresholds` is not applied): the encoder GEMM writes
   * the pre-activations and these dispatches write f (TopK, BatchTopK, JumpReLU).
   */
  activation?: Activation;
  /**
   * No L1 term: the schedule's L1 coefficient stays 0 (λ1 is ignored), so neither dL/dpre nor the
   * logged loss has one (the top-k variants and JumpReLU control sparsity otherwise).
   */
  noL1?: boolean;
  /**
   * After the forward pass and the reconstruction's residual gradient dL/dx̂, before the backward
   * pass: extra losses and the gradients they send back (AuxK; Matryoshka's nested prefixes, which
   * may add into dL/dx̂).
   */
  afterForward?: Dispatch[];
  /**
   * When set, the dF GEMM writes the raw dL_recon/df into dpre and these dispatches must turn it
   * into dL/dpre (adding λ1/B and masking), e.g. after taking statistics of the raw gradient.
   */
  afterReconGrad?: Dispatch[];
  /**
   * After dL/dpre is complete (dF, afterReconGrad), before the weight gradients read it: extra
   * gradient added into dpre (AuxK's dead latents).
   */
  afterDpre?: Dispatch[];
  /**
   * afterDpre writes dL/dpre where f = 0: the gradients of W_enc and b_enc then stay dense on the
   * sparse-latent path (whose lists cover f's active entries only).
   */
  dpreBeyondF?: boolean;
  /** After the backward pass and the statistics, before the optimizer (e.g. extra gradients). */
  beforeUpdate?: Dispatch[];
  /** Per-latent learning-rate factors [m] for W_enc rows, b_enc and W_dec rows. */
  lrScale?: GPUBuffer;
}

/** The forward pass's parts, each a list of dispatches (one unless split over large buffers). */
interface ForwardParts {
  xMean: Dispatch[];
  prepare: Dispatch[];
  encode: Dispatch[];
  decode: Dispatch[];
  residual: Dispatch[];
  stats: Dispatch[];
  metrics: Dispatch[];
  /** The sparse-latent path (bufs.sparse set): f's CSR lists and the sparse decode. */
  sparse?: { shape: SparseShape; lists: SparseLists; csr: Dispatch; decode: Dispatch };
}

/**
 * `dense` and `sparse` made conditional on this step's density by a plan dispatch
 * (src/kernels/sparse.ts): returns [plan, ...each group's dispatches, dense or sparse as chosen
 * on the GPU], keyed like the input.
 */
async function planned<K extends string>(
  ctx: StepContext,
  sp: NonNullable<ForwardParts["sparse"]>,
  dense: Record<K, Dispatch[]>,
  sparse: Record<K, Dispatch[]>,
): Promise<{ plan: Dispatch; dense: Record<K, Dispatch[]>; sparse: Record<K, Dispatch[]> }> {
  const keys = Object.keys(dense) as K[];
  const flatD = keys.flatMap((k) => dense[k]), flatS = keys.flatMap((k) => sparse[k]);
  const p = await planDispatches(
    ctx.gpu,
    sp.shape,
    sp.lists,
    ctx.cfg.sparse_max_density,
    flatD,
    flatS,
    { acc: ctx.bufs.acc, index: METRIC_INDEX.sparse_steps },
  );
  const regroup = (src: Record<K, Dispatch[]>, flat: Dispatch[]) => {
    let i = 0;
    const out = {} as Record<K, Dispatch[]>;
    for (const k of keys) out[k] = src[k].map(() => flat[i++]);
    return out;
  };
  return { plan: p.plan, dense: regroup(dense, p.dense), sparse: regroup(sparse, p.sparse) };
}

/** The forward pass and statistics without any update: evaluation reuses it. */
export async function forwardDispatches(
  ctx: StepContext,
  hooks: StepHooks = {},
): Promise<Dispatch[]> {
  const p = await forwardParts(ctx, hooks);
  let decode = p.decode;
  if (p.sparse) {
    const pl = await planned(ctx, p.sparse, { decode }, { decode: [p.sparse.decode] });
    decode = [p.sparse.csr, pl.plan, ...pl.dense.decode, ...pl.sparse.decode];
  }
  return [
    ...p.xMean,
    ...p.prepare,
    ...p.encode,
    ...decode,
    ...p.residual,
    ...p.stats,
    ...p.metrics,
  ];
}

async function forwardParts(ctx: StepContext, hooks: StepHooks): Promise<ForwardParts> {
  const { gpu, cfg, bufs } = ctx;
  const B = cfg.batch, d = cfg.d_in, m = cfg.d_sae;
  const P = bufs.params;
  const loss: LossSpec = {
    batch: B,
    dIn: d,
    scale: ctx.scale,
    applyBDec: cfg.apply_b_dec_to_input,
    squared: cfg.recon_loss === "squared",
  };
  const lb = { ...bufs, bDec: P.bDec.p };
  let sparse: ForwardParts["sparse"];
  const act = hooks.activation;
  if (bufs.sparse) {
    const shape = { B, m, d };
    const lists = bufs.sparse;
    sparse = {
      shape,
      lists,
      // Rows listed by the activation (the row top-k) give the CSR without a pass over f.
      csr: act?.rows
        ? await topkListsToCsrKernel(gpu, { B, m, k: act.rows.k }, act.rows.lists, lists, true)
        : await csrRowsKernel(gpu, shape, bufs.f, lists),
      decode: await spmmRowsKernel(gpu, "decode sparse", shape, {
        f: bufs.f,
        lists,
        y: P.wDec.p,
        bias: P.bDec.p,
        out: bufs.xhat,
      }),
    };
  }
  const xMean = await colSumKernel(gpu, "x mean", B, d, ctx.scale / B, bufs.x, bufs.xmean);
  const { prepare, encode, decode } = await forwardPass(
    gpu,
    { ...loss, dSae: m, f16: cfg.gemm_f16, label: "" },
    {
      ...lb,
      wEnc: P.wEnc.p,
      bEnc: P.bEnc.p,
      wDec: P.wDec.p,
      thresholds: hooks.thresholds,
      activation: act,
    },
  );
  return {
    sparse,
    xMean,
    prepare: [prepare],
    encode,
    decode,
    residual: [await residualKernel(gpu, loss, lb)],
    stats: await featureStatsKernel(gpu, B, m, {
      f: bufs.f,
      out: bufs.fstats,
      lastFired: bufs.lastFired,
      state: bufs.state,
    }),
    metrics: [
      await metricsKernel(gpu, {
        batch: B,
        dSae: m,
        dIn: d,
        squared: loss.squared,
        deadSteps: cfg.dead_steps,
        denseThreshold: cfg.dense_threshold,
      }, { ...bufs }),
    ],
  };
}

/** Builds the whole step's dispatch list (pipelines and bind groups created here, once). */
export async function buildStep(ctx: StepContext, hooks: StepHooks): Promise<Dispatch[]> {
  const { gpu, cfg, bufs } = ctx;
  const B = cfg.batch, d = cfg.d_in, m = cfg.d_sae;
  const P = bufs.params;
  const { xMean, prepare, encode, decode, residual, stats, metrics, sparse } = await forwardParts(
    ctx,
    hooks,
  );
  const gemmOpts = { f16: cfg.gemm_f16 };
  const schedule = await scheduleKernel(gpu, {
    lr: cfg.lr,
    warmupSteps: cfg.warmup_steps,
    beta1: cfg.beta1,
    beta2: cfg.beta2,
    l1Coef: hooks.noL1 ? 0 : cfg.l1 / B,
    reconOnlySteps: cfg.recon_only_steps,
  }, bufs.state);
  const dF = await gemmDispatches(
    gpu,
    {
      label: "dF",
      M: B,
      N: m,
      K: d,
      transA: false,
      transB: true,
      epilogue: hooks.afterReconGrad ? "none" : "relu_grad",
      scalarIdx: STATE_INDEX.l1_coef,
    },
    { a: bufs.dxhat, b: P.wDec.p, c: bufs.dpre, e: bufs.f, s: bufs.state },
    gemmOpts,
  );
  // dW = Aᵀ·Y [m, d] over the batch, A [B, m]: the two weight gradients.
  const weightGrad = (label: string, a: GPUBuffer, y: GPUBuffer, c: GPUBuffer) =>
    gemmDispatches(
      gpu,
      { label, M: m, N: d, K: B, transA: true, transB: false, epilogue: "none" },
      { a, b: y, c },
      gemmOpts,
    );
  const dWdec = await weightGrad("dW_dec", bufs.f, bufs.dxhat, P.wDec.g);
  const dWenc = await weightGrad("dW_enc", bufs.dpre, bufs.xc, P.wEnc.g);
  // The sparse-latent path: the plan picks, on the GPU, the dense GEMMs or their sparse
  // replacements for this step. dF stays dense when a variant needs the raw gradient of every
  // latent (afterReconGrad).
  const dbEnc = await colSumKernel(gpu, "db_enc", B, m, 1, bufs.dpre, P.bEnc.g);
  const gradPre = [...(hooks.afterReconGrad ?? []), ...(hooks.afterDpre ?? [])];
  let forward = decode;
  let products = [...dF, ...gradPre, ...dWdec, ...dWenc, ...dbEnc];
  let featureStats = stats;
  if (sparse) {
    const { shape, lists } = sparse;
    const sparseDF = !hooks.afterReconGrad;
    // dL/dpre beyond f's support: dW_enc dense, db_enc recomputed densely after the statistics.
    const beyond = hooks.dpreBeyondF === true;
    // Sparse: db_enc and the feature statistics both come from the CSC lists (one kernel, where
    // db_enc runs); dense: the column sums, statistics at their usual place.
    const dense = {
      decode,
      dF: sparseDF ? dF : [],
      dWdec,
      dWenc: beyond ? [] : dWenc,
      dbEnc,
      stats,
    };
    const sp = {
      decode: [sparse.decode],
      dF: sparseDF
        ? await sddmmRowsKernels(gpu, "dF sparse", shape, STATE_INDEX.l1_coef, {
          lists,
          x: bufs.dxhat,
          y: P.wDec.p,
          s: bufs.state,
          out: bufs.dpre,
        })
        : [],
      dWdec: [
        await cscColsKernel(gpu, shape, bufs.f, lists),
        await spmmColsKernel(gpu, "dW_dec sparse", shape, {
          F: bufs.f,
          lists,
          y: bufs.dxhat,
          out: P.wDec.g,
        }),
      ],
      dWenc: beyond ? [] : [
        await spmmColsKernel(gpu, "dW_enc sparse", shape, {
          F: bufs.dpre,
          lists,
          y: bufs.xc,
          out: P.wEnc.g,
        }),
      ],
      dbEnc: [
        await colStatsKernel(gpu, shape, {
          f: bufs.f,
          dpre: bufs.dpre,
          lists,
          stats: bufs.fstats,
          dbEnc: P.bEnc.g,
          lastFired: bufs.lastFired,
          state: bufs.state,
        }),
      ],
      stats: [],
    };
    const pl = await planned(ctx, sparse, dense, sp);
    forward = [sparse.csr, pl.plan, ...pl.dense.decode, ...pl.sparse.decode];
    products = [
      ...(sparseDF ? [...pl.dense.dF, ...pl.sparse.dF] : dF),
      ...gradPre,
      ...pl.dense.dWdec,
      ...pl.sparse.dWdec,
      ...(beyond ? dWenc : [...pl.dense.dWenc, ...pl.sparse.dWenc]),
      ...pl.dense.dbEnc,
      ...pl.sparse.dbEnc,
      ...(beyond ? dbEnc : []),
    ];
    featureStats = pl.dense.stats;
  }
  const backward = [
    ...products,
    ...await bDecGradKernel(gpu, B, d, m, cfg.apply_b_dec_to_input, {
      dxhat: bufs.dxhat,
      gBEnc: P.bEnc.g,
      wEnc: P.wEnc.p,
      out: P.bDec.g,
    }),
  ];
  const adam = adamSpec(cfg);
  const update = await projectGradKernel(gpu, m, d, P.wDec.p, P.wDec.g);
  const rowLen: Record<string, number> = { wEnc: d, bEnc: 1, wDec: d };
  for (const name of PARAM_NAMES) {
    const p = P[name];
    const scale = hooks.lrScale && rowLen[name]
      ? { buf: hooks.lrScale, rowLen: rowLen[name] }
      : undefined;
    update.push(...await adamwKernel(gpu, name, p.size, adam, p, bufs.state, scale));
  }
  update.push(...await normalizeKernel(gpu, m, d, P.wDec.p));
  return [
    schedule,
    ...xMean,
    ...prepare,
    ...encode,
    ...forward,
    ...residual,
    ...(hooks.afterForward ?? []),
    ...backward,
    ...featureStats,
    ...metrics,
    ...(hooks.beforeUpdate ?? []),
    ...update,
  ];
}
