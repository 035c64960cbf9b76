/** Column reductions (wgsl/reduce.wgsl): batch means, bias gradients, per-latent statistics. */
import reduceSrc from "../../wgsl/reduce.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { rowParts } from "../gpu/split.ts";
import { WG, withCommon } from "./common.ts";

const code = withCommon(reduceSrc);

/**
 * One dispatch per range of rows of the [rows, cols] matrix `a` (one range unless `a` exceeds the
 * binding limit), each binding that range of `a`; later parts accumulate (ACCUM).
 */
async function overRows(
  gpu: Gpu,
  rows: number,
  cols: number,
  a: GPUBuffer,
  make: (
    part: { R: number; ACCUM: number; A_OFF: number },
    a: GPUBufferBinding | GPUBuffer,
  ) => Promise<Dispatch>,
): Promise<Dispatch[]> {
  const out: Dispatch[] = [];
  for (const { r0, r1, views: [v] } of rowParts(gpu, rows, cols, [a])) {
    out.push(await make({ R: r1 - r0, ACCUM: r0 > 0 ? 1 : 0, A_OFF: v.off }, v.binding));
  }
  return out;
}

/** out[c] = scale · Σ_r a[r, c] for a [rows, cols]. */
export function colSumKernel(
  gpu: Gpu,
  label: string,
  rows: number,
  cols: number,
  scale: number,
  a: GPUBuffer,
  out: GPUBuffer,
): Promise<Dispatch[]> {
  return overRows(gpu, rows, cols, a, (part, av) =>
    kernel(gpu, {
      label,
      code,
      entry: "col_sum",
      constants: { C: cols, OUT_SCALE: scale, ...part },
      buffers: [av, out],
      groups: groupsFor(cols, WG),
      // The column sums and the scale (and a later part's add to `out`, which it reads).
      cost: {
        flops: part.R * cols + cols * (1 + part.ACCUM),
        bytes: 4 * (part.R * cols + cols * (1 + part.ACCUM)),
      },
    }));
}

/** dL/db_dec = Σ_b dL/dx̂_b − (dL/db_enc)·W_enc (second term only when b_dec is applied to x). */
export async function bDecGradKernel(
  gpu: Gpu,
  batch: number,
  dIn: number,
  dSae: number,
  applyBDec: boolean,
  b: { dxhat: GPUBuffer; gBEnc: GPUBuffer; wEnc: GPUBuffer; out: GPUBuffer },
): Promise<Dispatch[]> {
  // Parts over ranges of W_enc's rows: the first also sums dL/dx̂, the later ones subtract theirs.
  // Without b_dec in the input W_enc is not read: one part, a dummy in its slot.
  const parts = applyBDec
    ? rowParts(gpu, dSae, dIn, [b.wEnc])
    : [{ r0: 0, r1: dSae, views: [{ binding: gpu.dummy(), off: 0 }] }];
  const out: Dispatch[] = [];
  for (const { r0: i0, r1: i1, views: [v] } of parts) {
    // The first part sums dL/dx̂ [B, d_in]; each part with b_dec applied takes its rows' share of
    // (dL/db_enc)·W_enc (one multiply-add per element of W_enc) and subtracts it.
    const sum = i0 === 0 ? batch * dIn : 0, k2 = applyBDec ? i1 - i0 : 0;
    out.push(
      await kernel(gpu, {
        label: "b_dec grad",
        code,
        entry: "bdec_grad",
        constants: {
          R: batch,
          C: dIn,
          K2: i1 - i0,
          APPLY_B_DEC: applyBDec ? 1 : 0,
          ACCUM: i0 > 0 ? 1 : 0,
          W_OFF: v.off,
          I0: i0,
        },
        buffers: [b.dxhat, b.out, b.gBEnc, v.binding],
        groups: groupsFor(dIn, WG),
        cost: {
          flops: sum + 2 * k2 * dIn + (applyBDec ? dIn : 0),
          bytes: 4 * (sum + k2 * (dIn + 1) + dIn * (i0 > 0 ? 2 : 1)),
        },
      }),
    );
  }
  return out;
}

/** Per latent: (fires, Σ f) into out [m, 2]; last_fired[i] = step for latents that fired. */
export function featureStatsKernel(
  gpu: Gpu,
  batch: number,
  dSae: number,
  b: { f: GPUBuffer; out: GPUBuffer; lastFired: GPUBuffer; state: GPUBuffer },
): Promise<Dispatch[]> {
  return overRows(gpu, batch, dSae, b.f, (part, fv) =>
    kernel(gpu, {
      label: "feature stats",
      code,
      entry: "feature_stats",
      constants: { C: dSae, ...part },
      buffers: [fv, b.out, null, null, b.lastFired, b.state],
      groups: groupsFor(dSae, WG),
      // A count and a sum per element of f; writes (fires, Σf) and the last-fired step per latent
      // (a later part reads and adds to the first two).
      cost: {
        flops: 2 * part.R * dSae,
        bytes: 4 * (part.R * dSae + dSae * (3 + 2 * part.ACCUM)),
      },
    }));
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
