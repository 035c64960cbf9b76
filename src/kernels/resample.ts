/**
 * Dead-latent resampling (wgsl/resample.wgsl): re-initialises the latents the host picked (at a
 * resample step, src/sae/resample.ts) toward the rows it sampled, and zeroes their Adam moments,
 * as dictionary_learning's `StandardTrainer.resample_neurons` does (the rules: src/sae/resample.ts).
 */
import resampleSrc from "../../wgsl/resample.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type ComputeDispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { WG, withCommon } from "./common.ts";

const code = withCommon(resampleSrc);

/** Sizes and the encoder rule of the resampling kernels. */
export interface ResampleSpec {
  /** Latents, input width, and the most pairs (the batch). */
  m: number;
  d: number;
  pairs: number;
  /** Encoder rows from the normalised input (true) or the input as it is (dictionary_learning). */
  normalizeEnc: boolean;
}

/** A parameter with its Adam moments (src/sae/model.ts ParamBuffers). */
interface Moments {
  p: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
}

/**
 * The resampling dispatches: the mean alive encoder norm, the new rows, the moments zeroed. `pairs`
 * holds [count, j₀, r₀, j₁, r₁, …] (u32, at most s.pairs pairs), `dead` [m] u32 the dead mask,
 * `xc` [B, d] the step's encoder input; `scal` is a 1-float scratch buffer.
 */
export async function resampleDispatches(
  gpu: Gpu,
  s: ResampleSpec,
  b: {
    wEnc: Moments;
    bEnc: Moments;
    wDec: Moments;
    xc: GPUBuffer;
    pairs: GPUBuffer;
    dead: GPUBuffer;
    scal: GPUBuffer;
  },
): Promise<ComputeDispatch[]> {
  const base = {
    M: s.m,
    D: s.d,
    PAIRS: s.pairs,
    NORMALIZE_ENC: s.normalizeEnc ? 1 : 0,
  };
  const RED_WG = 256;
  const zero = (label: string, p: Moments, rowLen: number) =>
    kernel(gpu, {
      label,
      code,
      entry: "zero_rows",
      constants: { ...base, ROW_LEN: rowLen },
      buffers: [null, null, null, null, b.pairs, null, null, p.m, p.v],
      groups: groupsFor(s.pairs, WG),
      cost: { flops: 0, bytes: 8 * s.pairs * rowLen },
    });
  return [
    await kernel(gpu, {
      label: "resample alive norm",
      code,
      entry: "alive_norm",
      constants: { M: s.m, D: s.d, RED_WG },
      buffers: [b.wEnc.p, null, null, null, null, b.dead, b.scal],
      groups: [1, 1, 1],
      cost: { flops: 2 * s.m * s.d, bytes: 4 * (s.m * s.d + s.m) },
    }),
    await kernel(gpu, {
      label: "resample rows",
      code,
      entry: "rows",
      constants: base,
      buffers: [b.wEnc.p, b.bEnc.p, b.wDec.p, b.xc, b.pairs, null, b.scal],
      groups: groupsFor(s.pairs, WG),
      cost: { flops: 5 * s.pairs * s.d, bytes: 4 * s.pairs * 4 * s.d },
    }),
    await zero("resample adam wEnc", b.wEnc, s.d),
    await zero("resample adam bEnc", b.bEnc, 1),
    await zero("resample adam wDec", b.wDec, s.d),
  ];
}

/** Host copies of a parameter and its moments, as {@link resampleReference} updates them. */
export interface HostMoments {
  p: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/** Reference of {@link resampleDispatches} (f64 norms), in place. */
export function resampleReference(
  s: Omit<ResampleSpec, "pairs">,
  w: { wEnc: HostMoments; bEnc: HostMoments; wDec: HostMoments },
  xc: Float32Array,
  pairs: [number, number][],
  dead: Uint32Array,
): void {
  const { m, d } = s;
  let sum = 0, alive = 0;
  for (let i = 0; i < m; i++) {
    if (dead[i]) continue;
    let q = 0;
    for (let k = 0; k < d; k++) q += w.wEnc.p[i * d + k] ** 2;
    sum += Math.sqrt(q);
    alive++;
  }
  const aliveNorm = alive > 0 ? sum / alive : 0;
  for (const [j, r] of pairs) {
    let q = 0;
    for (let k = 0; k < d; k++) q += xc[r * d + k] ** 2;
    if (!(q > 0)) continue;
    const inv = 1 / Math.sqrt(q);
    const enc = 0.2 * aliveNorm * (s.normalizeEnc ? inv : 1);
    for (let k = 0; k < d; k++) {
      w.wDec.p[j * d + k] = xc[r * d + k] * inv;
      w.wEnc.p[j * d + k] = xc[r * d + k] * enc;
    }
    w.bEnc.p[j] = 0;
  }
  for (const [j] of pairs) {
    for (const [t, len] of [[w.wEnc, d], [w.bEnc, 1], [w.wDec, d]] as const) {
      t.m.fill(0, j * len, (j + 1) * len);
      t.v.fill(0, j * len, (j + 1) * len);
    }
  }
}
