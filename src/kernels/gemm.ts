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
import { fits, type Operand, view, viewElems } from "../gpu/split.ts";

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

/**
 * Whether the vec4 path can run this shape (its vec4 dimensions are multiples of 4, and so are
 * the leading dimensions and offsets of A and B when given).
 */
export function vec4Ok(
  spec: Pick<GemmSpec, "M" | "N" | "K" | "transA" | "transB">,
  layout: Partial<GemmLayout> = {},
): boolean {
  const l = [layout.lda, layout.ldb, layout.offA, layout.offB].filter((v) => v !== undefined);
  return spec.K % 4 === 0 && (!spec.transA || spec.M % 4 === 0) &&
    (spec.transB || spec.N % 4 === 0) && l.every((v) => v! % 4 === 0);
}

/**
 * Where the operands of one GEMM live in their bindings (elements): leading dimensions of the
 * stored matrices, their start offsets, and the global column of column 0 (for per-column
 * vectors). Defaults: tightly packed, offset 0.
 */
export interface GemmLayout {
  lda: number;
  ldb: number;
  ldc: number;
  offA: number;
  offB: number;
  offC: number;
  eoff: number;
}

function defaultLayout(spec: GemmSpec): GemmLayout {
  return {
    lda: spec.transA ? spec.M : spec.K,
    ldb: spec.transB ? spec.K : spec.N,
    ldc: spec.N,
    offA: 0,
    offB: 0,
    offC: 0,
    eoff: 0,
  };
}

