/**
 * Which path and tile each GEMM takes: the one place these choices are made. They key on the
 * adapter's class ({@link adapterClass}), the GEMM's size and shape, and the options.
 *
 * CPU adapters (llvmpipe, lavapipe, SwiftShader) take the broadcast path from
 * {@link BCAST_MIN_FLOPS} up, the texture path from {@link TEXTURE_MIN_FLOPS} up, else vec4
 * (tile GEMM_TILE.cpu). Other adapters take vec4 (tile GEMM_TILE.gpu). f16 operands take a packed
 * path whatever the size (the texture path below BCAST_MIN_FLOPS on CPU adapters, everywhere on
 * GPUs). A shape the vec4 path cannot take ({@link vec4Ok}; the packed paths read the same
 * fragments) takes the scalar fallback everywhere; a packed path whose textures would exceed
 * the device's limit falls back to the next.
 */
import type { Gpu } from "../../gpu/device.ts";
import { bcastFits } from "./bcast.ts";
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
import { type BcTile, GEMM_TILE, type TexTile, type Vec4Tile } from "./tiles.ts";
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

/** Whether `name` is a CPU (software) WebGPU adapter. */
export function isCpuAdapter(name: string): boolean {
  return /llvmpipe|lavapipe|swiftshader|software|cpu/i.test(name);
}

/** The class of adapter every choice here keys on: a CPU (software) adapter or a GPU. */
function adapterClass(gpu: Gpu): "cpu" | "gpu" {
  return isCpuAdapter(gpu.adapterName) ? "cpu" : "gpu";
}

/**
 * The path a GEMM of `gemmDispatches` takes unless forced, where the shape allows (else scalar);
 * see the top of this file. Without `sized` the size thresholds do not apply (the parts of a
 * GEMM split over views: parts of a GEMM too large for one binding are large).
 */
export function choosePath(
  gpu: Gpu,
  spec: GemmSpec,
  layout: GemmLayout,
  opts: GemmOptions,
  sized = true,
): GemmPath {
  if (!vec4Ok(spec, layout)) return "scalar";
  const cpu = adapterClass(gpu) === "cpu";
  const { w } = packingOf(gpu, opts);
  const flops = sized ? gemmFlops(spec) : Infinity;
  if (cpu && flops >= BCAST_MIN_FLOPS && bcastFits(gpu, spec, w)) return "bcast";
  if ((opts.f16 || cpu && flops >= TEXTURE_MIN_FLOPS) && textureFits(gpu, spec, w)) {
    return "texture";
  }
  if (cpu && opts.f16 && bcastFits(gpu, spec, w)) return "bcast";
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
 * The path of the single-dispatch `gemm`: the `path` option, else vec4 where the shape allows,
 * else scalar. The packed paths (and f16 operands, which only they store) need their packing
 * dispatches (`gemmDispatches`).
 */
export function singlePath(spec: GemmSpec, layout: GemmLayout, opts: GemmOptions): GemmPath {
  if (opts.path === "texture" || opts.path === "bcast") {
    const name = opts.path === "bcast" ? "broadcast" : "texture";
    throw new Error(`gemm ${spec.label}: the ${name} path needs gemmDispatches`);
  }
  if (opts.f16) throw new Error(`gemm ${spec.label}: f16 operands need gemmDispatches`);
  return opts.path ?? (vec4Ok(spec, layout) ? "vec4" : "scalar");
}

/** The vec4 tile: the option, else the adapter class's. */
export function vec4Tile(gpu: Gpu, opts: GemmOptions): Vec4Tile {
  return opts.tile ?? GEMM_TILE[adapterClass(gpu)];
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
