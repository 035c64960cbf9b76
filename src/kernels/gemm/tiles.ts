/**
 * The GEMM's tile shapes: the one place they are set (choose.ts picks among them per adapter and
 * shape; the paths pass them to WGSL as override constants).
 */

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

/** Broadcast path: at most T lanes, R shared rows, chunks of K of at most KC4 texels. */
export interface BcTile {
  T: number;
  R: number;
  KC4: number;
}

/** The tiles of each path (and of the vec4 path per adapter class). */
export const GEMM_TILE = {
  /** Fallback for sizes vec4 cannot take. BM = WG_Y·TM, BN = WG_X·4. */
  scalar: { WG_X: 16, WG_Y: 16, TM: 4, BK: 16 },
  /** Broadcast path (CPU adapters), limits: bcPlan fits them to the shape and the device. */
  bcast: { T: 512, R: 12, KC4: 128 } satisfies BcTile,
  /** Texture path. BM = T_R, BN = T_WG·4·T_CG; texTileFor adapts it to the shape. */
  texture: { T_WG: 64, T_R: 16, T_CG: 2 } satisfies TexTile,
  /** vec4 path on a CPU adapter (single-dispatch `gemm`, and GEMMs too small to pack). */
  cpu: { V_WG_X: 8, V_WG_Y: 8, V_RG: 2, V_CG: 2 } satisfies Vec4Tile,
  /** vec4 path on other adapters (untuned: 16x16 invocations, 128x128 tile). */
  gpu: { V_WG_X: 16, V_WG_Y: 16, V_RG: 2, V_CG: 2 } satisfies Vec4Tile,
} as const;
