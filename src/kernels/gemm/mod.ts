/**
 * The GEMM family: C[M,N] = epilogue(op(A)·op(B)) in the layouts the SAE step needs.
 *
 * | use in the step        | layout | A            | B              | epilogue   |
 * |------------------------|--------|--------------|----------------|------------|
 * | pre = x·W_encᵀ + b_enc | NT     | x [B,d]      | W_enc [m,d]    | bias_relu  |
 * | x̂ = f·W_dec + b_dec    | NN     | f [B,m]      | W_dec [m,d]    | bias       |
 * | dF = dX̂·W_decᵀ         | NT     | dX̂ [B,d]     | W_dec [m,d]    | relu_grad  |
 * | dW_dec = fᵀ·dX̂         | TN     | f [B,m]      | dX̂ [B,d]       | none       |
 * | dW_enc = dpreᵀ·x       | TN     | dpre [B,m]   | x [B,d]        | none       |
 *
 * Five paths, one module each here and one WGSL file each (wgsl/gemm_<path>.wgsl, after the
 * shared wgsl/gemm.wgsl). `tiled` and `scalar` take any shape; the others need one {@link vec4Ok}
 * accepts (K a multiple of 4, and M or N where A or B is read along it; every SAE size qualifies):
 *
 * | path      | module     | taken by default                                          |
 * |-----------|------------|-----------------------------------------------------------|
 * | `tiled`   | tiled.ts   | GPUs (f32, and f16 where the device has shader-f16)       |
 * | `vec4`    | vec4.ts    | CPU adapters' GEMMs under 2^23 FLOPs                      |
 * | `texture` | texture.ts | CPU adapters' GEMMs from 2^23 FLOPs; f16 on GPUs without shader-f16 |
 * | `bcast`   | bcast.ts   | CPU adapters' GEMMs from 2^27 FLOPs                       |
 * | `scalar`  | scalar.ts  | shapes vec4 cannot take, on CPU adapters                  |
 *
 * Which class an adapter is (CPU or GPU) is src/gpu/adapter.ts' call; SAE_ADAPTER_CLASS=gpu makes
 * a CPU adapter choose as a GPU does, so the GPU paths run in tests anywhere. choose.ts makes
 * every choice of path and tile; tiles.ts holds the tiles; cache.ts the tiled tiles timed per
 * adapter (`deno task tune`, tune.ts); pack.ts packs the operands of the texture and broadcast
 * paths; params.ts encodes the uniform; parts.ts splits a GEMM whose operands exceed the binding
 * limit; reference.ts is the plain-TypeScript reference; spec.ts the types and the cost.
 *
 * @example
 * ```ts ignore
 * const spec = { label: "encode", M: B, N: m, K: d, transA: false, transB: true, epilogue: "bias_relu" };
 * const dispatches = await gemmDispatches(gpu, spec, { a: x, b: wEnc, c: pre, e: bEnc });
 * run(gpu, dispatches); // each carries its cost: 2·M·N·K FLOPs for the product
 * ```
 */
import type { Gpu } from "../../gpu/device.ts";
import type { ComputeDispatch, Dispatch } from "../../gpu/dispatch.ts";
import { fits } from "../../gpu/split.ts";
import { bcastDispatches, bcPlan } from "./bcast.ts";
import { bcTile, choosePath, singlePath, texTileFor, tiledF16, vec4Tile } from "./choose.ts";
import { packingOf } from "./pack.ts";
import { gemmParts } from "./parts.ts";
import { scalarDispatch } from "./scalar.ts";
import {
  type GemmBuffers,
  type GemmOptions,
  type GemmPath,
  type GemmSpec,
  layoutOf,
} from "./spec.ts";
import { textureDispatches, textureFits } from "./texture.ts";
import { tiledDispatches } from "./tiled.ts";
import { resolveTiledTile } from "./tune.ts";
import { vec4Dispatch, vec4Ok } from "./vec4.ts";

