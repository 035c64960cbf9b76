/**
 * The SAE's forward pass on the GPU, as dispatches built once: the training step (step.ts) and the
 * evaluation forward (src/eval/evaluate.ts) both build it here.
 *
 *   prepare   x ← scale·x;  x_c = x − b_dec (or x)                              [B,d]
 *   encode    f = ReLU(x_c·W_encᵀ + b_enc), or with τ: pre·1[pre > max(τ, 0)]   [B,m]
 *             or, with an activation: pre = x_c·W_encᵀ + b_enc, then f from pre
 *   decode    x̂ = f·W_dec + b_dec                                              [B,d]
 */
import type { Gpu } from "../gpu/device.ts";
import type { Dispatch } from "../gpu/dispatch.ts";
import { gemmDispatches } from "../kernels/gemm/mod.ts";
import { type LossBuffers, type LossSpec, prepareKernel } from "../kernels/loss.ts";
import { allocTopKLists, rowTopKKernel, type TopKLists } from "../kernels/topk.ts";

/** Shapes and options of the forward pass. */
export interface ForwardSpec extends LossSpec {
  dSae: number;
  /** GEMM operands stored as f16 (the config's gemm_f16). */
  f16: boolean;
  /** Prefix of the GEMM labels ("" in the step, "eval " in evaluation). */
  label: string;
}

/**
 * An activation other than the encoder GEMM's own (ReLU, or ReLU with thresholds): the encoder
 * writes the pre-activations pre = x_c·W_encᵀ + b_enc into `pre` and `dispatches` write f from them
 * (TopK's and BatchTopK's selections, JumpReLU's learned thresholds).
 */
export interface Activation {
  /** pre: [B, d_sae] f32, the encoder's output. */
  pre: GPUBuffer;
  /** Write f [B, d_sae] from pre (and whatever state the activation keeps). */
  dispatches: Dispatch[];
  /**
   * Where every row keeps at most k entries listed in index order (the row top-k): the sparse
   * path takes its CSR from these lists instead of scanning f.
   */
  rows?: { lists: TopKLists; k: number };
}

/** Its buffers: the loss kernels' (prepare binds x, x_c and b_dec) and the parameters. */
export interface ForwardBuffers extends LossBuffers {
  f: GPUBuffer; // [B, d_sae] latents
  wEnc: GPUBuffer; // [d_sae, d_in]
  bEnc: GPUBuffer; // [d_sae]
  wDec: GPUBuffer; // [d_sae, d_in]
  /** thresholds: [d_sae] τ, or absent for ReLU (ignored with an activation). */
  thresholds?: GPUBuffer;
  /** The activation, when it is not the encoder GEMM's epilogue. */
  activation?: Activation;
}

/**
 * SAELens' TopK activation as an {@link Activation}: f = ReLU(TopK_k(pre)) per row (select the k
 * largest pre-activations, ties to the lowest index, then ReLU the kept values), with the kept
 * entries listed for the sparse path. Allocates pre [B, m] and the lists.
 */
export async function rowTopKActivation(
  gpu: Gpu,
  s: { B: number; m: number; k: number },
  f: GPUBuffer,
): Promise<Activation> {
  const pre = gpu.buffer("pre", s.B * s.m * 4);
  const lists = allocTopKLists(gpu, s.B, s.k);
  return {
    pre,
    dispatches: await rowTopKKernel(gpu, s, { pre, f, lists }, { label: "topk" }),
    rows: { lists, k: s.k },
  };
}

/** The three parts of the forward pass (encode and decode split over views when large). */
export async function forwardPass(
  gpu: Gpu,
  s: ForwardSpec,
  b: ForwardBuffers,
): Promise<{ prepare: Dispatch; encode: Dispatch[]; decode: Dispatch[] }> {
  const { batch: B, dIn: d, dSae: m } = s;
  const opts = { f16: s.f16 };
  const act = b.activation;
  const thresholds = act ? undefined : b.thresholds;
  const encode = await gemmDispatches(
    gpu,
    {
      label: `${s.label}encode`,
      M: B,
      N: m,
      K: d,
      transA: false,
      transB: true,
      epilogue: act ? "bias" : thresholds ? "bias_threshold" : "bias_relu",
    },
    { a: b.xc, b: b.wEnc, c: act ? act.pre : b.f, e: b.bEnc, s: thresholds },
    opts,
  );
  return {
    prepare: await prepareKernel(gpu, s, b),
    encode: [...encode, ...(act?.dispatches ?? [])],
    decode: await gemmDispatches(
      gpu,
      {
        label: `${s.label}decode`,
        M: B,
        N: d,
        K: m,
        transA: false,
        transB: false,
        epilogue: "bias",
      },
      { a: b.f, b: b.wDec, c: b.xhat, e: b.bDec },
      opts,
    ),
  };
}
