/**
 * The paper's per-latent statistics (wgsl/paper.wgsl) and the correlation-aware orthogonality
 * gradient and value (Eqs. 4-5, through the GEMM family), with plain-TypeScript references.
 */
import paperSrc from "../../wgsl/paper.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { WG, withCommon } from "./common.ts";
import { hasSubgroups } from "./collectives.ts";
import { METRIC_INDEX } from "./metrics.ts";
import {
  gemmDispatches,
  type GemmOptions,
  gemmPath,
  type GemmSpec,
  type PackedBlock,
  packRowBlocks,
} from "./gemm/mod.ts";
import { rowParts } from "../gpu/split.ts";
import { adapterClass } from "../gpu/adapter.ts";

/** The family's WGSL, with subgroup reductions where the device has them. */
const code = (gpu: Gpu) => withCommon(paperSrc, hasSubgroups(gpu));

/**
 * Invocations of the statistics kernel's one workgroup (RED_WG in wgsl/paper.wgsl's `stats`): it
 * loops over every latent, so a group wider than WG shortens each invocation's share.
 */
const STATS_WG = 256;

/** What var(freq(f_i)) of Eq. 2 measures (docs/method.md). */
export type TauVariance = "rate" | "token";
/** The scale R of the orthogonality sum Σ_{i≠j} (docs/method.md). */
export type OrthoReduction = "sum" | "mean" | "per_latent" | "recon";
/** The form of the importance-weighted learning-rate factor (docs/method.md). */
export type LrForm = "max" | "mean" | "inverse";

/** Settings of the statistics kernels (from the config). */
export interface PaperSpec {
  batch: number;
  dSae: number;
  emaDecay: number;
  tauBase: number;
  tauBeta: number;
  tauSign: "decrease" | "increase";
  tauVariance: TauVariance;
  adaptive: boolean;
  /** Steps of the recon-only phase (the thresholds of step t + 1 follow its phase). */
  reconOnlySteps: number;
  lambdaOrtho: number;
  orthoEps: number;
  orthoImportance: boolean;
  orthoReduction: OrthoReduction;
  /** The reconstruction loss is ‖r‖² (it sets R under the "recon" reduction). */
  squared: boolean;
  importanceLr: number;
  lrForm: LrForm;
}

/**
 * Whether the importance s (Eq. 3) is used: by the orthogonality weights or the learning-rate
 * factors. Without it the raw-gradient pass (grad_mask) does not run and dF keeps its mask epilogue.
 */
export function needsImportance(s: PaperSpec): boolean {
  return (s.lambdaOrtho > 0 && s.orthoImportance) || s.importanceLr > 0;
}

const REDUCTIONS: Record<OrthoReduction, number> = { sum: 0, mean: 1, per_latent: 2, recon: 3 };
const LR_FORMS: Record<LrForm, number> = { max: 0, mean: 1, inverse: 2 };

function constants(s: PaperSpec): Record<string, number> {
  return {
    B: s.batch,
    M: s.dSae,
    GAMMA: s.emaDecay,
    TAU_BASE: s.tauBase,
    TAU_BETA: s.tauSign === "increase" ? s.tauBeta : -s.tauBeta,
    TAU_VARIANCE: s.tauVariance === "token" ? 1 : 0,
    ADAPTIVE: s.adaptive ? 1 : 0,
    RECON_ONLY_STEPS: s.reconOnlySteps,
    LAMBDA_ORTHO: s.lambdaOrtho,
    ORTHO_EPS: s.orthoEps,
    ORTHO_IMPORTANCE: s.orthoImportance ? 1 : 0,
    ORTHO_REDUCTION: REDUCTIONS[s.orthoReduction],
    SQUARED: s.squared ? 1 : 0,
    IMPORTANCE_LR: s.importanceLr,
    LR_FORM: LR_FORMS[s.lrForm],
    IMPORTANCE: needsImportance(s) ? 1 : 0,
  };
}

/**
 * The thresholds before the first step: those the statistics' initial state (variance 0) gives,
 * τ_base, when step 1 is in the main phase; else 0 (plain ReLU in the recon-only phase).
 */
export function initialThreshold(s: PaperSpec): number {
  return s.adaptive && s.reconOnlySteps === 0 ? s.tauBase : 0;
}