export { gemmPath, tiledTile } from "./choose.ts";
export { GEMM_TILE, TILED_CANDIDATES } from "./tiles.ts";
export { packRowBlocks } from "./pack.ts";
export { gemmReference } from "./reference.ts";
export type {
  Epilogue,
  GemmBuffers,
  GemmLayout,
  GemmOptions,
  GemmPath,
  GemmSpec,
  PackedBlock,
  PackedRowBlocks,
  TexFormat,
} from "./spec.ts";
export type { BcTile, TexTile, TiledTile, Vec4Tile } from "./tiles.ts";
export { vec4Ok };

/**
 * Creates the pipeline and bind group of one GEMM on a single-dispatch path (tiled, vec4 or
 * scalar); run it with the returned dispatch. The step uses {@link gemmDispatches} (the packed
 * paths on CPU adapters, f16 conversions).
 */
export async function gemm(
  gpu: Gpu,
  spec: GemmSpec,
  bufs: GemmBuffers,
  opts: GemmOptions = {},
): Promise<ComputeDispatch> {
  const path = singlePath(gpu, spec, layoutOf(spec, opts), opts);
  const [d] = await onPath(gpu, spec, bufs, opts, path);
  return d as ComputeDispatch;
}

/**
 * A GEMM's dispatches: one product on the tiled, vec4 and scalar paths (after the f16
 * conversions of its operands on the tiled path with `f16`), the packing of its operands and one
 * or more products on the packed paths. Where an operand exceeds the storage-binding limit,
 * the dispatches of its parts over views (parts.ts), each taking its path without a size
 * threshold. Every dispatch carries its cost.
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
  if ([bufs.a, bufs.b, bufs.c, bufs.e, bufs.s].every((o) => !o || fits(gpu, o))) {
    const layout = layoutOf(spec, opts);
    return await onPath(gpu, spec, bufs, opts, opts.path ?? choosePath(gpu, spec, layout, opts));
  }
  const out: Dispatch[] = [];
  for (const part of gemmParts(gpu, spec, bufs, opts.layout?.eoff)) {
    const partOpts = { ...opts, layout: part.layout };
    const path = opts.path ?? choosePath(gpu, part.spec, part.layout, partOpts, false);
    out.push(...await onPath(gpu, part.spec, part.bufs, partOpts, path));
  }
  return out;
}

/** One GEMM's dispatches on `path`: [pack or convert A, pack or convert B,] product(s). */
async function onPath(
  gpu: Gpu,
  spec: GemmSpec,
  bufs: GemmBuffers,
  opts: GemmOptions,
  path: GemmPath,
): Promise<Dispatch[]> {
  const layout = layoutOf(spec, opts);
  const packing = packingOf(gpu, opts);
  if (path !== "scalar" && path !== "tiled" && !vec4Ok(spec, layout)) {
    throw new Error(
      `gemm ${spec.label}: ${spec.M}x${spec.N}x${spec.K} cannot take the ${path} path`,
    );
  }
  switch (path) {
    case "tiled":
      return await tiledDispatches(
        gpu,
        spec,
        bufs,
        layout,
        await resolveTiledTile(gpu, spec, opts),
        tiledF16(gpu, opts),
      );
    case "scalar":
      return [await scalarDispatch(gpu, spec, bufs, layout)];
    case "vec4":
      return [await vec4Dispatch(gpu, spec, bufs, layout, vec4Tile(opts))];
    case "texture":
      if (!textureFits(gpu, spec, packing.w)) {
        throw new Error(
          `gemm ${spec.label}: operands too large for a ${packing.w}-texel-wide texture`,
        );
      }
      return await textureDispatches(gpu, spec, bufs, layout, texTileFor(spec, opts), packing);
    case "bcast":
      return await bcastDispatches(
        gpu,
        spec,
        bufs,
        layout,
        bcPlan(gpu, spec, bcTile(opts)),
        packing,
      );
  }
}
