/**
 * Packed operands of the texture and broadcast paths (wgsl/gemm_pack.wgsl): the textures they
 * live in, the kernels and copies that fill them, and matrices packed once for several GEMMs
 * ({@link packRowBlocks}).
 *
 * An operand stored densely in the layout a path reads is packed by a buffer-to-texture copy (a
 * memcpy on lavapipe) instead of a packing kernel, and an operand that is a row block of a matrix
 * packed beforehand is not packed at all.
 */
import packSrc from "../../../wgsl/gemm_pack.wgsl" with { type: "text" };
import type { Gpu } from "../../gpu/device.ts";
import {
  cdiv,
  type ComputeDispatch,
  type CopyDispatch,
  type Dispatch,
  kernel,
  MAX_GROUPS,
} from "../../gpu/dispatch.ts";
import { type Operand, operandBase } from "../../gpu/split.ts";
import { WG } from "../common.ts";
import { paramsBuffer } from "./params.ts";
import {
  type GemmOptions,
  gemmSource,
  type GemmSpec,
  type PackedBlock,
  type PackedRowBlocks,
  storedShape,
  type TexFormat,
} from "./spec.ts";

/** How a GEMM's operands are packed: texture width (texels), format, copies allowed. */
export interface Packing {
  w: number;
  fmt: TexFormat;
  copies: boolean;
}

/** The packing of a GEMM with these options (throws on a texture width not a power of two). */
export function packingOf(gpu: Gpu, opts: GemmOptions): Packing {
  const w = opts.texWidth ?? Math.min(8192, gpu.device.limits.maxTextureDimension2D);
  if (!Number.isInteger(Math.log2(w))) throw new Error(`texWidth ${w} is not a power of two`);
  const fmt: TexFormat = opts.f16 ? "rgba16float" : "rgba32float";
  return { w, fmt, copies: opts.packCopies !== false };
}

/** Bytes of one texel. */
export function texelBytes(fmt: TexFormat): number {
  return fmt === "rgba32float" ? 16 : 8;
}

/** A GEMM source with packed operands: wgsl/gemm_pack.wgsl with textures in `fmt`, then `parts`. */
export function packedSource(fmt: TexFormat, ...parts: string[]): string {
  return gemmSource(packSrc.replaceAll("rgba32float", fmt), ...parts);
}

/**
 * Packed copies of the operands live in scratch textures, one per operand role and width per Gpu,
 * shared by every GEMM: each GEMM's dispatch list packs its operands right before its product,
 * so any order of whole GEMMs is safe. A GEMM needing more texels than the current one gets a
 * larger texture (twice the rows); earlier GEMMs keep the old one through their bind groups.
 */
const scratch = new WeakMap<Gpu, Map<string, GPUTexture>>();

/** The scratch texture of operand `role` with room for `texels` texels. */
export function scratchTexture(
  gpu: Gpu,
  role: "a" | "b",
  w: number,
  texels: number,
  fmt: TexFormat,
): GPUTexture {
  let byKey = scratch.get(gpu);
  if (!byKey) scratch.set(gpu, byKey = new Map());
  const key = `${role} ${w} ${fmt}`;
  const rows = Math.max(1, Math.ceil(texels / w));
  const cur = byKey.get(key);
  if (cur && cur.height >= rows) return cur;
  const max = gpu.device.limits.maxTextureDimension2D;
  const height = Math.min(max, Math.max(rows, 2 * (cur?.height ?? 0)));
  const tex = gpu.storageTexture(`gemm packed ${role}`, w, height, fmt);
  byKey.set(key, tex);
  return tex;
}

/** Whether a prepacked block can stand in for an operand packed in `fmt` at width `w`. */
export function usable(blk: PackedBlock, fmt: TexFormat, w: number): boolean {
  return blk.packed.fmt === fmt && blk.packed.rows.width === w && blk.r0 % 4 === 0;
}

/**
 * Whether a copy can pack into textures of this format and width: f32 texels (a copy does not
 * convert), rows a multiple of 256 bytes (COPY_BYTES_PER_ROW_ALIGNMENT).
 */
export function copyOk(fmt: TexFormat, w: number): boolean {
  return fmt === "rgba32float" && (16 * w) % 256 === 0;
}

/**
 * The copy packing `texels` texels of a dense matrix at element `off` of `src` into `tex` (texel t
 * at (t % width, t / width), as `pack` and `pack_k` write them): the whole texture rows, then the
 * partial last one.
 */
export function copyPack(
  label: string,
  src: Operand,
  off: number,
  texels: number,
  tex: GPUTexture,
): CopyDispatch {
  const { buffer, base } = operandBase(src);
  const offset = 4 * (base + off);
  const w = tex.width;
  const full = Math.floor(texels / w), rest = texels % w;
  const copy: CopyDispatch["copy"] = [];
  if (full > 0) {
    copy.push({
      src: { buffer, offset, bytesPerRow: 16 * w, rowsPerImage: full },
      dst: { texture: tex },
      size: [w, full],
    });
  }
  if (rest > 0) {
    copy.push({
      src: { buffer, offset: offset + 16 * w * full, bytesPerRow: 16 * w },
      dst: { texture: tex, origin: [0, full] },
      size: [rest, 1],
    });
  }
  return { label, copy, cost: { flops: 0, bytes: 2 * 16 * texels } };
}