/** GPU buffers of the paper's statistics. */
export interface PaperBuffers {
  gnorm: GPUBuffer; // [m] ‖dL_recon/df_i‖₂
  freq: GPUBuffer; // [m] EMA frequency
  fvar: GPUBuffer; // [m] EMA variance of the batch firing rate
  tau: GPUBuffer; // [m] dynamic thresholds
  imp: GPUBuffer; // [m] importance s_i
  weight: GPUBuffer; // [m] α weights (s_i, or 1)
  lrScale: GPUBuffer; // [m] learning-rate factors
  pscal: GPUBuffer; // [2] ortho scale S0 = 4λR/s_max², ε
}

/** Allocates the statistics buffers: zeros, lr factors 1, thresholds {@link initialThreshold}. */
export function allocPaper(gpu: Gpu, s: PaperSpec): PaperBuffers {
  const m = s.dSae;
  const v = (label: string) => gpu.buffer(label, m * 4);
  return {
    gnorm: v("gnorm"),
    freq: v("ema freq"),
    fvar: v("ema var"),
    tau: gpu.upload("tau", new Float32Array(m).fill(initialThreshold(s))),
    imp: v("importance"),
    weight: v("ortho weight"),
    lrScale: gpu.upload("lr scale", new Float32Array(m).fill(1)),
    pscal: gpu.buffer("paper scalars", 8),
  };
}

/** dL/dpre from the raw reconstruction gradient in `dpre`, and the importance gradient norms. */
export async function gradMaskKernel(
  gpu: Gpu,
  s: PaperSpec,
  b: PaperBuffers,
  x: { dpre: GPUBuffer; f: GPUBuffer; state: GPUBuffer },
): Promise<Dispatch[]> {
  // One part per range of batch rows that fits a binding (one unless [B, m] is large).
  const out: Dispatch[] = [];
  for (const { r0, r1, views: [dpre, f] } of rowParts(gpu, s.batch, s.dSae, [x.dpre, x.f])) {
    const n = (r1 - r0) * s.dSae, accum = r0 > 0 ? 1 : 0;
    out.push(
      await kernel(gpu, {
        label: "importance grad + mask",
        code: code(gpu),
        entry: "grad_mask",
        constants: {
          ...constants(s),
          B: r1 - r0,
          A_OFF: dpre.off,
          ACCUM: r0 > 0 ? 1 : 0,
          FINAL: r1 === s.batch ? 1 : 0,
        },
        buffers: [
          dpre.binding,
          f.binding,
          b.gnorm,
          null,
          null,
          null,
          null,
          null,
          null,
          null,
          x.state,
        ],
        groups: groupsFor(s.dSae, WG),
        // Per element a multiply-add into ‖dL_recon/df_i‖² and the L1 term; per latent a square
        // root. Reads dpre and f, writes dpre and the norms (a later part reads them too).
        cost: {
          flops: 3 * n + s.dSae * (1 + accum),
          bytes: 4 * (3 * n + s.dSae * (1 + accum)),
        },
      }),
    );
  }
  return out;
}

/**
 * EMA statistics, thresholds for the next step, importance, α weights, learning-rate factors and
 * the orthogonality scale (from the batch's reconstruction loss in `rowstats` under "recon").
 */
export function paperStatsKernel(
  gpu: Gpu,
  s: PaperSpec,
  b: PaperBuffers,
  x: { fstats: GPUBuffer; state: GPUBuffer; rowstats: GPUBuffer },
): Promise<Dispatch> {
  return kernel(gpu, {
    label: "paper stats",
    code: code(gpu),
    entry: "stats",
    constants: { ...constants(s), RED_WG: STATS_WG },
    buffers: [
      null,
      null,
      b.gnorm,
      x.fstats,
      b.freq,
      b.fvar,
      b.tau,
      b.weight,
      b.lrScale,
      b.pscal,
      x.state,
      b.imp,
      x.rowstats,
    ],
    groups: [1, 1, 1],
    // Per latent about 20 FLOPs (Eqs. 1-3, the maxima and mean, the lr factor); reads the fire
    // counts and sums, gnorm, the EMA frequency and variance, writes those two, τ, s, α weight, lr
    // factor; under "recon" sums the rows' reconstruction terms.
    cost: { flops: 20 * s.dSae + s.batch, bytes: 4 * (11 * s.dSae + 2 + 3 * s.batch) },
  });
}

