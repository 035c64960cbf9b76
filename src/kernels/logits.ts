/**
 * Per-row operations on logits [rows, vocab] (wgsl/logits.wgsl): Gemma-2's final soft-capping,
 * log-softmax statistics (max and log-sum-exp), next-token cross-entropy and KL(p_clean ‖ p) per
 * token, as SAEBench's core evaluation defines them (issue 14). Logits larger than one storage
 * binding (rows × 256000 vocab) are processed in row ranges, one dispatch each.
 */
import logitsSrc from "../../wgsl/logits.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { rowRanges, view } from "../gpu/split.ts";
import { WG, withCommon } from "./common.ts";
import { hasSubgroups } from "./collectives.ts";

/** Shape of a logits matrix. */
export interface LogitsSpec {
  rows: number;
  vocab: number;
}

/** A row range of logits and, for each logits buffer, its view (binding and start element). */
export interface LogitPart {
  r0: number;
  r1: number;
  views: { binding: GPUBuffer | GPUBufferBinding; off: number }[];
}

/** Row ranges of [rows, vocab] logits buffers that fit one binding each (one range if they fit). */
export function logitParts(gpu: Gpu, spec: LogitsSpec, bufs: GPUBuffer[]): LogitPart[] {
  const parts = rowRanges(gpu, spec.rows, spec.vocab);
  return parts.map(([r0, r1]) => ({
    r0,
    r1,
    views: bufs.map((b) =>
      parts.length === 1
        ? { binding: b, off: 0 }
        : view(gpu, b, r0 * spec.vocab, (r1 - r0) * spec.vocab)
    ),
  }));
}

function label(name: string, p: LogitPart, n: number): string {
  return n === 1 ? name : `${name} rows ${p.r0}-${p.r1}`;
}

/** l ← cap·tanh(l / cap) in place (Gemma-2's final logit soft-capping, cap 30). */
export async function softcapDispatches(
  gpu: Gpu,
  spec: LogitsSpec & { cap: number },
  bufs: { logits: GPUBuffer },
): Promise<Dispatch[]> {
  const parts = logitParts(gpu, spec, [bufs.logits]);
  return await Promise.all(parts.map((p) => {
    const n = (p.r1 - p.r0) * spec.vocab;
    return kernel(gpu, {
      label: label("softcap", p, parts.length),
      code: withCommon(logitsSrc, hasSubgroups(gpu)),
      entry: "softcap",
      constants: { ROWS: p.r1 - p.r0, V: spec.vocab, L_OFF: p.views[0].off, CAP: spec.cap },
      buffers: [p.views[0].binding],
      groups: groupsFor(n, WG),
      cost: { flops: n * 3, bytes: n * 8 },
    });
  }));
}

/** stats[r] = (max_v l_v, log Σ_v exp l_v), one workgroup per row. */
export async function logitStatsDispatches(
  gpu: Gpu,
  spec: LogitsSpec,
  bufs: {
    /** [rows, vocab] f32. */
    logits: GPUBuffer;
    /** [rows, 2] f32: (max, log-sum-exp) per row. */
    stats: GPUBuffer;
  },
): Promise<Dispatch[]> {
  const parts = logitParts(gpu, spec, [bufs.logits]);
  return await Promise.all(parts.map((p) => {
    const rows = p.r1 - p.r0;
    return kernel(gpu, {
      label: label("logit stats", p, parts.length),
      code: withCommon(logitsSrc, hasSubgroups(gpu)),
      entry: "row_stats",
      constants: { ROWS: rows, V: spec.vocab, R0: p.r0, L_OFF: p.views[0].off },
      buffers: [p.views[0].binding, bufs.stats],
      groups: groupsFor(rows),
      cost: { flops: rows * spec.vocab * 4, bytes: rows * (spec.vocab * 4 + 8) },
    });
  }));
}

/** Buffers of {@link crossEntropyDispatches}. */
export interface CrossEntropyBuffers {
  /** [rows, vocab] f32. */
  logits: GPUBuffer;
  /** [rows, 2] f32 from {@link logitStatsDispatches}. */
  stats: GPUBuffer;
  /** [rows] u32: the next token of each row (each < vocab). */
  targets: GPUBuffer;
  /** [rows] u32: 0 skips the row (its CE is 0); absent: every row kept. */
  mask?: GPUBuffer;
  /** [rows] f32: CE_r = lse_r − l_r[target_r]. */
  ce: GPUBuffer;
}

