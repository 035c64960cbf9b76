/**
 * The GEMM family (wgsl/gemm.wgsl): C[M,N] = epilogue(op(A)·op(B)) in the layouts the SAE step needs.
 *
 * | use in the step        | layout | A            | B              | epilogue   |
 * |------------------------|--------|--------------|----------------|------------|
 * | pre = x·W_encᵀ + b_enc | NT     | x [B,d]      | W_enc [m,d]    | bias_relu  |
 * | x̂ = f·W_dec + b_dec    | NN     | f [B,m]      | W_dec [m,d]    | bias       |
 * | dF = dX̂·W_decᵀ         | NT     | dX̂ [B,d]     | W_dec [m,d]    | relu_grad  |
 * | dW_dec = fᵀ·dX̂         | TN     | f [B,m]      | dX̂ [B,d]       | none       |
 * | dW_enc = dpreᵀ·x       | TN     | dpre [B,m]   | x [B,d]        | none       |
 */
import gemmSrc from "../../wgsl/gemm.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { cdiv, type Dispatch } from "../gpu/dispatch.ts";

/** What follows the matrix product. */
export type Epilogue = "none" | "bias" | "bias_relu" | "relu_grad";

const EPILOGUE_CODE: Record<Epilogue, number> = { none: 0, bias: 1, bias_relu: 2, relu_grad: 3 };

/** Tile shape: the one place it is set. BM = WG_Y·TM, BN = WG_X·TN. */
export const GEMM_TILE = { WG_X: 16, WG_Y: 16, TM: 4, BK: 16 } as const;
/** Columns per thread: fixed at 4 (one vec4 accumulator per row) in wgsl/gemm.wgsl. */
const TN = 4;

/** Shape and layout of one GEMM. */
export interface GemmSpec {
  label: string;
  M: number;
  N: number;
  K: number;
  /** A is stored [K,M] instead of [M,K]. */
  transA: boolean;
  /** B is stored [N,K] instead of [K,N]. */
  transB: boolean;
  epilogue: Epilogue;
  /** For "relu_grad": index into the scalars buffer S of the value added before masking. */
  scalarIdx?: number;
}

/** Buffers of one GEMM; `e` is the bias [N] or mask [M,N], `s` the step scalars. */
export interface GemmBuffers {
  a: GPUBuffer;
  b: GPUBuffer;
  c: GPUBuffer;
  e?: GPUBuffer;
  s?: GPUBuffer;
}

/** Creates the pipeline and bind group of one GEMM; run it with the returned dispatch. */
export async function gemm(gpu: Gpu, spec: GemmSpec, bufs: GemmBuffers): Promise<Dispatch> {
  const t = GEMM_TILE;
  const pipeline = await gpu.pipeline(`gemm ${spec.label}`, gemmSrc, {
    TRANS_A: spec.transA ? 1 : 0,
    TRANS_B: spec.transB ? 1 : 0,
    EPILOGUE: EPILOGUE_CODE[spec.epilogue],
    SCALAR_IDX: spec.scalarIdx ?? 0,
    ...GEMM_TILE,
  });
  const params = gpu.uniform(
    `gemm ${spec.label} params`,
    new Uint32Array([spec.M, spec.N, spec.K, 0]).buffer,
  );
  const bindGroup = gpu.bindGroup(pipeline, [
    bufs.a,
    bufs.b,
    bufs.c,
    bufs.e ?? gpu.dummy(),
    bufs.s ?? gpu.dummy(),
    params,
  ]);
  return {
    label: spec.label,
    pipeline,
    bindGroup,
    groups: [cdiv(spec.N, t.WG_X * TN), cdiv(spec.M, t.WG_Y * t.TM), 1],
  };
}

/** Floating-point operations of one GEMM (2·M·N·K). */
export function gemmFlops(spec: Pick<GemmSpec, "M" | "N" | "K">): number {
  return 2 * spec.M * spec.N * spec.K;
}

/** Plain-TypeScript reference of {@link gemm} (f64 accumulation). */
export function gemmReference(
  spec: GemmSpec,
  a: Float32Array,
  b: Float32Array,
  e?: Float32Array,
  s?: Float32Array,
): Float32Array {
  const { M, N, K } = spec;
  const c = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) {
        const av = spec.transA ? a[k * M + m] : a[m * K + k];
        const bv = spec.transB ? b[n * K + k] : b[k * N + n];
        acc += av * bv;
      }
      switch (spec.epilogue) {
        case "bias":
          acc += e![n];
          break;
        case "bias_relu":
          acc = Math.max(acc + e![n], 0);
          break;
        case "relu_grad":
          acc = e![m * N + n] > 0 ? acc + s![spec.scalarIdx ?? 0] : 0;
          break;
      }
      c[m * N + n] = acc;
    }
  }
  return c;
}
