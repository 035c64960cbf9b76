/**
 * The tiled path (wgsl/gemm_tiled.wgsl, entry point `main_tiled`): block tiles staged in workgroup
 * memory, a register tile per invocation, double-buffered K steps; any M, N, K and every layout
 * and epilogue; the default on GPUs. With f16 storage (where the device has shader-f16) each
 * operand is first converted into a dense f16 copy (`to_f16`), which the product reads at half
 * the bytes; products and sums stay f32.
 */
import tiledSrc from "../../../wgsl/gemm_tiled.wgsl" with { type: "text" };
import type { Gpu } from "../../gpu/device.ts";
import {
  cdiv,
  type ComputeDispatch,
  type Dispatch,
  groupsFor,
  kernel,
} from "../../gpu/dispatch.ts";
import type { Operand } from "../../gpu/split.ts";
import { WG } from "../common.ts";
import { paramsBuffer, productParams } from "./params.ts";
import {
  type GemmBuffers,
  gemmCost,
  type GemmLayout,
  gemmSource,
  type GemmSpec,
  productBindings,
  productConstants,
  storedShape,
} from "./spec.ts";
import type { TiledTile } from "./tiles.ts";
import { vec4Ok } from "./vec4.ts";

/** Register-array capacities of wgsl/gemm_tiled.wgsl (TL_MAX_R, TL_MAX_U). */
const MAX_T = 8;
const MAX_UNITS = 4;

/**
 * `tlLoadA` and `tlLoadB` of wgsl/gemm_tiled.wgsl: vec4 loads where `vec` (the shape passes
 * vec4Ok: a vec4 is inside the matrix or wholly past its edge), else four masked scalar loads;
 * from f32 storage (the shared bindings A, A4, B, B4) or f16 storage (declared here; the entry
 * point binds one view of each operand: naga refuses two resources at one binding in one entry
 * point).
 */
function loaders(vec: boolean, f16: boolean): string {
  return (["A", "B"] as const).map((X) => {
    const slot = X === "A" ? 0 : 1;
    const ld = X === "A" ? "p.lda" : "p.ldb";
    const off = X === "A" ? "p.offA" : "p.offB";
    const head = `fn tlLoad${X}(row: u32, col: u32, rows: u32, cols: u32) -> vec4<f32> {`;
    if (vec) {
      const arr = f16 ? `${X}16x4` : `${X}4`;
      return [
        f16 ? `@group(0) @binding(${slot}) var<storage, read> ${arr}: array<vec4<f16>>;` : "",
        head,
        "  if (row >= rows || col >= cols) { return vec4<f32>(0.0); }",
        `  return vec4<f32>(${arr}[(${off} + row * ${ld} + col) / 4u]);`,
        "}",
      ].join("\n");
    }
    const arr = f16 ? `${X}16` : X;
    return [
      f16 ? `@group(0) @binding(${slot}) var<storage, read> ${arr}: array<f16>;` : "",
      head,
      "  var v = vec4<f32>(0.0);",
      "  if (row >= rows) { return v; }",
      `  let at = ${off} + row * ${ld} + col;`,
      "  for (var c = 0u; c < 4u; c++) {",
      `    if (col + c < cols) { v[c] = f32(${arr}[at + c]); }`,
      "  }",
      "  return v;",
      "}",
    ].join("\n");
  }).join("\n") + "\n";
}

/** The tiled path's WGSL for f32 or f16 operand storage, read as vec4 or as scalars. */
function tiledSource(vec: boolean, f16: boolean): string {
  const src = gemmSource(tiledSrc, loaders(vec, f16));
  return f16 ? "enable f16;\n" + src : src;
}

/**
 * Why `t` cannot run on this device (null: it can): register tiles of 4 or 8, block tiles that
 * they and 4 divide, a K step a multiple of 4, at most {@link MAX_UNITS} staged 4x4 blocks per
 * invocation, and the device's workgroup limits (size and workgroup memory).
 */
export function tiledTileProblem(gpu: Gpu, t: TiledTile): string | null {
  const lim = gpu.device.limits;
  const wx = t.BN / t.TN, wy = t.BM / t.TM;
  const smem = 2 * t.BK * (t.BM / 4 + 1 + t.BN / 4 + 1) * 16;
  if (![t.BM, t.BN, t.BK, t.TM, t.TN].every((v) => Number.isInteger(v) && v > 0)) {
    return "sizes must be positive integers";
  }
  if (![4, MAX_T].includes(t.TM) || ![4, MAX_T].includes(t.TN)) return "TM and TN must be 4 or 8";
  if (t.BM % t.TM || t.BN % t.TN || t.BK % 4) return "TM, TN, 4 must divide BM, BN, BK";
  if (wx * wy > lim.maxComputeInvocationsPerWorkgroup) return `${wx * wy} invocations`;
  if (wx > lim.maxComputeWorkgroupSizeX || wy > lim.maxComputeWorkgroupSizeY) {
    return `workgroup ${wx}x${wy}`;
  }
  if (Math.max(t.BM, t.BN) * t.BK / 16 > MAX_UNITS * wx * wy) return "too few invocations to stage";
  if (smem > lim.maxComputeWorkgroupStorageSize) return `${smem} bytes of workgroup memory`;
  return null;
}