/**
 * Rows of W_dec per orthogonality block, a multiple of 64 (binding offsets align to 256 B): the
 * whole matrix up to 1024 rows (one block, fewest dispatches), else m/8 clamped to [256, 2048].
 */
function orthoChunkRows(dSae: number): number {
  const all = Math.ceil(dSae / 64) * 64;
  if (dSae <= 1024) return all;
  return Math.min(all, Math.max(256, Math.min(2048, Math.floor(dSae / 8 / 64) * 64)));
}

/**
 * The orthogonality gradient added to dL/dW_dec, and the penalty's value added to the logged loss
 * and its `ortho` column, without forming the m×m Gram matrix: W_dec is cut into blocks of R rows
 * and, the coefficient matrix being symmetric (coef_ij = S0·s_i·s_j·c_ij/(|c_ij| + ε) with
 * c = W Wᵀ), only blocks I ≤ J are formed: coef_IJ = α-scaled W_I·W_Jᵀ (one GEMM with the
 * ortho_coef epilogue, [R, R]); G_I += coef_IJ·W_J and, off the diagonal, G_J += coef_IJᵀ·W_I
 * (GEMMs that overwrite G's block on its first write and accumulate after). With c blocks the Gram
 * GEMMs do (c+1)/(2c) of the full product's work; the products with W do all of theirs. Then
 * `ortho_apply` adds G to dL/dW_dec and takes w_i·G_i, and `ortho_total` sums P = ¼ Σ_i w_i·G_i.
 */
