/**
 * A GEMM whose operands exceed the storage-binding limit, as parts over views of its operands
 * (src/gpu/split.ts).
 */
import type { Gpu } from "../../gpu/device.ts";
import { type Operand, view, viewElems } from "../../gpu/split.ts";
import type { GemmBuffers, GemmLayout, GemmSpec } from "./spec.ts";

/** One part: a GEMM over views, with where its operands start in them. */
export interface GemmPart {
  spec: GemmSpec;
  bufs: GemmBuffers;
  layout: GemmLayout;
}

/**
 * The parts of a GEMM: blocks of rows of C and of the inner dimension such that each stored
 * operand's touched span fits one binding. Every stored matrix is row-major, so a block touches
 * a contiguous span of it once the block's rows are bounded; parts along K accumulate (allowed
 * for the "none", "bias", "accumulate" and "bias_accumulate" epilogues, the bias added by the
 * first part). `e` of "relu_grad" is laid out like C; `eoff` is the global column of column 0 of
 * the whole GEMM.
 */
export function gemmParts(gpu: Gpu, spec: GemmSpec, bufs: GemmBuffers, eoff = 0): GemmPart[] {
  const { M, N, K } = spec;
  type Dim = "M" | "N" | "K";
  const mats: { rows: Dim; cols: Dim; ld: number }[] = [
    spec.transA ? { rows: "K", cols: "M", ld: M } : { rows: "M", cols: "K", ld: K },
    spec.transB ? { rows: "N", cols: "K", ld: K } : { rows: "K", cols: "N", ld: N },
    { rows: "M", cols: "N", ld: N },
  ];
  const blk: Record<Dim, number> = { M, N, K };
  const L = viewElems(gpu);
  for (let changed = true; changed;) {
    changed = false;
    for (const mt of mats) {
      const c = blk[mt.cols];
      if ((blk[mt.rows] - 1) * mt.ld + c <= L) continue;
      const rows = Math.floor(Math.floor((L - c) / mt.ld + 1) / 4) * 4;
      if (rows < 4) {
        throw new Error(`gemm ${spec.label}: 4 rows of ${mt.ld} f32 exceed the binding limit`);
      }
      blk[mt.rows] = rows;
      changed = true;
    }
  }
  const kSplit = blk.K < K;
  if (kSplit && !["none", "bias", "accumulate", "bias_accumulate"].includes(spec.epilogue)) {
    throw new Error(`gemm ${spec.label}: epilogue ${spec.epilogue} cannot be split along K`);
  }
  const parts: GemmPart[] = [];
  for (let m0 = 0; m0 < M; m0 += blk.M) {
    const bm = Math.min(blk.M, M - m0);
    for (let n0 = 0; n0 < N; n0 += blk.N) {
      const bn = Math.min(blk.N, N - n0);
      for (let k0 = 0; k0 < K; k0 += blk.K) {
        const bk = Math.min(blk.K, K - k0);
        const at = { M: m0, N: n0, K: k0 };
        const size = { M: bm, N: bn, K: bk };
        const views = [bufs.a, bufs.b, bufs.c].map((op, i) => {
          const mt = mats[i];
          const start = at[mt.rows] * mt.ld + at[mt.cols];
          return view(gpu, op, start, (size[mt.rows] - 1) * mt.ld + size[mt.cols]);
        });
        let e: Operand | undefined = bufs.e;
        if (spec.epilogue === "relu_grad") {
          const ev = view(gpu, bufs.e!, m0 * N + n0, (bm - 1) * N + bn);
          if (ev.off !== views[2].off) throw new Error(`gemm ${spec.label}: E and C misaligned`);
          e = ev.binding;
        }
        parts.push({
          spec: {
            ...spec,
            M: bm,
            N: bn,
            K: bk,
            epilogue: k0 === 0 ? spec.epilogue : "accumulate",
            row0: (spec.row0 ?? 0) + m0,
          },
          bufs: { a: views[0].binding, b: views[1].binding, c: views[2].binding, e, s: bufs.s },
          layout: {
            lda: mats[0].ld,
            ldb: mats[1].ld,
            ldc: N,
            offA: views[0].off,
            offB: views[1].off,
            offC: views[2].off,
            eoff: eoff + n0,
          },
        });
      }
    }
  }
  return parts;
}
