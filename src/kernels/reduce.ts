/** Column reductions (wgsl/reduce.wgsl): batch means, bias gradients, per-latent statistics. */
import reduceSrc from "../../wgsl/reduce.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { STATE_WGSL } from "../sae/state.ts";

const code = STATE_WGSL + reduceSrc;

/** out[c] = scale · Σ_r a[r, c] for a [rows, cols]. */
export function colSumKernel(
  gpu: Gpu,
  label: string,
  rows: number,
  cols: number,
  scale: number,
  a: GPUBuffer,
  out: GPUBuffer,
): Promise<Dispatch> {
  return kernel(gpu, {
    label,
    code,
    entry: "col_sum",
    constants: { R: rows, C: cols, OUT_SCALE: scale },
    buffers: [a, out],
    groups: groupsFor(cols, 64),
  });
}

/** dL/db_dec = Σ_b dL/dx̂_b − (dL/db_enc)·W_enc (second term only when b_dec is applied to x). */
export function bDecGradKernel(
  gpu: Gpu,
  batch: number,
  dIn: number,
  dSae: number,
  applyBDec: boolean,
  b: { dxhat: GPUBuffer; gBEnc: GPUBuffer; wEnc: GPUBuffer; out: GPUBuffer },
): Promise<Dispatch> {
  return kernel(gpu, {
    label: "b_dec grad",
    code,
    entry: "bdec_grad",
    constants: { R: batch, C: dIn, K2: dSae, APPLY_B_DEC: applyBDec ? 1 : 0 },
    buffers: [b.dxhat, b.out, b.gBEnc, b.wEnc],
    groups: groupsFor(dIn, 64),
  });
}

/** Per latent: (fires, Σ f) into out [m, 2]; last_fired[i] = step for latents that fired. */
export function featureStatsKernel(
  gpu: Gpu,
  batch: number,
  dSae: number,
  b: { f: GPUBuffer; out: GPUBuffer; lastFired: GPUBuffer; state: GPUBuffer },
): Promise<Dispatch> {
  return kernel(gpu, {
    label: "feature stats",
    code,
    entry: "feature_stats",
    constants: { R: batch, C: dSae },
    buffers: [b.f, b.out, null, null, b.lastFired, b.state],
    groups: groupsFor(dSae, 64),
  });
}

/** Reference: scale · column sums. */
export function colSumReference(a: Float32Array, rows: number, cols: number, scale: number) {
  const out = new Float32Array(cols);
  for (let c = 0; c < cols; c++) {
    let s = 0;
    for (let r = 0; r < rows; r++) s += a[r * cols + c];
    out[c] = scale * s;
  }
  return out;
}

/** Reference of {@link bDecGradKernel}. */
export function bDecGradReference(
  dxhat: Float32Array,
  gBEnc: Float32Array,
  wEnc: Float32Array,
  batch: number,
  dIn: number,
  dSae: number,
  applyBDec: boolean,
): Float32Array {
  const out = colSumReference(dxhat, batch, dIn, 1);
  if (applyBDec) {
    for (let c = 0; c < dIn; c++) {
      let t = 0;
      for (let i = 0; i < dSae; i++) t += gBEnc[i] * wEnc[i * dIn + c];
      out[c] -= t;
    }
  }
  return out;
}

/** Reference of {@link featureStatsKernel}'s statistics: [m, 2] (fires, Σ f). */
export function featureStatsReference(f: Float32Array, batch: number, dSae: number): Float32Array {
  const out = new Float32Array(dSae * 2);
  for (let i = 0; i < dSae; i++) {
    let n = 0, s = 0;
    for (let r = 0; r < batch; r++) {
      const v = f[r * dSae + i];
      if (v > 0) n++;
      s += v;
    }
    out[2 * i] = n;
    out[2 * i + 1] = s;
  }
  return out;
}
