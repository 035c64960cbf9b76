/** The GEMM family's plain-TypeScript reference. */
import { geluTanh } from "../act.ts";
import type { GemmSpec } from "./spec.ts";

/**
 * C = epilogue(op(A)·op(B)) in f64 accumulation, as every GEMM path computes it (`cIn`: C's
 * values before, for "accumulate" and "bias_accumulate").
 */
export function gemmReference(
  spec: GemmSpec,
  a: Float32Array,
  b: Float32Array,
  e?: Float32Array,
  s?: Float32Array,
  cIn?: Float32Array,
): Float32Array {
  const { M, N, K } = spec;
  const c = cIn ? cIn.slice() : new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) {
        const av = spec.transA ? a[k * M + m] : a[m * K + k];
        const bv = spec.transB ? b[n * K + k] : b[k * N + n];
        acc += av * bv;
      }
      switch (spec.epilogue) {
        case "bias":
          acc += e![n];
          break;
        case "bias_relu":
          acc = Math.max(acc + e![n], 0);
          break;
        case "relu_grad":
          acc = e![m * N + n] > 0 ? acc + s![spec.scalarIdx ?? 0] : 0;
          break;
        case "bias_threshold":
          acc += e![n];
          if (!(acc > Math.max(s![n], 0))) acc = 0;
          break;
        case "ortho_coef": {
          const i = (spec.row0 ?? 0) + m;
          acc = i === n ? 0 : s![0] * e![i] * e![n] * acc / (Math.abs(acc) + s![1]);
          break;
        }
        case "accumulate":
          acc += c[m * N + n];
          break;
        case "bias_gelu":
          acc = geluTanh(acc + e![n]);
          break;
        case "bias_accumulate":
          acc = c[m * N + n] + (acc + e![n]);
          break;
      }
      c[m * N + n] = acc;
    }
  }
  return c;
}
