/**
 * Ground-truth recovery on synthetic data: for each true direction g_j, the best cosine with any
 * decoder row (decoder rows and g_j are unit vectors, so cosine is the dot product).
 */
import type { Gpu } from "../gpu/device.ts";
import { run } from "../gpu/dispatch.ts";
import { gemmDispatches } from "../kernels/gemm/mod.ts";

/** Recovery summary. */
export interface Recovery {
  /** Mean over true directions of the max cosine with any decoder row (MMCS). */
  mmcs: number;
  /** Fraction of true directions with max cosine above `threshold`. */
  recovered: number;
  threshold: number;
  /** best[j]: max cosine of direction j; bestLatent[j]: the decoder row achieving it. */
  best: Float32Array;
  bestLatent: Uint32Array;
}

/** Unit-normalised copy of rows [n, d]. */
function unitRows(w: Float32Array, d: number): Float32Array {
  const out = w.slice();
  for (let i = 0; i < out.length / d; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += out[i * d + k] ** 2;
    const n = Math.sqrt(s) || 1;
    for (let k = 0; k < d; k++) out[i * d + k] /= n;
  }
  return out;
}

/**
 * Max cosine of each true direction (rows of `truth` [n, d]) with the decoder rows (`wDec` [m, d]),
 * computed on the GPU with the GEMM kernel, `truth` in chunks so readbacks stay small.
 */
export async function groundTruthRecovery(
  gpu: Gpu,
  truth: Float32Array,
  wDec: Float32Array,
  d: number,
  threshold = 0.9,
): Promise<Recovery> {
  const n = truth.length / d, m = wDec.length / d;
  const wb = gpu.upload("recovery W_dec", unitRows(wDec, d));
  const chunk = Math.max(1, Math.min(n, Math.floor((16 << 20) / (4 * m))));
  const best = new Float32Array(n), bestLatent = new Uint32Array(n);
  const gt = unitRows(truth, d);
  const ab = gpu.buffer("recovery truth", chunk * d * 4);
  const cb = gpu.buffer("recovery cos", chunk * m * 4);
  // The last chunk may be partial: its stale rows are computed but never read.
  const cosines = await gemmDispatches(gpu, {
    label: "recovery",
    M: chunk,
    N: m,
    K: d,
    transA: false,
    transB: true,
    epilogue: "none",
  }, { a: ab, b: wb, c: cb });
  for (let j0 = 0; j0 < n; j0 += chunk) {
    const rows = Math.min(chunk, n - j0);
    gpu.write(ab, gt.subarray(j0 * d, (j0 + rows) * d));
    run(gpu, cosines);
    const cos = await gpu.read(cb, rows * m * 4);
    for (let r = 0; r < rows; r++) {
      let bv = -Infinity, bi = 0;
      for (let i = 0; i < m; i++) {
        if (cos[r * m + i] > bv) {
          bv = cos[r * m + i];
          bi = i;
        }
      }
      best[j0 + r] = bv;
      bestLatent[j0 + r] = bi;
    }
  }
  gpu.destroyBuffer(wb);
  gpu.destroyBuffer(ab);
  gpu.destroyBuffer(cb);
  let sum = 0, hit = 0;
  for (const b of best) {
    sum += b;
    if (b > threshold) hit++;
  }
  return { mmcs: sum / n, recovered: hit / n, threshold, best, bestLatent };
}