/** Options of {@link gemm}, mostly for tests and benchmarks. */
export interface GemmOptions {
  /** Force a path: "vec4" throws if the shape cannot take it. Default: vec4 when possible. */
  path?: "vec4" | "scalar";
  /** vec4 tile shape; default from the adapter (see {@link GEMM_TILE}). */
  tile?: { V_WG_X: number; V_WG_Y: number; V_RG: 1 | 2; V_CG: 1 | 2 };
  /** Operand layout inside the bindings (default: tightly packed from offset 0). */
  layout?: Partial<GemmLayout>;
  /** Reuse this pipeline (made by an earlier call with the same spec, path and epilogue). */
  pipeline?: GPUComputePipeline;
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

export type { Operand };

/**
 * Buffers of one GEMM; `e` is the bias [N], mask [M,N] or importance vector, `s` the step
 * scalars or thresholds (see the epilogues in wgsl/gemm.wgsl).
 */
export interface GemmBuffers {
  a: Operand;
  b: Operand;
  c: Operand;
  e?: Operand;
  s?: Operand;
}

/** Creates the pipeline and bind group of one GEMM; run it with the returned dispatch. */
export async function gemm(
  gpu: Gpu,
  spec: GemmSpec,
  bufs: GemmBuffers,
  opts: GemmOptions = {},
): Promise<Dispatch> {
  const layout = { ...defaultLayout(spec), ...opts.layout };
  const path = opts.path ?? (vec4Ok(spec, layout) ? "vec4" : "scalar");
  if (path === "vec4" && !vec4Ok(spec, layout)) {
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
    pipeline = opts.pipeline ??
      await gpu.pipeline(`gemm ${spec.label}`, gemmSrc, { ...common, ...t }, "main_v4");
    groups = [cdiv(spec.N, t.V_WG_X * 4 * t.V_CG), cdiv(spec.M, t.V_WG_Y * 4 * t.V_RG), 1];
  } else {
    const t = GEMM_TILE.scalar;
    pipeline = opts.pipeline ??
      await gpu.pipeline(`gemm ${spec.label}`, gemmSrc, { ...common, ...t }, "main");
    groups = [cdiv(spec.N, t.WG_X * TN), cdiv(spec.M, t.WG_Y * t.TM), 1];
  }
  const params = gpu.uniform(
    `gemm ${spec.label} params`,
    new Uint32Array([
      spec.M,
      spec.N,
      spec.K,
      spec.row0 ?? 0,
      layout.lda,
      layout.ldb,
      layout.ldc,
      layout.offA,
      layout.offB,
      layout.offC,
      layout.eoff,
      0,
    ]).buffer,
  );
  const bindGroup = gpu.bindGroup(pipeline, [
    bufs.a,
    bufs.b,
    bufs.c,
    bufs.e ?? gpu.dummy(),
    bufs.s ?? gpu.dummy(),
    params,
  ], spec.label);
  return { label: spec.label, pipeline, bindGroup, groups };
}

/**
 * The GEMM as one dispatch when every operand fits a storage binding (the same dispatch as
 * {@link gemm}), else as parts over views of the operands (src/gpu/split.ts): blocks of rows of
 * C and of the inner dimension such that each stored operand's touched span fits one binding.
 * Every stored matrix is row-major, so a block touches a contiguous span of it once the block's
 * rows are bounded; parts along K accumulate (allowed for the "none", "bias" and "accumulate"
 * epilogues, the bias added by the first part). `e` of "relu_grad" is laid out like C.
 */
export async function gemmDispatches(
  gpu: Gpu,
  spec: GemmSpec,
  bufs: GemmBuffers,
  opts: GemmOptions = {},
): Promise<Dispatch[]> {
  // Only the operands the epilogue reads are bound (E and S fill unused slots with a dummy).
  const ep = spec.epilogue;
  bufs = {
    ...bufs,
    e: ["none", "accumulate"].includes(ep) ? undefined : bufs.e,
    s: ["relu_grad", "bias_threshold", "ortho_coef"].includes(ep) ? bufs.s : undefined,
  };
  const small = [bufs.a, bufs.b, bufs.c, bufs.e, bufs.s].every((o) => !o || fits(gpu, o));
  if (small) return [await gemm(gpu, spec, bufs, opts)];
  const { M, N, K } = spec;
  type Dim = "M" | "N" | "K";
  const mats: { rows: Dim; cols: Dim; ld: number }[] = [
    spec.transA ? { rows: "K", cols: "M", ld: M } : { rows: "M", cols: "K", ld: K },
    spec.transB ? { rows: "N", cols: "K", ld: K } : { rows: "K", cols: "N", ld: N },
    { rows: "M", cols: "N", ld: N },
  ];
  const blk: Record<Dim, number> = { M, N, K };
  const L = viewElems(gpu);
  for (let changed = true; changed;) {
    changed = false;
    for (const mt of mats) {
      const c = blk[mt.cols];
      if ((blk[mt.rows] - 1) * mt.ld + c <= L) continue;
      const rows = Math.floor(Math.floor((L - c) / mt.ld + 1) / 4) * 4;
      if (rows < 4) {
        throw new Error(`gemm ${spec.label}: 4 rows of ${mt.ld} f32 exceed the binding limit`);
      }
      blk[mt.rows] = rows;
      changed = true;
    }
  }
  const kSplit = blk.K < K;
  if (kSplit && !["none", "bias", "accumulate"].includes(spec.epilogue)) {
    throw new Error(`gemm ${spec.label}: epilogue ${spec.epilogue} cannot be split along K`);
  }
  const pipelines = new Map<string, GPUComputePipeline>();
  const out: Dispatch[] = [];
  for (let m0 = 0; m0 < M; m0 += blk.M) {
    const bm = Math.min(blk.M, M - m0);
    for (let n0 = 0; n0 < N; n0 += blk.N) {
      const bn = Math.min(blk.N, N - n0);
      for (let k0 = 0; k0 < K; k0 += blk.K) {
        const bk = Math.min(blk.K, K - k0);
        const at = { M: m0, N: n0, K: k0 };
        const size = { M: bm, N: bn, K: bk };
        const views = [bufs.a, bufs.b, bufs.c].map((op, i) => {
          const mt = mats[i];
          const start = at[mt.rows] * mt.ld + at[mt.cols];
          return view(gpu, op, start, (size[mt.rows] - 1) * mt.ld + size[mt.cols]);
        });
        let e: Operand | undefined = bufs.e;
        if (spec.epilogue === "relu_grad") {
          const ev = view(gpu, bufs.e!, m0 * N + n0, (bm - 1) * N + bn);
          if (ev.off !== views[2].off) throw new Error(`gemm ${spec.label}: E and C misaligned`);
          e = ev.binding;
        }
        const epilogue = k0 === 0 ? spec.epilogue : "accumulate";
        const sub: GemmSpec = {
          ...spec,
          M: bm,
          N: bn,
          K: bk,
          epilogue,
          row0: (spec.row0 ?? 0) + m0,
        };
        const layout: GemmLayout = {
          lda: mats[0].ld,
          ldb: mats[1].ld,
          ldc: N,
          offA: views[0].off,
          offB: views[1].off,
          offC: views[2].off,
          eoff: (opts.layout?.eoff ?? 0) + n0,
        };
        const path = opts.path ?? (vec4Ok(sub, layout) ? "vec4" : "scalar");
        const key = `${path} ${epilogue}`;
        const d = await gemm(gpu, sub, {
          a: views[0].binding,
          b: views[1].binding,
          c: views[2].binding,
          e,
          s: bufs.s,
        }, { ...opts, path, layout, pipeline: pipelines.get(key) });
        pipelines.set(key, d.pipeline);
        out.push(d);
      }
    }
  }
  return out;
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
