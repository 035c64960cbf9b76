/**
 * The one encoder on the host: every path that encodes rows on the CPU (the public `encodeRows` of
 * src/sae/load.ts, the plain-TypeScript step of src/sae/reference.ts, the export's checks, the
 * evaluation tests) computes f here, as the GPU's encoder GEMM does (src/sae/forward.ts):
 *
 *   x_c = scale·x − b_dec (or scale·x)
 *   pre = W_enc x_c + b_enc                         (f64 sums)
 *   f_i = pre_i if pre_i > max(τ_i, 0) else 0        (τ absent: ReLU)
 */
import type { SaeWeights } from "./model.ts";

/** Sizes and input handling of {@link encodeInto}. */
export interface EncoderSpec {
  dIn: number;
  dSae: number;
  /** Subtract b_dec from the input (apply_b_dec_to_input). */
  applyBDec: boolean;
  /** Input scale (1: x is already scaled). */
  scale: number;
  /** thresholds: [d_sae] τ, or null for ReLU. */
  tau: ArrayLike<number> | null;
}

/**
 * Encodes rows x [n, d_in] into `f` [n, d_sae]; with `xc` ([n, d_in]) also keeps the encoder's
 * input (the reference's gradients need it).
 */
export function encodeInto(
  s: EncoderSpec,
  w: SaeWeights,
  x: ArrayLike<number>,
  f: Float32Array | Float64Array,
  xc?: Float64Array,
): void {
  const { dIn: d, dSae: m, tau } = s;
  const n = x.length / d;
  const row = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    const xr = xc ? xc.subarray(r * d, (r + 1) * d) : row;
    for (let k = 0; k < d; k++) xr[k] = s.scale * x[r * d + k] - (s.applyBDec ? w.bDec[k] : 0);
    for (let i = 0; i < m; i++) {
      let pre = w.bEnc[i];
      for (let k = 0; k < d; k++) pre += w.wEnc[i * d + k] * xr[k];
      f[r * m + i] = pre > Math.max(tau ? tau[i] : 0, 0) ? pre : 0;
    }
  }
}
