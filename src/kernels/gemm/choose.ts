/**
 * Which path and tile each GEMM takes: the one place these choices are made. They key on the
 * adapter's class (src/gpu/adapter.ts: detected, or forced by SAE_ADAPTER_CLASS), the GEMM's
 * size and shape, and the options.
 *
 * GPUs take the tiled path, any shape, with the tile timed for this adapter and shape class where
 * `deno task tune` cached one (cache.ts), else GEMM_TILE.tiled / .tiledSmall by size; f16 operands
 * there as dense f16 copies where the device has shader-f16, else on the texture path.
 *
 * CPU adapters (llvmpipe, lavapipe, SwiftShader) take the broadcast path from
 * {@link BCAST_MIN_FLOPS} up, the texture path from {@link TEXTURE_MIN_FLOPS} up, else vec4; f16
 * operands a packed path whatever the size. A shape the vec4 path cannot take ({@link vec4Ok}; the
 * packed paths read the same fragments) takes the scalar fallback there; a packed path whose
 * textures would exceed the device's limit falls back to the next.
 */
import { adapterClass } from "../../gpu/adapter.ts";
import type { Gpu } from "../../gpu/device.ts";
import { cdiv } from "../../gpu/dispatch.ts";
import { bcastFits } from "./bcast.ts";
import { cachedTile } from "./cache.ts";
import { packingOf } from "./pack.ts";
import {
  gemmFlops,
  type GemmLayout,
  type GemmOptions,
  type GemmPath,
  type GemmSpec,
  layoutOf,
} from "./spec.ts";
import { textureFits } from "./texture.ts";
import {
  type BcTile,
  GEMM_TILE,
  type TexTile,
  TILED_BIG_MIN_BLOCKS,
  type TiledTile,
  type Vec4Tile,
} from "./tiles.ts";
import { vec4Ok } from "./vec4.ts";

/**
 * Smallest GEMM (2·M·N·K FLOPs) that takes a packed-texture path by default on CPU adapters:
 * below it the two packing dispatches cost more than they save (GPU timestamps on lavapipe,
 * texture path: 0.3 MFLOP 0.08 ms vec4 vs 0.13 ms texture; ~4 MFLOP a tie; 17 MFLOP, the CPU
 * default step's GEMMs, 1.3-1.6x faster).
 */
const TEXTURE_MIN_FLOPS = 2 ** 23;

/**
 * Smallest GEMM that takes the broadcast path by default on CPU adapters (smaller ones from
 * {@link TEXTURE_MIN_FLOPS} take the texture path): its staging and per-row stores are paid per
 * workgroup whatever K is, and at the CPU default shape (17 MFLOP GEMMs, K 64-512) `deno task
 * train` ran 5% slower with it; at 67 MFLOP (B=256, d 128, m 1024) the two paths were within
 * noise, at 4.3 GFLOP it is 1.1-1.4x faster (bench/RESULTS.md).
 */
const BCAST_MIN_FLOPS = 2 ** 27;

/**
 * Whether the tiled path stores this GEMM's operands as f16: asked for, where shader-f16 is on;
 * on a forced tiled path whatever the device has (the path then refuses without shader-f16).
 */
export function tiledF16(gpu: Gpu, opts: GemmOptions): boolean {
  return !!opts.f16 && (gpu.hasF16 || opts.path === "tiled");
}

/**
 * The path a GEMM of `gemmDispatches` takes unless forced; see the top of this file. Without
 * `sized` the size thresholds do not apply (the parts of a GEMM split over views: parts of a GEMM
 * too large for one binding are large).
 */
export function choosePath(
  gpu: Gpu,
  spec: GemmSpec,
  layout: GemmLayout,
  opts: GemmOptions,
  sized = true,
): GemmPath {
  const v4 = vec4Ok(spec, layout);
  const { w } = packingOf(gpu, opts);
  if (adapterClass(gpu) === "gpu") {
    if (opts.f16 && !gpu.hasF16 && v4 && textureFits(gpu, spec, w)) return "texture";
    return "tiled";
  }
  if (!v4) return "scalar";
  const flops = sized ? gemmFlops(spec) : Infinity;
  if (flops >= BCAST_MIN_FLOPS && bcastFits(gpu, spec, w)) return "bcast";
  if ((opts.f16 || flops >= TEXTURE_MIN_FLOPS) && textureFits(gpu, spec, w)) return "texture";
  if (opts.f16 && bcastFits(gpu, spec, w)) return "bcast";
  return "vec4";
}

