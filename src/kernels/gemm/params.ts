/**
 * The `Params` uniform of wgsl/gemm.wgsl, encoded by field name: the one place that knows its
 * layout (tests/kernels/gemm_test.ts reads every field back through a kernel).
 */
import type { Gpu } from "../../gpu/device.ts";
import type { GemmLayout, GemmSpec } from "./spec.ts";

/** The fields of `struct Params`, in its order: one u32 each. */
export const PARAMS_FIELDS = [
  "M",
  "N",
  "K",
  "row0",
  "lda",
  "ldb",
  "ldc",
  "offA",
  "offB",
  "offC",
  "eoff",
  "kc",
  "mode",
  "offAt",
  "offBt",
  "pad",
] as const;

/** Values of the Params fields a dispatch sets; the others are 0 (wgsl/gemm.wgsl says who reads which). */
export type GemmParams = Partial<Record<Exclude<typeof PARAMS_FIELDS[number], "pad">, number>>;

/** The Params struct's bytes. */
export function encodeParams(p: GemmParams): Uint32Array<ArrayBuffer> {
  return new Uint32Array(PARAMS_FIELDS.map((f) => f === "pad" ? 0 : p[f] ?? 0));
}

/** A uniform buffer holding one dispatch's Params. */
export function paramsBuffer(gpu: Gpu, label: string, p: GemmParams): GPUBuffer {
  return gpu.uniform(label, encodeParams(p).buffer);
}

/**
 * The Params of a product dispatch: the GEMM's shape, `row0` and layout, plus the fields only
 * some paths read (`extra`).
 */
export function productParams(
  gpu: Gpu,
  spec: GemmSpec,
  layout: GemmLayout,
  extra: Pick<GemmParams, "kc" | "mode" | "offAt" | "offBt"> = {},
): GPUBuffer {
  return paramsBuffer(gpu, `gemm ${spec.label} params`, {
    M: spec.M,
    N: spec.N,
    K: spec.K,
    row0: spec.row0 ?? 0,
    ...layout,
    ...extra,
  });
}
