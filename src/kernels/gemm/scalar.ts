/**
 * The scalar path (wgsl/gemm_scalar.wgsl, entry point `main`): a workgroup-memory tiled GEMM for
 * any M, N, K; on CPU adapters, the fallback for shapes the vec4 path cannot take (GPUs take the
 * tiled path for every shape).
 */
import scalarSrc from "../../../wgsl/gemm_scalar.wgsl" with { type: "text" };
import type { Gpu } from "../../gpu/device.ts";
import { cdiv, type ComputeDispatch, kernel } from "../../gpu/dispatch.ts";
import { productParams } from "./params.ts";
import {
  type GemmBuffers,
  gemmCost,
  type GemmLayout,
  gemmSource,
  type GemmSpec,
  productBindings,
  productConstants,
} from "./spec.ts";
import { GEMM_TILE } from "./tiles.ts";

/** Columns per thread: fixed at 4 in the WGSL (one vec4 accumulator per row). */
const TN = 4;

/** The one dispatch of a GEMM on the scalar path. */
export function scalarDispatch(
  gpu: Gpu,
  spec: GemmSpec,
  bufs: GemmBuffers,
  layout: GemmLayout,
): Promise<ComputeDispatch> {
  const t = GEMM_TILE.scalar;
  return kernel(gpu, {
    label: spec.label,
    code: gemmSource(scalarSrc),
    entry: "main",
    constants: { ...productConstants(spec), ...t },
    buffers: productBindings(gpu, bufs, productParams(gpu, spec, layout)),
    groups: [cdiv(spec.N, t.WG_X * TN), cdiv(spec.M, t.WG_Y * t.TM), 1],
    cost: gemmCost(spec),
  });
}
