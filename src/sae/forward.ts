/**
 * The SAE's forward pass on the GPU, as dispatches built once: the training step (step.ts) and the
 * evaluation forward (src/eval/evaluate.ts) both build it here.
 *
 *   prepare   x ← scale·x;  x_c = x − b_dec (or x)                              [B,d]
 *   encode    f = ReLU(x_c·W_encᵀ + b_enc), or with τ: pre·1[pre > max(τ, 0)]   [B,m]
 *   decode    x̂ = f·W_dec + b_dec                                              [B,d]
 */
import type { Gpu } from "../gpu/device.ts";
import type { Dispatch } from "../gpu/dispatch.ts";
import { gemmDispatches } from "../kernels/gemm/mod.ts";
import { type LossBuffers, type LossSpec, prepareKernel } from "../kernels/loss.ts";

/** Shapes and options of the forward pass. */
export interface ForwardSpec extends LossSpec {
  dSae: number;
  /** GEMM operands stored as f16 (the config's gemm_f16). */
  f16: boolean;
  /** Prefix of the GEMM labels ("" in the step, "eval " in evaluation). */
  label: string;
}

/** Its buffers: the loss kernels' (prepare binds x, x_c and b_dec) and the parameters. */
export interface ForwardBuffers extends LossBuffers {
  f: GPUBuffer; // [B, d_sae] latents
  wEnc: GPUBuffer; // [d_sae, d_in]
  bEnc: GPUBuffer; // [d_sae]
  wDec: GPUBuffer; // [d_sae, d_in]
  /** thresholds: [d_sae] τ, or absent for ReLU. */
  thresholds?: GPUBuffer;
}

/** The three parts of the forward pass (encode and decode split over views when large). */
export async function forwardPass(
  gpu: Gpu,
  s: ForwardSpec,
  b: ForwardBuffers,
): Promise<{ prepare: Dispatch; encode: Dispatch[]; decode: Dispatch[] }> {
  const { batch: B, dIn: d, dSae: m } = s;
  const opts = { f16: s.f16 };
  return {
    prepare: await prepareKernel(gpu, s, b),
    encode: await gemmDispatches(
      gpu,
      {
        label: `${s.label}encode`,
        M: B,
        N: m,
        K: d,
        transA: false,
        transB: true,
        epilogue: b.thresholds ? "bias_threshold" : "bias_relu",
      },
      { a: b.xc, b: b.wEnc, c: b.f, e: b.bEnc, s: b.thresholds },
      opts,
    ),
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
