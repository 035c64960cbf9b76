/**
 * The paper's per-latent statistics (wgsl/paper.wgsl) and the correlation-aware orthogonality
 * gradient (Eqs. 4-5, through the GEMM family), with plain-TypeScript references.
 */
import paperSrc from "../../wgsl/paper.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { WG, withCommon } from "./common.ts";
import { hasSubgroups } from "./collectives.ts";
import {
  gemmDispatches,
  type GemmOptions,
  gemmPath,
  type GemmSpec,
  type PackedBlock,
  packRowBlocks,
} from "./gemm/mod.ts";
import { rowParts } from "../gpu/split.ts";

/** The family's WGSL, with subgroup reductions where the device has them. */
const code = (gpu: Gpu) => withCommon(paperSrc, hasSubgroups(gpu));

/**
 * Invocations of the statistics kernel's one workgroup (RED_WG in wgsl/paper.wgsl's `stats`): it
 * loops over every latent, so a group wider than WG shortens each invocation's share.
 */
const STATS_WG = 256;

/** Settings of the statistics kernels (from the config). */
export interface PaperSpec {
  batch: number;
  dSae: number;
  emaDecay: number;
  tauBase: number;
  tauBeta: number;
  tauSign: "decrease" | "increase";
  adaptive: boolean;
  lambdaOrtho: number;
  orthoEps: number;
  orthoImportance: boolean;
  orthoMean: boolean;
  importanceLr: number;
}

function constants(s: PaperSpec): Record<string, number> {
  return {
    B: s.batch,
    M: s.dSae,
    GAMMA: s.emaDecay,
    TAU_BASE: s.tauBase,
    TAU_BETA: s.tauSign === "increase" ? s.tauBeta : -s.tauBeta,
    ADAPTIVE: s.adaptive ? 1 : 0,
    LAMBDA_ORTHO: s.lambdaOrtho,
    ORTHO_EPS: s.orthoEps,
    ORTHO_IMPORTANCE: s.orthoImportance ? 1 : 0,
    ORTHO_MEAN: s.orthoMean ? 1 : 0,
    IMPORTANCE_LR: s.importanceLr,
  };
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
  pscal: GPUBuffer; // [4] ortho scale, ε, max freq, max s
}

/** Allocates the statistics buffers (zeros). */
export function allocPaper(gpu: Gpu, dSae: number): PaperBuffers {
  const v = (label: string) => gpu.buffer(label, dSae * 4);
  return {
    gnorm: v("gnorm"),
    freq: v("ema freq"),
    fvar: v("ema var"),
    tau: v("tau"),
    imp: v("importance"),
    weight: v("ortho weight"),
    lrScale: gpu.upload("lr scale", new Float32Array(dSae).fill(1)),
    pscal: gpu.buffer("paper scalars", 16),
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

/** EMA statistics, thresholds, importance, α weights and learning-rate factors. */
export function paperStatsKernel(
  gpu: Gpu,
  s: PaperSpec,
  b: PaperBuffers,
  x: { fstats: GPUBuffer; state: GPUBuffer },
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
    ],
    groups: [1, 1, 1],
    // Per latent about 18 FLOPs (Eqs. 1-3, the two maxima, the lr factor); reads the fire counts
    // and sums, gnorm, the EMA frequency and variance, writes those two, τ, s, α weight, lr factor.
    cost: { flops: 18 * s.dSae, bytes: 4 * (11 * s.dSae + 4) },
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
 * The orthogonality gradient added to dL/dW_dec without forming the m×m Gram matrix: W_dec is cut
 * into blocks of R rows and, the coefficient matrix being symmetric (coef_ij = S0·s_i·s_j·c_ij/
 * (|c_ij| + ε) with c = W Wᵀ), only blocks I ≤ J are formed: coef_IJ = α-scaled W_I·W_Jᵀ (one GEMM
 * with the ortho_coef epilogue, [R, R]); dW_I += coef_IJ·W_J and, off the diagonal,
 * dW_J += coef_IJᵀ·W_I (GEMMs with the accumulate epilogue). With c blocks the Gram GEMMs do
 * (c+1)/(2c) of the full product's work; the products with W do all of theirs.
 */
export async function orthoGradDispatches(
  gpu: Gpu,
  dSae: number,
  dIn: number,
  b: { wDec: GPUBuffer; gDec: GPUBuffer; weight: GPUBuffer; pscal: GPUBuffer },
  chunkRows = orthoChunkRows(dSae),
  opts: GemmOptions = {},
): Promise<Dispatch[]> {
  const R = Math.min(chunkRows, dSae);
  const coef = gpu.buffer("ortho coef", R * R * 4);
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
  const grad = (n: number, rows: number, K: number, transA: boolean): GemmSpec => ({
    label: `ortho grad ${n}`,
    M: rows,
    N: dIn,
    K,
    transA,
    transB: false,
    epilogue: "accumulate",
  });
  // Where the GEMMs read packed textures (CPU adapters), W_dec is packed once for every block
  // pair instead of once per GEMM: as stored (the Gram blocks; the products with W on the
  // texture path) and, for the broadcast path, each block transposed (W_J along K in coef·W_J).
  const packedPath = (p: string) => p === "texture" || p === "bcast";
  const gramPath = gemmPath(gpu, gram(0, 0, R, R), opts);
  const gradPath = gemmPath(gpu, grad(0, R, R, false), opts);
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
        ...await gemmDispatches(gpu, grad(n, ri, rj, false), {
          a: coef,
          b: slice(b.wDec, j0, rj),
          c: slice(b.gDec, i0, ri),
          packedB: block(j0, rj),
        }, opts),
      );
      if (j0 > i0) {
        out.push(
          ...await gemmDispatches(gpu, grad(n, rj, ri, true), {
            a: coef,
            b: slice(b.wDec, i0, ri),
            c: slice(b.gDec, j0, rj),
            packedB: block(i0, ri),
          }, opts),
        );
      }
      n++;
    }
  }
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
  orthoScale: number;
  maxFreq: number;
  maxImp: number;
}