/** Next-token cross-entropy per row, one invocation per row. */
export async function crossEntropyDispatches(
  gpu: Gpu,
  spec: LogitsSpec,
  bufs: CrossEntropyBuffers,
): Promise<Dispatch[]> {
  const parts = logitParts(gpu, spec, [bufs.logits]);
  return await Promise.all(parts.map((p) => {
    const rows = p.r1 - p.r0;
    return kernel(gpu, {
      label: label("cross entropy", p, parts.length),
      code: withCommon(logitsSrc, hasSubgroups(gpu)),
      entry: "cross_entropy",
      constants: {
        ROWS: rows,
        V: spec.vocab,
        R0: p.r0,
        L_OFF: p.views[0].off,
        MASKED: bufs.mask ? 1 : 0,
      },
      buffers: [
        p.views[0].binding,
        bufs.stats,
        bufs.targets,
        bufs.mask ?? gpu.dummy(),
        bufs.ce,
      ],
      groups: groupsFor(rows, WG),
      cost: { flops: rows, bytes: rows * 20 },
    });
  }));
}

/** Buffers of {@link klDispatches}. */
export interface KlBuffers {
  /** Clean logits [rows, vocab] f32 (p_clean). */
  clean: GPUBuffer;
  /** [rows, 2] f32 statistics of the clean logits. */
  cleanStats: GPUBuffer;
  /** Logits of the pass compared with it [rows, vocab] f32 (p). */
  logits: GPUBuffer;
  /** [rows, 2] f32 statistics of `logits`. */
  stats: GPUBuffer;
  /** [rows] u32: 0 skips the row (its KL is 0); absent: every row kept. */
  mask?: GPUBuffer;
  /** [rows] f32: KL(p_clean ‖ p) per row. */
  kl: GPUBuffer;
}

/** KL(p_clean ‖ p) = Σ_v p_clean,v (log p_clean,v − log p_v) per row, one workgroup per row. */
export async function klDispatches(
  gpu: Gpu,
  spec: LogitsSpec,
  bufs: KlBuffers,
): Promise<Dispatch[]> {
  const parts = logitParts(gpu, spec, [bufs.logits, bufs.clean]);
  return await Promise.all(parts.map((p) => {
    const rows = p.r1 - p.r0;
    return kernel(gpu, {
      label: label("kl", p, parts.length),
      code: withCommon(logitsSrc, hasSubgroups(gpu)),
      entry: "kl",
      constants: {
        ROWS: rows,
        V: spec.vocab,
        R0: p.r0,
        L_OFF: p.views[0].off,
        LC_OFF: p.views[1].off,
        MASKED: bufs.mask ? 1 : 0,
      },
      buffers: [
        p.views[0].binding,
        bufs.stats,
        null,
        bufs.mask ?? gpu.dummy(),
        bufs.kl,
        p.views[1].binding,
        bufs.cleanStats,
      ],
      groups: groupsFor(rows),
      cost: { flops: rows * spec.vocab * 6, bytes: rows * (spec.vocab * 8 + 20) },
    });
  }));
}

/** Reference of {@link softcapDispatches}. */
export function softcapReference(logits: Float32Array, cap: number): Float32Array {
  return logits.map((l) => cap * Math.tanh(l / cap));
}

/** Reference of {@link logitStatsDispatches} (f64): [rows, 2] (max, log-sum-exp). */
export function logitStatsReference(spec: LogitsSpec, logits: Float32Array): Float64Array {
  const { rows, vocab: V } = spec;
  const out = new Float64Array(rows * 2);
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * V, (r + 1) * V);
    let m = -Infinity;
    for (const l of row) m = Math.max(m, l);
    let s = 0;
    for (const l of row) s += Math.exp(l - m);
    out[2 * r] = m;
    out[2 * r + 1] = m + Math.log(s);
  }
  return out;
}

/** Reference of {@link crossEntropyDispatches} (f64): CE per row (0 where masked). */
export function crossEntropyReference(
  spec: LogitsSpec,
  logits: Float32Array,
  targets: Uint32Array,
  mask?: Uint32Array,
): Float64Array {
  const stats = logitStatsReference(spec, logits);
  return Float64Array.from(
    { length: spec.rows },
    (_, r) => mask && !mask[r] ? 0 : stats[2 * r + 1] - logits[r * spec.vocab + targets[r]],
  );
}

/** Reference of {@link klDispatches} (f64): KL(p_clean ‖ p) per row (0 where masked). */
export function klReference(
  spec: LogitsSpec,
  clean: Float32Array,
  logits: Float32Array,
  mask?: Uint32Array,
): Float64Array {
  const { rows, vocab: V } = spec;
  const sc = logitStatsReference(spec, clean), s = logitStatsReference(spec, logits);
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    if (mask && !mask[r]) continue;
    let kl = 0;
    for (let v = 0; v < V; v++) {
      const lpc = clean[r * V + v] - sc[2 * r + 1];
      kl += Math.exp(lpc) * (lpc - (logits[r * V + v] - s[2 * r + 1]));
    }
    out[r] = kl;
  }
  return out;
}
