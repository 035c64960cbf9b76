/**
 * The GEMM's tile shapes: the one place they are set (choose.ts picks among them per adapter and
 * shape; the paths pass them to WGSL as override constants).
 */

/**
 * Tiled path: BM x BN block tiles staged in workgroup memory over K steps of BK, each of the
 * (BN/TN) x (BM/TM) invocations keeping a TM x TN register tile (wgsl/gemm_tiled.wgsl).
 */
export interface TiledTile {
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
}

/** vec4 path: V_WG_X x V_WG_Y invocations, each (4·V_RG)x(4·V_CG) outputs. */
export interface Vec4Tile {
  V_WG_X: number;
  V_WG_Y: number;
  V_RG: 1 | 2;
  V_CG: 1 | 2;
}

/** Texture path: T_R rows (a multiple of 4, up to 32) by T_WG·4·T_CG columns (T_CG 1-4). */
export interface TexTile {
  T_WG: number;
  T_R: number;
  T_CG: number;
}

/**
 * Broadcast path: at most T lanes, R shared rows, stages of K of at most KC4 texels, at most U
 * texels of K (whole stages) per dispatch.
 */
export interface BcTile {
  T: number;
  R: number;
  KC4: number;
  U: number;
}

/** The tiles of each path. */
export const GEMM_TILE = {
  /** Fallback for sizes vec4 cannot take. BM = WG_Y·TM, BN = WG_X·4. */
  scalar: { WG_X: 16, WG_Y: 16, TM: 4, BK: 16 },
  /** Broadcast path (CPU adapters), limits: bcPlan fits them to the shape and the device. */
  bcast: { T: 512, R: 20, KC4: 64, U: 256 } satisfies BcTile,
  /** Texture path. BM = T_R, BN = T_WG·4·T_CG; texTileFor adapts it to the shape. */
  texture: { T_WG: 64, T_R: 16, T_CG: 2 } satisfies TexTile,
  /** vec4 path (CPU adapters: the single-dispatch `gemm`, and GEMMs too small to pack). */
  vec4: { V_WG_X: 8, V_WG_Y: 8, V_RG: 2, V_CG: 2 } satisfies Vec4Tile,
  /**
   * Tiled path (GPUs) without a timed choice (src/kernels/gemm/cache.ts): 128x128 where the GEMM
   * has at least {@link TILED_BIG_MIN_BLOCKS} such blocks, else 64x64 for more workgroups.
   * Untimed guesses from the CUDA SIMT kernels' usual shapes; `deno task tune` times them.
   */
  tiled: { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 } satisfies TiledTile,
  tiledSmall: { BM: 64, BN: 64, BK: 8, TM: 8, TN: 8 } satisfies TiledTile,
} as const;

/** Fewest 128x128 blocks of C for which the tiled path's default is the 128x128 tile. */
export const TILED_BIG_MIN_BLOCKS = 256;

/**
 * The tiles `deno task tune` times on the tiled path (a cached choice must be one of them): block
 * tiles of 64-128 x 64-128, K steps of 8-16, register tiles of 4x4 to 8x8 (those over the
 * device's workgroup limits are left out where used).
 */
export const TILED_CANDIDATES: readonly TiledTile[] = [
  GEMM_TILE.tiled,
  { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8 },
  { BM: 128, BN: 64, BK: 8, TM: 8, TN: 8 },
  { BM: 64, BN: 128, BK: 8, TM: 8, TN: 8 },
  GEMM_TILE.tiledSmall,
  { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
  { BM: 128, BN: 64, BK: 16, TM: 8, TN: 4 },
];
