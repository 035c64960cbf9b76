/**
 * SAE parameters (on the host and on the GPU with their gradients and moments), the working
 * buffers of a training step, and the initialisation (on the host, once, before the first step).
 */
import { type CoreConfig, normalizesInputs } from "../config_core.ts";
import type { ActivationSource } from "../data/source.ts";
import { UserError } from "../errors.ts";
import type { Gpu } from "../gpu/device.ts";
import { allocSparseLists, type SparseLists, sparseOk } from "../kernels/sparse.ts";
import { Rng } from "../rng.ts";
import { f32Tensor, type Tensor, tensorToF32 } from "../run/safetensors.ts";
import { initialState, packState } from "../kernels/common.ts";

/** Host copies of the four parameters. */
export interface SaeWeights {
  wEnc: Float32Array; // W_enc: [d_sae, d_in] f32, row-major (row i encodes latent i)
  bEnc: Float32Array; // b_enc: [d_sae]
  wDec: Float32Array; // W_dec: [d_sae, d_in] f32, row-major (row i is the paper's column w_i)
  bDec: Float32Array; // b_dec: [d_in]
}

/** Names of the parameters, in checkpoint order. */
export const PARAM_NAMES = ["wEnc", "bEnc", "wDec", "bDec"] as const;
/** One of {@link PARAM_NAMES}. */
export type ParamName = typeof PARAM_NAMES[number];

/** Shape of each parameter for the given sizes. */
function paramShapes(dIn: number, dSae: number): Record<ParamName, number[]> {
  return { wEnc: [dSae, dIn], bEnc: [dSae], wDec: [dSae, dIn], bDec: [dIn] };
}

/** The parameters as f32 tensors named `<prefix><param>` (sae.safetensors, checkpoints). */
export function weightTensors(
  w: SaeWeights,
  dIn: number,
  dSae: number,
  prefix = "",
): Record<string, Tensor> {
  const shapes = paramShapes(dIn, dSae);
  return Object.fromEntries(PARAM_NAMES.map((n) => [prefix + n, f32Tensor(shapes[n], w[n])]));
}

/**
 * The parameters from tensors named `<prefix><param>`; a missing one, one of another shape or one
 * holding NaN or ±Inf is a UserError naming it and `where` (the file).
 */
export function weightsFromTensors(
  t: Record<string, Tensor>,
  dIn: number,
  dSae: number,
  where: string,
  prefix = "",
): SaeWeights {
  const shapes = paramShapes(dIn, dSae);
  const out = {} as SaeWeights;
  for (const n of PARAM_NAMES) {
    const tensor = t[prefix + n];
    if (!tensor || tensor.shape.join() !== shapes[n].join()) {
      throw new UserError(
        `${where}: tensor '${prefix + n}' missing or not of shape [${shapes[n]}]`,
      );
    }
    out[n] = tensorToF32(tensor);
    const bad = out[n].findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new UserError(
        `${where}: tensor '${prefix + n}' holds ${out[n][bad]} at index ${bad}${
          shapes[n].length === 2
            ? ` (row ${Math.floor(bad / shapes[n][1])}, column ${bad % shapes[n][1]})`
            : ""
        }: the file is damaged or the SAE diverged; refusing to use it`,
      );
    }
  }
  return out;
}

/** A parameter on the GPU with its gradient and Adam moments. */
export interface ParamBuffers {
  p: GPUBuffer;
  g: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
  shape: number[];
  size: number;
}

/** Every GPU buffer of a training step. */
export interface StepBuffers {
  params: Record<ParamName, ParamBuffers>;
  x: GPUBuffer; // [B, d_in] batch (scaled in place)
  xc: GPUBuffer; // [B, d_in] encoder input x − b_dec
  f: GPUBuffer; // [B, d_sae] latents
  xhat: GPUBuffer; // [B, d_in] reconstruction
  dxhat: GPUBuffer; // [B, d_in] dL/dx̂
  dpre: GPUBuffer; // [B, d_sae] dL/dpre
  xmean: GPUBuffer; // [d_in] batch mean of x
  rowstats: GPUBuffer; // [B, 3]
  fstats: GPUBuffer; // [d_sae, 2] fires, Σf
  lastFired: GPUBuffer; // [d_sae] u32
  state: GPUBuffer; // [STATE_WORDS] step state (src/kernels/common.ts)
  acc: GPUBuffer; // [METRIC_WORDS] metric accumulators
  sparse?: SparseLists; // index lists of f's active entries (sparse_max_density > 0)
}

/**
 * Whether the step takes the sparse-latent path (src/kernels/sparse.ts): asked for, a step at
 * least sparse_min_flops large, d_in a multiple of 4, and f [batch, d_sae] and the weights
 * [d_sae, d_in] each within one binding (the sparse kernels bind them whole; larger SAEs, such
 * as d_sae 16384 at d_in 2304, train with the dense kernels, which split over views).
 */
