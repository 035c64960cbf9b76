/**
 * Row copies of activations (wgsl/rows.wgsl): a hook's activations copied apart from the residual
 * stream, or with the first position of each context (BOS) dropped.
 */
import rowsSrc from "../../wgsl/rows.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { WG, withCommon } from "./common.ts";

/** Shapes of a row copy: x [batch, seq, dim] → out [batch, seq − skip, dim]. */
export interface CopyRowsSpec {
  batch: number;
  seq: number;
  dim: number;
  /** Leading rows of each sequence left out (default 0). */
  skip?: number;
}

/** One dispatch copying the kept rows of x into out (distinct f32 buffers). */
export async function copyRowsDispatches(
  gpu: Gpu,
  spec: CopyRowsSpec,
  bufs: { x: GPUBuffer; out: GPUBuffer },
): Promise<Dispatch[]> {
  const skip = spec.skip ?? 0;
  if (skip >= spec.seq) throw new Error(`copy rows: skipping ${skip} of ${spec.seq} rows`);
  const n = spec.batch * (spec.seq - skip) * spec.dim;
  return [
    await kernel(gpu, {
      label: skip ? "copy rows (skip)" : "copy rows",
      code: withCommon(rowsSrc),
      entry: "copy_rows",
      constants: { B: spec.batch, SEQ: spec.seq, D: spec.dim, SKIP: skip },
      buffers: [bufs.x, bufs.out],
      groups: groupsFor(n, WG),
      cost: { flops: 0, bytes: n * 8 },
    }),
  ];
}

/** Reference of {@link copyRowsDispatches}. */
export function copyRowsReference(spec: CopyRowsSpec, x: Float32Array): Float32Array {
  const skip = spec.skip ?? 0, kept = spec.seq - skip, D = spec.dim;
  const out = new Float32Array(spec.batch * kept * D);
  for (let b = 0; b < spec.batch; b++) {
    out.set(x.subarray((b * spec.seq + skip) * D, (b + 1) * spec.seq * D), b * kept * D);
  }
  return out;
}
