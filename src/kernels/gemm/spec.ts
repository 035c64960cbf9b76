/**
 * What one GEMM is, for every path: its shape, layout, epilogue and buffers, the work it does
 * (its {@link KernelCost}), and the WGSL every path shares (wgsl/gemm.wgsl).
 */
import gemmSrc from "../../../wgsl/gemm.wgsl" with { type: "text" };
import type { Gpu } from "../../gpu/device.ts";
import type { KernelCost } from "../../gpu/dispatch.ts";
import type { Operand } from "../../gpu/split.ts";
import { withCommon } from "../common.ts";
import type { BcTile, TexTile, TiledTile, Vec4Tile } from "./tiles.ts";

/** What follows the matrix product. */
export type Epilogue =
  | "none"
  | "bias"
  | "bias_relu"
  | "relu_grad"
  | "bias_threshold"
  | "ortho_coef"
  | "accumulate"
  | "bias_gelu"
  | "bias_accumulate";

/** The EPILOGUE constant of each epilogue (the list in wgsl/gemm.wgsl). */
export const EPILOGUE_CODE: Record<Epilogue, number> = {
  none: 0,
  bias: 1,
  bias_relu: 2,
  relu_grad: 3,
  bias_threshold: 4,
  ortho_coef: 5,
  accumulate: 6,
  bias_gelu: 7,
  bias_accumulate: 8,
};

/** A GEMM kernel path (src/kernels/gemm/mod.ts describes each). */
export type GemmPath = "tiled" | "bcast" | "texture" | "vec4" | "scalar";

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

/** Options of `gemm` and `gemmDispatches`, mostly for tests and benchmarks. */
export interface GemmOptions {
  /**
   * Force a path: "bcast", "texture" and "vec4" throw if the shape cannot take them, "bcast" and
   * "texture" also in `gemm` (they need the packing dispatches). Default: see
   * src/kernels/gemm/choose.ts.
   */
  path?: GemmPath;
  /** Tiled-path tile; default: the timed choice cached for this adapter and shape, else a guess. */
  tiledTile?: TiledTile;
  /** vec4 tile shape (default GEMM_TILE.vec4). */
  tile?: Vec4Tile;
  /** Texture-path tile shape (T_R a multiple of 4 up to 32, T_CG 1-4; default texTileFor). */
  texTile?: TexTile;
  /** Broadcast-path tile limits (default GEMM_TILE.bcast; see bcPlan). */
  bcTile?: BcTile;
  /** Texture paths: texels per row of the packed textures (a power of two; default 8192). */
  texWidth?: number;
  /**
   * Store the operands the product reads as f16 (products and sums stay f32): halves the operand
   * bytes at ~1e-3 relative rounding per operand. On the tiled path (where the device has
   * shader-f16) as dense f16 copies in buffers; else on a packed-texture path wherever the shape
   * allows, whatever its size (rgba16float textures: no shader-f16 needed).
   */
  f16?: boolean;
  /**
   * Pack an operand whose packed copy is its bytes as they are (stored densely, and in the layout
   * the path reads: not transposed, not padded, f32) with a buffer-to-texture copy instead of a
   * packing kernel (default true; a copy is a memcpy on lavapipe, 5-12x faster).
   */
  packCopies?: boolean;
  /** Operand layout inside the bindings (default: tightly packed from offset 0). */
  layout?: Partial<GemmLayout>;
}

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
  /**
   * A or B is a row block of a matrix packed beforehand (`packRowBlocks`): the texture
   * paths read it from there instead of packing `a` / `b` (still bound, and packed as usual where
   * the packed layout does not fit the path).
   */
  packedA?: PackedBlock;
  packedB?: PackedBlock;
}

/** Texel format of the packed operands. */
export type TexFormat = "rgba32float" | "rgba16float";

/**
 * A matrix X [R, C] (row-major, dense) packed once for GEMMs that read blocks of its rows (the
 * orthogonality term's blocks of W_dec): `rows` holds X as stored (texel r·C/4 + c4), which is a
 * block as stored and, where K runs along C, along K; `blocksT` holds each block transposed
 * (the block of rb rows from row r0 from texel (r0/4)·C on, texel c·rb/4 + r4 of it holding
 * X[r0 + 4r4 .. r0 + 4r4 + 3, c]), a block along K where K runs along its rows.
 */