export function sparseEnabled(
  gpu: Gpu,
  cfg: Pick<
    CoreConfig,
    "sparse_max_density" | "sparse_min_flops" | "batch" | "d_in" | "d_sae"
  >,
): boolean {
  return cfg.sparse_max_density > 0 &&
    2 * cfg.batch * cfg.d_in * cfg.d_sae >= cfg.sparse_min_flops &&
    sparseOk({ B: cfg.batch, m: cfg.d_sae, d: cfg.d_in }) &&
    cfg.batch * cfg.d_sae * 4 <= gpu.maxBinding &&
    cfg.d_sae * cfg.d_in * 4 <= gpu.maxBinding;
}
/**
 * Checks the step's largest buffers against the adapter's limits before anything is allocated or
 * initialised (an SAE too large for the adapter is refused at once, not after its weights were
 * drawn): [d_sae, d_in] (the weights, their gradients and moments) and [batch, d_sae] (f, dL/dpre)
 * must each fit one buffer (their kernels bind views of them); [batch, d_in] must fit one binding.
 */
export function checkStepSizes(
  gpu: Pick<Gpu, "maxBinding" | "maxBufferSize">,
  cfg: Pick<CoreConfig, "d_in" | "d_sae" | "batch">,
): void {
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  const { d_in: d, d_sae: m, batch: B } = cfg;
  const buffers: [string, number, string][] = [
    [`d_sae × d_in = ${m} × ${d}`, m * d * 4, "lower d_sae"],
    [`batch × d_sae = ${B} × ${m}`, B * m * 4, "lower batch or d_sae"],
  ];
  for (const [what, bytes, fix] of buffers) {
    if (bytes > gpu.maxBufferSize) {
      throw new UserError(
        `${what} f32 (${mib(bytes)}) exceeds this adapter's buffer-size limit of ` +
          `${mib(gpu.maxBufferSize)}: ${fix}`,
      );
    }
  }
  // [batch, d_sae] and [d_sae, d_in] buffers may exceed one binding (their kernels split); the
  // [batch, d_in] ones are bound whole (18 MB at batch 2048, d_in 2304).
  if (B * d * 4 > gpu.maxBinding) {
    throw new UserError(
      `batch × d_in = ${B} × ${d} f32 (${mib(B * d * 4)}) exceeds this adapter's ` +
        `storage-binding limit of ${mib(gpu.maxBinding)}: lower batch`,
    );
  }
}

/**
 * Allocates the step's buffers and uploads `w` (moments zero, state before step 1); `accWords` is
 * the length of the metric accumulators (src/kernels/metrics.ts).
 */
export function allocStep(
  gpu: Gpu,
  dIn: number,
  dSae: number,
  batch: number,
  w: SaeWeights,
  accWords: number,
  sparse = false,
): StepBuffers {
  checkStepSizes(gpu, { d_in: dIn, d_sae: dSae, batch });
  const shapes = paramShapes(dIn, dSae);
  const params = {} as Record<ParamName, ParamBuffers>;
  for (const name of PARAM_NAMES) {
    const size = shapes[name].reduce((a, b) => a * b, 1);
    params[name] = {
      p: gpu.upload(name, w[name]),
      g: gpu.buffer(`${name} grad`, size * 4),
      m: gpu.buffer(`${name} adam m`, size * 4),
      v: gpu.buffer(`${name} adam v`, size * 4),
      shape: shapes[name],
      size,
    };
  }
  const bufs: StepBuffers = {
    params,
    x: gpu.buffer("x", batch * dIn * 4),
    xc: gpu.buffer("xc", batch * dIn * 4),
    f: gpu.buffer("f", batch * dSae * 4),
    xhat: gpu.buffer("xhat", batch * dIn * 4),
    dxhat: gpu.buffer("dxhat", batch * dIn * 4),
    dpre: gpu.buffer("dpre", batch * dSae * 4),
    xmean: gpu.buffer("xmean", dIn * 4),
    rowstats: gpu.buffer("rowstats", batch * 3 * 4),
    fstats: gpu.buffer("fstats", dSae * 2 * 4),
    lastFired: gpu.buffer("last fired", dSae * 4),
    state: gpu.upload("state", packState(initialState())),
    acc: gpu.buffer("metrics", accWords * 4),
  };
  if (sparse) bufs.sparse = allocSparseLists(gpu, { B: batch, m: dSae, d: dIn });
  return bufs;
}

/** Draws `rows` rows from `src` in batches of at most `batch` rows. */
async function drawRows(src: ActivationSource, rows: number, batch: number): Promise<Float32Array> {
  const out = new Float32Array(rows * src.dIn);
  for (let r = 0; r < rows; r += batch) {
    const n = Math.min(batch, rows - r);
    await src.nextBatch(out.subarray(r * src.dIn, (r + n) * src.dIn));
  }
  return out;
}

/**
 * Fresh weights and input scale from an initial sample of `init_rows` rows, taken from the stream:
 * b_dec from the sample (b_dec_init), the scale from its norms (normalize_activations).
 */
