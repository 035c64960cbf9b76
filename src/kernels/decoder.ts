/** Unit-norm decoder constraint (wgsl/decoder.wgsl). */
import decoderSrc from "../../wgsl/decoder.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel, type KernelCost } from "../gpu/dispatch.ts";
import { rowParts } from "../gpu/split.ts";
import { WG, withCommon } from "./common.ts";
import { hasSubgroups } from "./collectives.ts";
import { adapterClass } from "../gpu/adapter.ts";

/** One dispatch per range of decoder rows that fits a binding (one range unless W_dec is large). */
async function overRows(
  gpu: Gpu,
  label: string,
  entry: string,
  dSae: number,
  dIn: number,
  bufs: GPUBuffer[],
  lane: boolean,
  cost: (rows: number) => KernelCost,
): Promise<Dispatch[]> {
  const out: Dispatch[] = [];
  for (const { r0, r1, views } of rowParts(gpu, dSae, dIn, bufs)) {
    // Lanes read a vec4 at a time where rows and the part's offset allow.
    const v4 = lane && dIn % 4 === 0 && views[0].off % 4 === 0;
    out.push(
      await kernel(gpu, {
        label,
        code: withCommon(decoderSrc, hasSubgroups(gpu)),
        entry: lane ? `${entry}_lane${v4 ? "4" : ""}` : entry,
        constants: { D: dIn, M: r1 - r0, OFF: views[0].off },
        buffers: views.map((v) => v.binding),
        groups: lane ? groupsFor(r1 - r0, WG) : groupsFor(r1 - r0),
        cost: cost(r1 - r0),
      }),
    );
  }
  return out;
}

/**
 * Removes from each decoder row's gradient its component along the (unit) row. One workgroup per
 * row, or on CPU adapters (`lane`, the default there) one invocation per row without barriers.
 */
export function projectGradKernel(
  gpu: Gpu,
  dSae: number,
  dIn: number,
  wDec: GPUBuffer,
  gDec: GPUBuffer,
  lane = adapterClass(gpu) === "cpu",
): Promise<Dispatch[]> {
  // Per element a multiply-add into g_i·w_i and one out of g; reads w and g, writes g.
  return overRows(
    gpu,
    "decoder grad projection",
    "project_grad",
    dSae,
    dIn,
    [wDec, gDec],
    lane,
    (rows) => ({ flops: 4 * rows * dIn, bytes: 3 * 4 * rows * dIn }),
  );
}

/** Rescales each decoder row to unit norm (`lane` as for {@link projectGradKernel}). */
export function normalizeKernel(
  gpu: Gpu,
  dSae: number,
  dIn: number,
  wDec: GPUBuffer,
  lane = adapterClass(gpu) === "cpu",
): Promise<Dispatch[]> {
  // Per element a multiply-add into ‖w_i‖² and a division, per row a square root; reads and
  // writes w.
  return overRows(
    gpu,
    "decoder normalize",
    "normalize",
    dSae,
    dIn,
    [wDec],
    lane,
    (rows) => ({ flops: 3 * rows * dIn + rows, bytes: 2 * 4 * rows * dIn }),
  );
}

/** Reference of {@link projectGradKernel} (in place on g). */
export function projectGradReference(w: Float32Array, g: Float32Array, dSae: number, dIn: number) {
  for (let i = 0; i < dSae; i++) {
    let dot = 0;
    for (let k = 0; k < dIn; k++) dot += g[i * dIn + k] * w[i * dIn + k];
    for (let k = 0; k < dIn; k++) g[i * dIn + k] -= dot * w[i * dIn + k];
  }
}

/** Reference of {@link normalizeKernel} (in place). */
export function normalizeReference(w: Float32Array, dSae: number, dIn: number) {
  for (let i = 0; i < dSae; i++) {
    let s = 0;
    for (let k = 0; k < dIn; k++) s += w[i * dIn + k] ** 2;
    const n = Math.sqrt(s);
    if (n > 0) { for (let k = 0; k < dIn; k++) w[i * dIn + k] /= n; }
  }
}
