/**
 * Row normalisations of the residual stream (wgsl/norm.wgsl): RMSNorm (Llama), Gemma's RMSNorm
 * (gain 1 + w) and LayerNorm (GPT-2), all computed in f32 as Hugging Face computes them.
 */
import normSrc from "../../wgsl/norm.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { WG, withCommon } from "./common.ts";
import { hasSubgroups } from "./collectives.ts";
import { adapterClass } from "../gpu/adapter.ts";

/**
 * - `"rms"`: x / sqrt(mean(x²) + eps) · w (Llama's RMSNorm).
 * - `"rms_gemma"`: x / sqrt(mean(x²) + eps) · (1 + w) (Gemma's RMSNorm).
 * - `"layer"`: (x − mean) / sqrt(var + eps) · w + b, biased variance (LayerNorm).
 */
export type NormKind = "rms" | "rms_gemma" | "layer";

const KIND_CODE: Record<NormKind, number> = { rms: 0, rms_gemma: 1, layer: 2 };

/** Shapes and options of a normalisation. */
export interface NormSpec {
  rows: number;
  dim: number;
  kind: NormKind;
  eps: number;
  /** Add the result to `out` (resid += norm(y)) instead of writing it. */
  accumulate?: boolean;
  /**
   * One invocation per row without barriers (default on CPU adapters; a vec4 at a time where dim
   * % 4 == 0) instead of one workgroup per row.
   */
  lane?: boolean;
}

/** Buffers of a normalisation. */
export interface NormBuffers {
  /** [rows, dim] f32. */
  x: GPUBuffer;
  /** [dim] f32 weight (gain). */
  weight: GPUBuffer;
  /** [dim] f32 bias (LayerNorm only). */
  bias?: GPUBuffer;
  /** [rows, dim] f32, a buffer other than x. */
  out: GPUBuffer;
}

/** One dispatch normalising every row of x into out. */
export async function normDispatches(
  gpu: Gpu,
  spec: NormSpec,
  bufs: NormBuffers,
): Promise<Dispatch[]> {
  if (spec.kind === "layer" && !bufs.bias) throw new Error("norm: LayerNorm needs a bias buffer");
  const lane = spec.lane ?? adapterClass(gpu) === "cpu";
  const { rows, dim } = spec;
  const passes = spec.kind === "layer" ? 3 : 2;
  return [
    await kernel(gpu, {
      label: `norm ${spec.kind}`,
      code: withCommon(normSrc, hasSubgroups(gpu)),
      entry: lane ? (dim % 4 === 0 ? "norm_lane4" : "norm_lane") : "norm_row",
      constants: {
        ROWS: rows,
        D: dim,
        KIND: KIND_CODE[spec.kind],
        EPS: spec.eps,
        ACCUM: spec.accumulate ? 1 : 0,
      },
      buffers: [bufs.x, bufs.weight, bufs.bias ?? gpu.dummy(), bufs.out],
      groups: lane ? groupsFor(rows, WG) : groupsFor(rows),
      cost: {
        flops: rows * dim * (passes + 3),
        bytes: rows * dim * 4 * (spec.accumulate ? 3 : 2) + dim * 4 * (bufs.bias ? 2 : 1),
      },
    }),
  ];
}

/** Reference of {@link normDispatches} (f64); `outIn` is out's content before (accumulate). */
export function normReference(
  spec: NormSpec,
  x: Float32Array,
  weight: Float32Array,
  bias?: Float32Array,
  outIn?: Float32Array,
): Float32Array {
  const { rows, dim: D } = spec;
  const out = new Float32Array(rows * D);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * D, (r + 1) * D);
    let mean = 0;
    if (spec.kind === "layer") mean = row.reduce((a, v) => a + v, 0) / D;
    const v = row.reduce((a, xv) => a + (xv - mean) ** 2, 0) / D;
    const inv = 1 / Math.sqrt(v + spec.eps);
    for (let k = 0; k < D; k++) {
      const g = spec.kind === "rms_gemma" ? 1 + weight[k] : weight[k];
      let y = (row[k] - mean) * inv * g + (spec.kind === "layer" ? bias![k] : 0);
      if (spec.accumulate) y += outIn![r * D + k];
      out[r * D + k] = y;
    }
  }
  return out;
}