/** Zero statistics. */
export function initialPaperStats(m: number): PaperStats {
  return {
    freq: new Float64Array(m),
    fvar: new Float64Array(m),
    tau: new Float64Array(m),
    imp: new Float64Array(m),
    weight: new Float64Array(m),
    lrScale: new Float64Array(m).fill(1),
    orthoScale: 0,
    maxFreq: 0,
    maxImp: 0,
  };
}

/**
 * Reference of one statistics update from the batch's fire counts and raw gradient norms
 * (in place on `st`); `phase` is 1 in the main phase.
 */
export function paperStatsReference(
  s: PaperSpec,
  st: PaperStats,
  fires: ArrayLike<number>,
  gnorm: ArrayLike<number>,
  phase: number,
): void {
  const m = s.dSae, g = s.emaDecay;
  const sign = s.tauSign === "increase" ? 1 : -1;
  let fmax = 0, smax = 0;
  for (let i = 0; i < m; i++) {
    const r = fires[i] / s.batch;
    const diff = r - st.freq[i];
    st.freq[i] += (1 - g) * diff;
    st.fvar[i] = g * (st.fvar[i] + (1 - g) * diff * diff);
    const th = Math.max(s.tauBase * (1 + sign * s.tauBeta * st.fvar[i]), 0);
    st.tau[i] = s.adaptive && phase > 0 ? th : 0;
    fmax = Math.max(fmax, st.freq[i]);
  }
  for (let i = 0; i < m; i++) {
    st.imp[i] = fmax > 0 ? gnorm[i] * st.freq[i] / fmax : 0;
    smax = Math.max(smax, st.imp[i]);
  }
  for (let i = 0; i < m; i++) {
    const sn = smax > 0 ? st.imp[i] / smax : 0;
    st.lrScale[i] = phase > 0 ? 1 - s.importanceLr + s.importanceLr * sn : 1;
    st.weight[i] = s.orthoImportance ? st.imp[i] : 1;
  }
  const norm = (s.orthoImportance ? smax * smax : 1) * (s.orthoMean ? m * Math.max(m - 1, 1) : 1);
  st.orthoScale = norm > 0 ? 4 * s.lambdaOrtho * phase / norm : 0;
  st.maxFreq = fmax;
  st.maxImp = smax;
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
