/**
 * The vec4 path (wgsl/gemm_vec4.wgsl, entry point `main_v4`): no workgroup memory, each
 * invocation keeps an (4·V_RG)x(4·V_CG) block of C in registers and loads both operands as vec4
 * along their contiguous dimension. Every SAE size qualifies ({@link vec4Ok}). CPU adapters take it
 * for GEMMs too small to pack; on GPUs, where every operand load goes to memory with no reuse
 * through workgroup memory, the tiled path replaced it.
 */
import vec4Src from "../../../wgsl/gemm_vec4.wgsl" with { type: "text" };
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
import type { Vec4Tile } from "./tiles.ts";

/**
 * Whether the vec4 path can run this shape (its vec4 dimensions are multiples of 4, and so are
 * the leading dimensions and offsets of A and B when given). The packed-texture paths read the
 * same fragments and need the same.
 */
export function vec4Ok(
  spec: Pick<GemmSpec, "M" | "N" | "K" | "transA" | "transB">,
  layout: Partial<GemmLayout> = {},
): boolean {
  const l = [layout.lda, layout.ldb, layout.offA, layout.offB].filter((v) => v !== undefined);
  return spec.K % 4 === 0 && (!spec.transA || spec.M % 4 === 0) &&
    (spec.transB || spec.N % 4 === 0) && l.every((v) => v! % 4 === 0);
}

/** The one dispatch of a GEMM on the vec4 path with tile `t`. */
export function vec4Dispatch(
  gpu: Gpu,
  spec: GemmSpec,
  bufs: GemmBuffers,
  layout: GemmLayout,
  t: Vec4Tile,
): Promise<ComputeDispatch> {
  return kernel(gpu, {
    label: spec.label,
    code: gemmSource(vec4Src),
    entry: "main_v4",
    constants: { ...productConstants(spec), ...t },
    buffers: productBindings(gpu, bufs, productParams(gpu, spec, layout)),
    groups: [cdiv(spec.N, t.V_WG_X * 4 * t.V_CG), cdiv(spec.M, t.V_WG_Y * 4 * t.V_RG), 1],
    cost: gemmCost(spec),
  });
}