export async function initialise(
  cfg: CoreConfig,
  src: ActivationSource,
): Promise<{ weights: SaeWeights; scale: number }> {
  const sample = await drawRows(src, cfg.init_rows, cfg.batch);
  const scale = normalizesInputs(cfg) ? normScale(sample, cfg.d_in) : 1;
  if (scale !== 1) { for (let i = 0; i < sample.length; i++) sample[i] *= scale; }
  checkSample(sample, cfg);
  const bDec = cfg.b_dec_init === "zeros"
    ? new Float32Array(cfg.d_in)
    : cfg.b_dec_init === "mean"
    ? rowMean(sample, cfg.d_in)
    : geometricMedian(sample, cfg.d_in);
  return { weights: initWeights(cfg.d_in, cfg.d_sae, cfg.seed, bDec), scale };
}

/** The largest finite f32. */
const F32_MAX = 3.4028234663852886e38;

/**
 * Refuses data the step cannot train on, seen in the initialisation sample (scaled as the step
 * scales it): rows so large that a batch's squared norms overflow f32 (the loss and the metrics
 * would be infinite although every value is finite), and rows that are all identical (no variance:
 * nothing to learn beyond their mean, and explained variance is undefined).
 */
function checkSample(sample: Float32Array, cfg: CoreConfig): void {
  const d = cfg.d_in;
  const n = sample.length / d;
  let maxSq = 0;
  let identical = true;
  for (let r = 0; r < n; r++) {
    let q = 0;
    for (let k = 0; k < d; k++) {
      const v = sample[r * d + k];
      q += v * v;
      if (identical && v !== sample[k]) identical = false;
    }
    maxSq = Math.max(maxSq, q);
  }
  if (maxSq * cfg.batch > F32_MAX) {
    throw new UserError(
      `the data's rows reach a norm of ${Math.sqrt(maxSq).toExponential(1)}: a batch's squared ` +
        `norms (${(maxSq * cfg.batch).toExponential(1)}) overflow f32 (largest 3.4e+38), so the ` +
        `loss and the metrics would be infinite although the values are finite; set ` +
        `normalize_activations: expected_average_only_in (--set ` +
        `normalize_activations=expected_average_only_in) or rescale the data`,
    );
  }
  if (identical && n > 1) {
    throw new UserError(
      `the data has no variance: the ${n} rows sampled to initialise (init_rows) are all ` +
        `identical, so there is nothing to learn beyond their mean and explained variance is ` +
        `undefined; check the data`,
    );
  }
}

/**
 * Initial weights: decoder rows random Gaussian directions of unit norm, W_enc = W_decᵀ (the same
 * [d_sae, d_in] array), b_enc = 0, b_dec given (from the data).
 */
export function initWeights(dIn: number, dSae: number, seed: number, bDec: Float32Array) {
  const rng = new Rng(seed ^ 0x5ae5ae);
  const wDec = new Float32Array(dSae * dIn);
  for (let i = 0; i < dSae; i++) {
    let s = 0;
    for (let k = 0; k < dIn; k++) {
      const v = rng.normal();
      wDec[i * dIn + k] = v;
      s += v * v;
    }
    const n = Math.sqrt(s);
    for (let k = 0; k < dIn; k++) wDec[i * dIn + k] /= n;
  }
  return { wEnc: wDec.slice(), bEnc: new Float32Array(dSae), wDec, bDec: bDec.slice() };
}

/** Mean of rows [n, d]. */
export function rowMean(x: Float32Array, d: number): Float32Array {
  const n = x.length / d;
  const acc = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let k = 0; k < d; k++) acc[k] += x[r * d + k];
  return Float32Array.from(acc, (v) => v / n);
}

/** Geometric median of rows [n, d] by Weiszfeld's iterations (as SAELens initialises b_dec). */
function geometricMedian(x: Float32Array, d: number, maxIter = 100, tol = 1e-6) {
  const n = x.length / d;
  let y = Float64Array.from(rowMean(x, d));
  for (let it = 0; it < maxIter; it++) {
    const num = new Float64Array(d);
    let den = 0;
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += (x[r * d + k] - y[k]) ** 2;
      const w = 1 / Math.max(Math.sqrt(s), 1e-8);
      den += w;
      for (let k = 0; k < d; k++) num[k] += w * x[r * d + k];
    }
    let move = 0, norm = 0;
    for (let k = 0; k < d; k++) {
      const v = num[k] / den;
      move += (v - y[k]) ** 2;
      norm += v * v;
      num[k] = v;
    }
    y = num;
    if (Math.sqrt(move) <= tol * Math.max(Math.sqrt(norm), 1)) break;
  }
  return Float32Array.from(y);
}

/** Scale so that rows have mean norm √d (SAELens' expected_average_only_in). */
function normScale(x: Float32Array, d: number): number {
  const n = x.length / d;
  let s = 0;
  for (let r = 0; r < n; r++) {
    let q = 0;
    for (let k = 0; k < d; k++) q += x[r * d + k] ** 2;
    s += Math.sqrt(q);
  }
  return Math.sqrt(d) / Math.max(s / n, 1e-30);
}