export async function orthoGradDispatches(
  gpu: Gpu,
  dSae: number,
  dIn: number,
  b: { wDec: GPUBuffer; gDec: GPUBuffer; weight: GPUBuffer; pscal: GPUBuffer; acc: GPUBuffer },
  chunkRows = orthoChunkRows(dSae),
  opts: GemmOptions = {},
): Promise<Dispatch[]> {
  const R = Math.min(chunkRows, dSae);
  const coef = gpu.buffer("ortho coef", R * R * 4); // [R, R] one block's coefficients
  const gOrtho = gpu.buffer("ortho grad", dSae * dIn * 4); // [m, d] ∂P/∂W_dec
  const orthoRow = gpu.buffer("ortho row", dSae * 4); // [m] w_i·∂P/∂w_i
  const slice = (buffer: GPUBuffer, i0: number, rows: number) => ({
    buffer,
    offset: i0 * dIn * 4,
    size: rows * dIn * 4,
  });
  const gram = (n: number, i0: number, ri: number, rj: number): GemmSpec => ({
    label: `ortho gram ${n}`,
    M: ri,
    N: rj,
    K: dIn,
    transA: false,
    transB: true,
    epilogue: "ortho_coef",
    row0: i0,
  });
  const grad = (n: number, rows: number, K: number, transA: boolean, first: boolean): GemmSpec => ({
    label: `ortho grad ${n}`,
    M: rows,
    N: dIn,
    K,
    transA,
    transB: false,
    epilogue: first ? "none" : "accumulate",
  });
  // Where the GEMMs read packed textures (CPU adapters), W_dec is packed once for every block
  // pair instead of once per GEMM: as stored (the Gram blocks; the products with W on the
  // texture path) and, for the broadcast path, each block transposed (W_J along K in coef·W_J).
  const packedPath = (p: string) => p === "texture" || p === "bcast";
  const gramPath = gemmPath(gpu, gram(0, 0, R, R), opts);
  const gradPath = gemmPath(gpu, grad(0, R, R, false, false), opts);
  const out: Dispatch[] = [];
  let block: (r0: number, rows: number) => PackedBlock | undefined = () => undefined;
  if ((packedPath(gramPath) || packedPath(gradPath)) && dSae % 4 === 0 && dIn % 4 === 0) {
    const pre = await packRowBlocks(
      gpu,
      "ortho pack W",
      b.wDec,
      dSae,
      dIn,
      R,
      gradPath === "bcast",
      opts,
    );
    out.push(...pre.dispatches);
    block = (r0, rows) => ({ packed: pre.packed, r0, rows });
  }
  let n = 0;
  // Block row I is first written at I = 0's pass over J: by the diagonal product for I = 0, by the
  // transposed product of block pair (0, I) for the others.
  for (let i0 = 0; i0 < dSae; i0 += R) {
    const ri = Math.min(R, dSae - i0);
    for (let j0 = i0; j0 < dSae; j0 += R) {
      const rj = Math.min(R, dSae - j0);
      out.push(
        ...await gemmDispatches(gpu, gram(n, i0, ri, rj), {
          a: slice(b.wDec, i0, ri),
          b: slice(b.wDec, j0, rj),
          c: coef,
          e: b.weight,
          s: b.pscal,
          packedA: block(i0, ri),
          packedB: block(j0, rj),
        }, { ...opts, layout: { eoff: j0 } }),
        ...await gemmDispatches(gpu, grad(n, ri, rj, false, i0 === 0 && j0 === 0), {
          a: coef,
          b: slice(b.wDec, j0, rj),
          c: slice(gOrtho, i0, ri),
          packedB: block(j0, rj),
        }, opts),
      );
      if (j0 > i0) {
        out.push(
          ...await gemmDispatches(gpu, grad(n, rj, ri, true, i0 === 0), {
            a: coef,
            b: slice(b.wDec, i0, ri),
            c: slice(gOrtho, j0, rj),
            packedB: block(i0, ri),
          }, opts),
        );
      }
      n++;
    }
  }
  const lane = adapterClass(gpu) === "cpu";
  for (const { r0, r1, views } of rowParts(gpu, dSae, dIn, [b.wDec, b.gDec, gOrtho])) {
    const rows = r1 - r0;
    out.push(
      await kernel(gpu, {
        label: "ortho apply",
        code: code(gpu),
        entry: lane ? "ortho_apply_lane" : "ortho_apply",
        constants: { M: rows, D: dIn, A_OFF: views[0].off, I0: r0 },
        buffers: [
          ...Array(13).fill(null),
          views[0].binding,
          views[1].binding,
          views[2].binding,
          orthoRow,
        ],
        groups: lane ? groupsFor(rows, WG) : groupsFor(rows),
        // Per element an add into dL/dW_dec and a multiply-add into w_i·G_i; reads W, G and
        // dL/dW_dec, writes dL/dW_dec.
        cost: { flops: 3 * rows * dIn, bytes: 4 * (4 * rows * dIn + rows) },
      }),
    );
  }
  out.push(
    await kernel(gpu, {
      label: "ortho total",
      code: code(gpu),
      entry: "ortho_total",
      constants: {
        M: dSae,
        RED_WG: STATS_WG,
        ACC_LOSS: METRIC_INDEX.loss,
        ACC_ORTHO: METRIC_INDEX.ortho,
      },
      buffers: [...Array(16).fill(null), orthoRow, b.acc],
      groups: [1, 1, 1],
      cost: { flops: dSae + 2, bytes: 4 * (dSae + 4) },
    }),
  );
  return out;
}

// ------------------------------------------------------------------------------------------------
// References

/** State of the statistics on the host. */
export interface PaperStats {
  freq: Float64Array;
  fvar: Float64Array;
  tau: Float64Array;
  imp: Float64Array;
  weight: Float64Array;
  lrScale: Float64Array;
  /** S0 = 4λR·phase / (s_max² or 1): the orthogonality coefficients' scale (pscal[0]). */
  orthoScale: number;
}

/** The statistics before the first step (thresholds {@link initialThreshold}). */
export function initialPaperStats(s: PaperSpec): PaperStats {
  const m = s.dSae;
  return {
    freq: new Float64Array(m),
    fvar: new Float64Array(m),
    tau: new Float64Array(m).fill(initialThreshold(s)),
    imp: new Float64Array(m),
    weight: new Float64Array(m),
    lrScale: new Float64Array(m).fill(1),
    orthoScale: 0,
  };
}

/** The scale R of the orthogonality sum under `s.orthoReduction` (`recon`: the batch's loss). */
function orthoReductionScale(s: PaperSpec, reconLoss: number): number {
  const m = s.dSae;
  switch (s.orthoReduction) {
    case "sum":
      return 1;
    case "mean":
      return 1 / (m * Math.max(m - 1, 1));
    case "per_latent":
      return 1 / m;
    case "recon":
      return reconLoss / m;
  }
}