/**
 * The path `gemmDispatches` takes for this GEMM when its operands fit their bindings (the
 * `path` option, or the default for the adapter, size and shape).
 */
export function gemmPath(gpu: Gpu, spec: GemmSpec, opts: GemmOptions = {}): GemmPath {
  return opts.path ?? choosePath(gpu, spec, layoutOf(spec, opts), opts);
}

/**
 * The path of the single-dispatch `gemm`: the `path` option, else tiled on GPUs, vec4 on CPU
 * adapters where the shape allows, else scalar. The packed paths and f16 operands need their
 * packing or conversion dispatches (`gemmDispatches`).
 */
export function singlePath(
  gpu: Gpu,
  spec: GemmSpec,
  layout: GemmLayout,
  opts: GemmOptions,
): GemmPath {
  if (opts.path === "texture" || opts.path === "bcast") {
    const name = opts.path === "bcast" ? "broadcast" : "texture";
    throw new Error(`gemm ${spec.label}: the ${name} path needs gemmDispatches`);
  }
  if (opts.f16) throw new Error(`gemm ${spec.label}: f16 operands need gemmDispatches`);
  if (opts.path) return opts.path;
  if (adapterClass(gpu) === "gpu") return "tiled";
  return vec4Ok(spec, layout) ? "vec4" : "scalar";
}

/**
 * The tiled path's tile: the option, else the timed choice cached for this adapter and shape
 * class, else GEMM_TILE.tiled where the GEMM has at least TILED_BIG_MIN_BLOCKS 128x128 blocks of
 * C (enough workgroups to fill a large GPU), else GEMM_TILE.tiledSmall.
 */
export function tiledTile(gpu: Gpu, spec: GemmSpec, opts: GemmOptions): TiledTile {
  if (opts.tiledTile) return opts.tiledTile;
  const cached = cachedTile(gpu, spec, tiledF16(gpu, opts));
  if (cached) return cached;
  const blocks = cdiv(spec.M, GEMM_TILE.tiled.BM) * cdiv(spec.N, GEMM_TILE.tiled.BN);
  return blocks >= TILED_BIG_MIN_BLOCKS ? GEMM_TILE.tiled : GEMM_TILE.tiledSmall;
}

/** The vec4 tile: the option, else GEMM_TILE.vec4. */
export function vec4Tile(opts: GemmOptions): Vec4Tile {
  return opts.tile ?? GEMM_TILE.vec4;
}

/**
 * The texture tile of a GEMM: the option, else GEMM_TILE.texture with 24 rows per workgroup for
 * the NT layout (the encoder, dF, the Gram blocks: 74-78 vs 70-72 GFLOP/s at 1024x4096x512 on
 * lavapipe; TN and NN are no faster or slower with it), and fewer invocations per workgroup when
 * N is narrower than one workgroup's 512 columns (N = 128: 16, not 64 with 48 idle).
 */
export function texTileFor(
  spec: Pick<GemmSpec, "N" | "transA" | "transB">,
  opts: GemmOptions,
): TexTile {
  if (opts.texTile) return opts.texTile;
  const t = GEMM_TILE.texture;
  const lanes = Math.ceil(spec.N / (4 * t.T_CG) / 8) * 8;
  const T_R = spec.transB && !spec.transA ? 24 : t.T_R;
  return { ...t, T_R, T_WG: Math.max(8, Math.min(t.T_WG, lanes)) };
}

/** The broadcast path's tile limits: the option, else GEMM_TILE.bcast (bcPlan fits them). */
export function bcTile(opts: GemmOptions): BcTile {
  return opts.bcTile ?? GEMM_TILE.bcast;
}