/**
 * The `pack` dispatch of the texture path: operand `role` of a GEMM into `tex` as stored, from
 * element `off` of `src` with leading dimension `ld`.
 */
export function packAsStored(
  gpu: Gpu,
  spec: GemmSpec,
  role: "a" | "b",
  src: Operand,
  ld: number,
  off: number,
  tex: GPUTexture,
  { w, fmt }: Packing,
): Promise<ComputeDispatch> {
  const [rows, cols] = storedShape(spec, role);
  const c4 = cols / 4;
  const label = `${spec.label} pack ${role.toUpperCase()}`;
  const params = paramsBuffer(gpu, `gemm ${spec.label} pack ${role} params`, {
    M: rows,
    N: c4,
    lda: ld,
    offA: off,
  });
  return kernel(gpu, {
    label,
    code: packedSource(fmt),
    entry: "pack",
    constants: { TEX_W: w },
    buffers: [src, null, null, null, null, params, null, null, tex],
    groups: [cdiv(c4, WG), Math.min(rows, MAX_GROUPS), cdiv(rows, MAX_GROUPS)],
    cost: { flops: 0, bytes: 4 * rows * cols + texelBytes(fmt) * rows * c4 },
  });
}

/**
 * A `pack_k` dispatch: op(X) [rows, K] along K into `tex` from texel `at` on, K/4 texels per row
 * padded with zeros to K4P; X stored [rows, K], or [K, rows] when `transposed`, with leading
 * dimension `ld` from element `off` of `src`.
 */
export function packK(
  gpu: Gpu,
  label: string,
  src: Operand,
  tex: GPUTexture,
  { w, fmt }: Pick<Packing, "w" | "fmt">,
  x: { rows: number; K: number; ld: number; off: number; transposed: boolean; K4P: number },
  at = 0,
): Promise<ComputeDispatch> {
  const params = paramsBuffer(gpu, `${label} params`, {
    M: x.rows,
    K: x.K,
    lda: x.ld,
    offA: x.off,
    offAt: at,
  });
  const ys = x.transposed ? x.rows / 4 : x.rows;
  return kernel(gpu, {
    label,
    code: packedSource(fmt),
    entry: "pack_k",
    constants: { TEX_W: w, K4P: x.K4P, PACK_T: x.transposed ? 1 : 0 },
    buffers: [src, null, null, null, null, params, null, null, tex],
    groups: [cdiv(x.K4P, WG), Math.min(ys, MAX_GROUPS), cdiv(ys, MAX_GROUPS)],
    cost: { flops: 0, bytes: 4 * x.rows * x.K + texelBytes(fmt) * x.rows * x.K4P },
  });
}

/**
 * The dispatches packing X [R, C] (f32, row-major, dense in `x`) into a {@link PackedRowBlocks}
 * of blocks of `block` rows (a multiple of 4; R and C multiples of 4): X as stored by one copy (a
 * packing kernel per block for f16) and, with `transposed`, each block transposed by a packing
 * kernel (what the broadcast path reads where K runs along a block's rows). For GEMMs on the
 * texture paths (CPU adapters, or `opts.f16`), in textures of their width.
 */
export async function packRowBlocks(
  gpu: Gpu,
  label: string,
  x: GPUBuffer,
  R: number,
  C: number,
  block: number,
  transposed: boolean,
  opts: GemmOptions = {},
): Promise<{ packed: PackedRowBlocks; dispatches: Dispatch[] }> {
  if (R % 4 || C % 4 || block % 4) {
    throw new Error(`${label}: ${R}x${C} in blocks of ${block} rows: each a multiple of 4`);
  }
  const { w, fmt } = packingOf(gpu, opts);
  const texels = R * C / 4;
  const make = (what: string) =>
    gpu.storageTexture(`${label} ${what}`, w, Math.max(1, Math.ceil(texels / w)), fmt);
  const packed: PackedRowBlocks = {
    rows: make("rows"),
    blocksT: transposed ? make("blocksT") : undefined,
    R,
    C,
    block,
    fmt,
  };
  const dispatches: Dispatch[] = [];
  if (copyOk(fmt, w)) dispatches.push(copyPack(`${label} rows`, x, 0, texels, packed.rows));
  for (let r0 = 0; r0 < R; r0 += block) {
    const rb = Math.min(block, R - r0);
    const slice = { buffer: x, offset: 4 * r0 * C, size: 4 * rb * C };
    if (!copyOk(fmt, w)) {
      const rows = { rows: rb, K: C, ld: C, off: 0, transposed: false, K4P: C / 4 };
      dispatches.push(
        await packK(gpu, `${label} rows`, slice, packed.rows, { w, fmt }, rows, r0 * C / 4),
      );
    }
    if (!packed.blocksT) continue;
    // The block transposed: op = blockᵀ [C, rb] along K = rb, from texel (r0/4)·C on.
    const blockT = { rows: C, K: rb, ld: C, off: 0, transposed: true, K4P: rb / 4 };
    dispatches.push(
      await packK(gpu, `${label} blocksT`, slice, packed.blocksT, { w, fmt }, blockT, r0 / 4 * C),
    );
  }
  return { packed, dispatches };
}