/**
 * Dense f16 copies of the operands live in scratch buffers, one per operand role per Gpu, shared
 * by every GEMM as the packed paths share their textures (each GEMM's list converts right before
 * its product; a larger GEMM gets a larger buffer, earlier ones keep theirs).
 */
const scratch = new WeakMap<Gpu, Map<string, GPUBuffer>>();

function scratchF16(gpu: Gpu, role: "a" | "b", elems: number): GPUBuffer {
  let byRole = scratch.get(gpu);
  if (!byRole) scratch.set(gpu, byRole = new Map());
  const bytes = 4 * Math.ceil(elems / 2);
  const cur = byRole.get(role);
  if (cur && cur.size >= bytes) return cur;
  const grown = Math.min(2 * (cur?.size ?? 0), gpu.maxBinding);
  const buf = gpu.buffer(`gemm f16 ${role}`, Math.max(bytes, grown));
  byRole.set(role, buf);
  return buf;
}

/** The `to_f16` dispatch: operand `role` as stored (`ld`, from `off` of `src`) into `dst`. */
function toF16(
  gpu: Gpu,
  spec: GemmSpec,
  role: "a" | "b",
  src: Operand,
  ld: number,
  off: number,
  dst: GPUBuffer,
): Promise<ComputeDispatch> {
  const [rows, cols] = storedShape(spec, role);
  const label = `${spec.label} f16 ${role.toUpperCase()}`;
  return kernel(gpu, {
    label,
    code: tiledSource(false, false),
    entry: "to_f16",
    buffers: [
      src,
      null,
      dst,
      null,
      null,
      paramsBuffer(gpu, `${label} params`, {
        M: rows,
        N: cols,
        lda: ld,
        offA: off,
      }),
    ],
    groups: groupsFor(Math.ceil(rows * cols / 2), WG),
    cost: { flops: 0, bytes: 6 * rows * cols },
  });
}

/**
 * A GEMM's dispatches on the tiled path with tile `t`: the product, after the conversions of both
 * operands where `f16`.
 * @throws where the tile cannot run here, or f16 is asked for without shader-f16.
 */
export async function tiledDispatches(
  gpu: Gpu,
  spec: GemmSpec,
  bufs: GemmBuffers,
  layout: GemmLayout,
  t: TiledTile,
  f16 = false,
): Promise<Dispatch[]> {
  const problem = tiledTileProblem(gpu, t);
  if (problem) {
    throw new Error(`gemm ${spec.label}: tiled tile ${JSON.stringify(t)} out of range: ${problem}`);
  }
  if (f16 && !gpu.hasF16) {
    throw new Error(`gemm ${spec.label}: f16 storage on the tiled path needs shader-f16`);
  }
  const out: Dispatch[] = [];
  if (f16) {
    const [ra, ca] = storedShape(spec, "a"), [rb, cb] = storedShape(spec, "b");
    const a = scratchF16(gpu, "a", ra * ca), b = scratchF16(gpu, "b", rb * cb);
    out.push(
      await toF16(gpu, spec, "a", bufs.a, layout.lda, layout.offA, a),
      await toF16(gpu, spec, "b", bufs.b, layout.ldb, layout.offB, b),
    );
    bufs = { ...bufs, a, b };
    layout = { ...layout, lda: ca, ldb: cb, offA: 0, offB: 0 };
  }
  out.push(
    await kernel(gpu, {
      label: spec.label,
      code: tiledSource(vec4Ok(spec, layout), f16),
      entry: "main_tiled",
      constants: {
        ...productConstants(spec),
        TL_BM: t.BM,
        TL_BN: t.BN,
        TL_BK: t.BK,
        TL_TM: t.TM,
        TL_TN: t.TN,
      },
      buffers: productBindings(gpu, bufs, productParams(gpu, spec, layout)),
      groups: [cdiv(spec.N, t.BN), cdiv(spec.M, t.BM), 1],
      cost: gemmCost(spec, { operandBytes: f16 ? 2 : 4 }),
    }),
  );
  return out;
}