/**
 * Reference of one statistics update at step `step` (from 1) from the batch's fire counts, raw
 * gradient norms and mean reconstruction loss (in place on `st`): the thresholds are for step + 1.
 */
export function paperStatsReference(
  s: PaperSpec,
  st: PaperStats,
  fires: ArrayLike<number>,
  gnorm: ArrayLike<number>,
  step: number,
  reconLoss: number,
): void {
  const m = s.dSae, g = s.emaDecay;
  const phase = step > s.reconOnlySteps ? 1 : 0;
  const nextMain = s.adaptive && step + 1 > s.reconOnlySteps;
  const sign = s.tauSign === "increase" ? 1 : -1;
  let fmax = 0, smax = 0, ssum = 0;
  for (let i = 0; i < m; i++) {
    const r = fires[i] / s.batch;
    const diff = r - st.freq[i];
    // "token": the squared deviations of the B indicators from the old EMA average to this.
    const dev = s.tauVariance === "token" ? diff * diff + r * (1 - r) : diff * diff;
    st.freq[i] += (1 - g) * diff;
    st.fvar[i] = g * (st.fvar[i] + (1 - g) * dev);
    const th = Math.max(s.tauBase * (1 + sign * s.tauBeta * st.fvar[i]), 0);
    st.tau[i] = nextMain ? th : 0;
    fmax = Math.max(fmax, st.freq[i]);
  }
  if (needsImportance(s)) {
    for (let i = 0; i < m; i++) {
      st.imp[i] = fmax > 0 ? gnorm[i] * st.freq[i] / fmax : 0;
      smax = Math.max(smax, st.imp[i]);
      ssum += st.imp[i];
    }
  }
  const smean = ssum / m;
  for (let i = 0; i < m; i++) {
    const sn = smax > 0 ? st.imp[i] / smax : 0;
    const rho = s.importanceLr;
    const factor = s.lrForm === "mean"
      ? (smean > 0 ? 1 - rho + rho * st.imp[i] / smean : 1)
      : s.lrForm === "inverse"
      ? 1 - rho * sn
      : 1 - rho + rho * sn;
    st.lrScale[i] = phase > 0 ? factor : 1;
    st.weight[i] = s.orthoImportance ? st.imp[i] : 1;
  }
  const norm = s.orthoImportance ? smax * smax : 1;
  const R = orthoReductionScale(s, reconLoss);
  st.orthoScale = norm > 0 ? 4 * s.lambdaOrtho * R * phase / norm : 0;
}

/**
 * The orthogonality penalty λ Σ_{i≠j} α_ij (w_i·w_j)² with α computed from `w0` and held fixed
 * (Eq. 5: α_ij = weight_i weight_j / norm · 1/(|w0_i·w0_j| + ε)), evaluated at `w`.
 */
export function orthoPenaltyReference(
  w: Float32Array,
  w0: Float32Array,
  weight: ArrayLike<number>,
  norm: number,
  lambda: number,
  eps: number,
  m: number,
  d: number,
): number {
  let total = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      if (i === j) continue;
      let c = 0, c0 = 0;
      for (let k = 0; k < d; k++) {
        c += w[i * d + k] * w[j * d + k];
        c0 += w0[i * d + k] * w0[j * d + k];
      }
      total += weight[i] * weight[j] / norm / (Math.abs(c0) + eps) * c * c;
    }
  }
  return lambda * total;
}

/** The materialised gradient of {@link orthoPenaltyReference} at w = w0: [m, d]. */
export function orthoGradReference(
  w: Float32Array,
  weight: ArrayLike<number>,
  scale: number,
  eps: number,
  m: number,
  d: number,
): Float32Array {
  const gram = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      let c = 0;
      for (let k = 0; k < d; k++) c += w[i * d + k] * w[j * d + k];
      gram[i * m + j] = c;
    }
  }
  const g = new Float32Array(m * d);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      if (i === j) continue;
      const c = gram[i * m + j];
      const coef = scale * weight[i] * weight[j] * c / (Math.abs(c) + eps);
      for (let k = 0; k < d; k++) g[i * d + k] += coef * w[j * d + k];
    }
  }
  return g;
}
