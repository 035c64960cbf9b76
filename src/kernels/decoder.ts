/** Unit-norm decoder constraint (wgsl/decoder.wgsl). */
import decoderSrc from "../../wgsl/decoder.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";

/** Removes from each decoder row's gradient its component along the (unit) row. */
export function projectGradKernel(
  gpu: Gpu,
  dSae: number,
  dIn: number,
  wDec: GPUBuffer,
  gDec: GPUBuffer,
): Promise<Dispatch> {
  return kernel(gpu, {
    label: "decoder grad projection",
    code: decoderSrc,
    entry: "project_grad",
    constants: { D: dIn, M: dSae },
    buffers: [wDec, gDec],
    groups: groupsFor(dSae),
  });
}

/** Rescales each decoder row to unit norm. */
export function normalizeKernel(
  gpu: Gpu,
  dSae: number,
  dIn: number,
  wDec: GPUBuffer,
): Promise<Dispatch> {
  return kernel(gpu, {
    label: "decoder normalize",
    code: decoderSrc,
    entry: "normalize",
    constants: { D: dIn, M: dSae },
    buffers: [wDec],
    groups: groupsFor(dSae),
  });
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
