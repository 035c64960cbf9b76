/**
 * The one encoder on the host: every path that encodes rows on the CPU (the public `encodeRows` of
 * src/sae/load.ts, the plain-TypeScript step of src/sae/reference.ts, the export's checks, the
 * evaluation tests) computes f here, as the GPU's encoder GEMM does (src/sae/forward.ts):
 *
 *   x_c = scale·x − b_dec (or scale·x)
 *   pre = W_enc x_c + b_enc                         (f64 sums)
 *   f_i = pre_i if pre_i > max(τ_i, 0) else 0        (τ absent: ReLU)
 *   or, with k (TopK): f_i = max(pre_i, 0) for the k largest pre_i of the row (ties to the lowest
 *   index, as the GPU's selection: src/kernels/topk.ts), 0 elsewhere
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
  /** The row top-k's k (SAELens' TopK), or null/absent. */
  k?: number | null;
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
  const topk = s.k ?? null;
  const n = x.length / d;
  const row = new Float64Array(d);
  const pre = new Float64Array(m);
  const order = Array.from({ length: m }, (_, i) => i);
  for (let r = 0; r < n; r++) {
    const xr = xc ? xc.subarray(r * d, (r + 1) * d) : row;
    for (let k = 0; k < d; k++) xr[k] = s.scale * x[r * d + k] - (s.applyBDec ? w.bDec[k] : 0);
    for (let i = 0; i < m; i++) {
      let p = w.bEnc[i];
      for (let k = 0; k < d; k++) p += w.wEnc[i * d + k] * xr[k];
      pre[i] = p;
      f[r * m + i] = topk === null && p > Math.max(tau ? tau[i] : 0, 0) ? p : 0;
    }
    if (topk === null) continue;
    order.sort((a, b) => pre[b] - pre[a] || a - b);
    for (let e = 0; e < topk; e++) f[r * m + order[e]] = Math.max(pre[order[e]], 0);
  }
}
