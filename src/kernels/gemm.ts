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
export type Epilogue =
  | "none"
  | "bias"
  | "bias_relu"
  | "relu_grad"
  | "bias_threshold"
  | "ortho_coef"
  | "accumulate";

const EPILOGUE_CODE: Record<Epilogue, number> = {
  none: 0,
  bias: 1,
  bias_relu: 2,
  relu_grad: 3,
  bias_threshold: 4,
  ortho_coef: 5,
  accumulate: 6,
};

/**
 * Tile shapes: the one place they are set.
 *
 * `vec4` (entry point `main_v4`) is the fast path: no workgroup memory, each invocation keeps an
 * (4·RG)x(4·CG) block of C in registers and loads both operands as vec4 along their contiguous
 * dimension. It needs K % 4 == 0, M % 4 == 0 when A is transposed, N % 4 == 0 when B is not (see
 * {@link vec4Ok}); every SAE size qualifies. Other sizes use `scalar` (entry point `main`, a 64x64x16
 * shared-memory tile with any M, N, K).
 *
 * Why no workgroup memory: on llvmpipe/lavapipe every load whose address differs per invocation
 * is a per-lane loop (8 scalar loads, each with bounds check and branch); a workgroup-memory tile
 * adds a store and a load of that kind per element plus barriers, and gains nothing since the CPU
 * caches hold the operands anyway. What pays is loaded values reused from registers: an 8x8 block
 * does 256 FMAs per 16 vec4 loads. Measured on lavapipe (bench/RESULTS.md).
 *
 * Adapters: CPU adapters (llvmpipe, lavapipe, SwiftShader, or `isFallbackAdapter`) get `cpu`; other
 * adapters get `gpu`, an untuned guess (same kernel, 16x16 invocations, 128x128 tile) left for the
 * H100 tuning issue, which may add a workgroup-memory variant there.
 */
export const GEMM_TILE = {
  /** Fallback for sizes vec4 cannot take. BM = WG_Y·TM, BN = WG_X·4. */
  scalar: { WG_X: 16, WG_Y: 16, TM: 4, BK: 16 },
  /** vec4 fast path on a CPU adapter. BM = V_WG_Y·4·V_RG, BN = V_WG_X·4·V_CG. */
  cpu: { V_WG_X: 8, V_WG_Y: 8, V_RG: 2, V_CG: 2 },
  /** vec4 fast path on other adapters (untuned). */
  gpu: { V_WG_X: 16, V_WG_Y: 16, V_RG: 2, V_CG: 2 },
} as const;
/** Columns per thread of the scalar fallback: fixed at 4 (one vec4 accumulator per row). */
const TN = 4;

/** Whether `name` is a CPU (software) WebGPU adapter. */
export function isCpuAdapter(name: string): boolean {
  return /llvmpipe|lavapipe|swiftshader|software|cpu/i.test(name);
}

/** Whether the vec4 path can run this shape (its vec4 dimensions are multiples of 4). */
export function vec4Ok(spec: Pick<GemmSpec, "M" | "N" | "K" | "transA" | "transB">): boolean {
  return spec.K % 4 === 0 && (!spec.transA || spec.M % 4 === 0) &&
    (spec.transB || spec.N % 4 === 0);
}

/** Options of {@link gemm}, mostly for tests and benchmarks. */
export interface GemmOptions {
  /** Force a path: "vec4" throws if the shape cannot take it. Default: vec4 when possible. */
  path?: "vec4" | "scalar";
  /** vec4 tile shape; default from the adapter (see {@link GEMM_TILE}). */
  tile?: { V_WG_X: number; V_WG_Y: number; V_RG: 1 | 2; V_CG: 1 | 2 };
}

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
  /** For "ortho_coef": global row index of this GEMM's first row (A may be a row chunk). */
  row0?: number;
}

/** A whole buffer, or a byte range of one (offset a multiple of 256). */
export type Operand = GPUBuffer | GPUBufferBinding;

/**
 * Buffers of one GEMM; `e` is the bias [N], mask [M,N] or importance vector, `s` the step
 * scalars or thresholds (see the epilogues in wgsl/gemm.wgsl).
 */
export interface GemmBuffers {
  a: Operand;
  b: Operand;
  c: Operand;
  e?: GPUBuffer;
  s?: GPUBuffer;
}

/** Creates the pipeline and bind group of one GEMM; run it with the returned dispatch. */
export async function gemm(
  gpu: Gpu,
  spec: GemmSpec,
  bufs: GemmBuffers,
  opts: GemmOptions = {},
): Promise<Dispatch> {
  const path = opts.path ?? (vec4Ok(spec) ? "vec4" : "scalar");
  if (path === "vec4" && !vec4Ok(spec)) {
    throw new Error(`gemm ${spec.label}: ${spec.M}x${spec.N}x${spec.K} cannot take the vec4 path`);
  }
  const common = {
    TRANS_A: spec.transA ? 1 : 0,
    TRANS_B: spec.transB ? 1 : 0,
    EPILOGUE: EPILOGUE_CODE[spec.epilogue],
    SCALAR_IDX: spec.scalarIdx ?? 0,
  };
  let pipeline: GPUComputePipeline;
  let groups: [number, number, number];
  if (path === "vec4") {
    const t = opts.tile ?? (isCpuAdapter(gpu.adapterName) ? GEMM_TILE.cpu : GEMM_TILE.gpu);
    pipeline = await gpu.pipeline(`gemm ${spec.label}`, gemmSrc, { ...common, ...t }, "main_v4");
    groups = [cdiv(spec.N, t.V_WG_X * 4 * t.V_CG), cdiv(spec.M, t.V_WG_Y * 4 * t.V_RG), 1];
  } else {
    const t = GEMM_TILE.scalar;
    pipeline = await gpu.pipeline(`gemm ${spec.label}`, gemmSrc, { ...common, ...t }, "main");
    groups = [cdiv(spec.N, t.WG_X * TN), cdiv(spec.M, t.WG_Y * t.TM), 1];
  }
  const params = gpu.uniform(
    `gemm ${spec.label} params`,
    new Uint32Array([spec.M, spec.N, spec.K, spec.row0 ?? 0]).buffer,
  );
  const bindGroup = gpu.bindGroup(pipeline, [
    bufs.a,
    bufs.b,
    bufs.c,
    bufs.e ?? gpu.dummy(),
    bufs.s ?? gpu.dummy(),
    params,
  ]);
  return { label: spec.label, pipeline, bindGroup, groups };
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
  cIn?: Float32Array,
): Float32Array {
  const { M, N, K } = spec;
  const c = cIn ? cIn.slice() : new Float32Array(M * N);
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
        case "bias_threshold":
          acc += e![n];
          if (!(acc > Math.max(s![n], 0))) acc = 0;
          break;
        case "ortho_coef": {
          const i = (spec.row0 ?? 0) + m;
          acc = i === n ? 0 : s![0] * e![i] * e![n] * acc / (Math.abs(acc) + s![1]);
          break;
        }
        case "accumulate":
          acc += c[m * N + n];
          break;
      }
      c[m * N + n] = acc;
    }
  }
  return c;
}