export interface PackedRowBlocks {
  rows: GPUTexture;
  /** Only where asked for (`packRowBlocks`). */
  blocksT?: GPUTexture;
  /** Rows and columns of X. */
  R: number;
  C: number;
  /** Rows per block (the last block may have fewer). */
  block: number;
  fmt: TexFormat;
}

/** Rows [r0, r0 + rows) of a {@link PackedRowBlocks}: one of its blocks. */
export interface PackedBlock {
  packed: PackedRowBlocks;
  r0: number;
  rows: number;
}

/** The layout of a GEMM: `opts.layout` over the tightly packed default. */
export function layoutOf(spec: GemmSpec, opts: GemmOptions): GemmLayout {
  return {
    lda: spec.transA ? spec.M : spec.K,
    ldb: spec.transB ? spec.K : spec.N,
    ldc: spec.N,
    offA: 0,
    offB: 0,
    offC: 0,
    eoff: 0,
    ...opts.layout,
  };
}

/** The layout's name: "N" or "T" for A, then for B ("NT": A [M,K], B stored [N,K]). */
export function layoutName(spec: Pick<GemmSpec, "transA" | "transB">): string {
  return `${spec.transA ? "T" : "N"}${spec.transB ? "T" : "N"}`;
}

/** Rows and columns of the stored matrix of operand `role` ("a": A, "b": B). */
export function storedShape(spec: GemmSpec, role: "a" | "b"): [number, number] {
  if (role === "a") return spec.transA ? [spec.K, spec.M] : [spec.M, spec.K];
  return spec.transB ? [spec.N, spec.K] : [spec.K, spec.N];
}

/** Floating-point operations of one GEMM (2·M·N·K). */
export function gemmFlops(spec: Pick<GemmSpec, "M" | "N" | "K">): number {
  return 2 * spec.M * spec.N * spec.K;
}

/**
 * The cost of one product dispatch over `k` of the GEMM's K (default all of it): 2·M·N·k FLOPs;
 * bytes: A and B once at `operandBytes` per element (2 for f16 textures), C written, C read
 * where `readC` (the accumulating epilogues, later chunks of K), and what the epilogue reads of E
 * and S where `epilogue` (f32 each).
 */
export function gemmCost(
  spec: GemmSpec,
  {
    k = spec.K,
    operandBytes = 4,
    readC = ["accumulate", "bias_accumulate"].includes(spec.epilogue),
    epilogue = true,
  } = {},
): KernelCost {
  const { M, N } = spec;
  let eps = 0;
  if (epilogue) {
    eps = {
      none: 0,
      bias: N,
      bias_relu: N,
      relu_grad: M * N, // the mask E [M,N]
      bias_threshold: 2 * N, // bias E and thresholds S
      ortho_coef: M + N, // importance of the rows and of the columns
      accumulate: 0,
      bias_gelu: N,
      bias_accumulate: N,
    }[spec.epilogue];
  }
  return {
    flops: 2 * M * N * k,
    bytes: operandBytes * (M + N) * k + 4 * M * N * (readC ? 2 : 1) + 4 * eps,
  };
}

/** The override constants of the shared WGSL: the layout and the epilogue. */
export function productConstants(spec: GemmSpec): Record<string, number> {
  return {
    TRANS_A: spec.transA ? 1 : 0,
    TRANS_B: spec.transB ? 1 : 0,
    EPILOGUE: EPILOGUE_CODE[spec.epilogue],
    SCALAR_IDX: spec.scalarIdx ?? 0,
  };
}

/**
 * The bindings of a product dispatch (wgsl/gemm.wgsl): A, B (or, on the packed paths, `packed`:
 * their textures instead), C, E and S (a dummy where the epilogue reads none), the Params.
 */
export function productBindings(
  gpu: Gpu,
  bufs: GemmBuffers,
  params: GPUBuffer,
  packed?: [GPUTexture, GPUTexture],
): (Operand | GPUTexture | null)[] {
  const [a, b] = packed ? [null, null] : [bufs.a, bufs.b];
  return [a, b, bufs.c, bufs.e ?? gpu.dummy(), bufs.s ?? gpu.dummy(), params, ...packed ?? []];
}

/** A GEMM source: wgsl/common.wgsl, wgsl/gemm.wgsl, then the path's parts. */
export function gemmSource(...parts: string[]): string {
  return withCommon([gemmSrc, ...parts].join("\n"));
}
