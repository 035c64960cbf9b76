/**
 * Next-token choice per row of logits (wgsl/sample.wgsl): greedy argmax (ties to the lowest
 * index, as torch.argmax) or a draw at a temperature from a counter-based generator
 * (Philox4x32-10 keyed by the seed, counter (row, step)), so a run with the same seed and steps
 * gives the same tokens however it is batched in time. Optionally appends the token to a token
 * buffer and advances the row's position, so a decoding step needs nothing from the host but the
 * step number.
 */
import sampleSrc from "../../wgsl/sample.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { withCommon } from "./common.ts";
import { logitParts } from "./logits.ts";

/** Shapes and options of sampling. */
export interface SampleSpec {
  rows: number;
  vocab: number;
  /** 0: greedy; > 0: softmax(logits / temperature). */
  temperature: number;
  /** Also write the token into `tokens` [rows, capacity] at pos + 1 and advance pos. */
  append?: { capacity: number };
}

/** Buffers of sampling. */
export interface SampleBuffers {
  /** [rows, vocab] f32. */
  logits: GPUBuffer;
  /** u32 [2]: (seed, step); needed when temperature > 0 (the host writes the step). */
  params?: GPUBuffer;
  /** u32 [rows]: the chosen token of each row (may be the next step's ids buffer). */
  next: GPUBuffer;
  /** u32 [rows, capacity] (append): each row's tokens, by position. */
  tokens?: GPUBuffer;
  /** u32 [rows] (append): position of each row's last token; advanced by one. */
  pos?: GPUBuffer;
}

/** One dispatch (one per row range where the logits exceed a storage binding). */
export async function sampleDispatches(
  gpu: Gpu,
  spec: SampleSpec,
  bufs: SampleBuffers,
): Promise<Dispatch[]> {
  if (spec.temperature > 0 && !bufs.params) throw new Error("sample: temperature needs params");
  if (spec.append && (!bufs.tokens || !bufs.pos)) {
    throw new Error("sample: append needs tokens, pos");
  }
  const parts = logitParts(gpu, spec, [bufs.logits]);
  // Unused read-write slots get their own buffer: one buffer bound read-only (gpu.dummy() in
  // the params slot) and read-write in one dispatch is invalid.
  const unused = spec.append ? null : gpu.buffer("sample unused", 16);
  return await Promise.all(parts.map((p) => {
    const rows = p.r1 - p.r0;
    return kernel(gpu, {
      label: parts.length === 1 ? "sample" : `sample rows ${p.r0}-${p.r1}`,
      code: withCommon(sampleSrc),
      entry: "sample",
      constants: {
        ROWS: rows,
        V: spec.vocab,
        R0: p.r0,
        L_OFF: p.views[0].off,
        TEMP: spec.temperature,
        APPEND: spec.append ? 1 : 0,
        CAP: spec.append?.capacity ?? 1,
      },
      buffers: [
        p.views[0].binding,
        bufs.params ?? gpu.dummy(),
        bufs.next,
        unused ?? bufs.tokens!,
        unused ?? bufs.pos!,
      ],
      groups: groupsFor(rows),
      cost: {
        flops: rows * spec.vocab * (spec.temperature > 0 ? 8 : 1),
        bytes: rows * (spec.vocab * 4 * (spec.temperature > 0 ? 3 : 1) + 16),
      },
    });
  }));
}

const M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85;

/** High 32 bits of the 64-bit product of two u32. */
function mulhi(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p01 = a0 * b1, p10 = a1 * b0;
  const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) >>> 0;
}

/** Philox4x32-10 of a 4-word counter under a 2-word key (Random123's definition). */
export function philox4x32(counter: ArrayLike<number>, key: ArrayLike<number>): Uint32Array {
  const x = Uint32Array.from(counter);
  let k0 = key[0] >>> 0, k1 = key[1] >>> 0;
  for (let i = 0; i < 10; i++) {
    const hi0 = mulhi(M0, x[0]), lo0 = Math.imul(M0, x[0]) >>> 0;
    const hi1 = mulhi(M1, x[2]), lo1 = Math.imul(M1, x[2]) >>> 0;
    x.set([hi1 ^ x[1] ^ k0, lo1, hi0 ^ x[3] ^ k1, lo0]);
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return x;
}

/** The uniform in [0, 1) the kernel draws for (seed, step, row): (x₀ >> 8)·2⁻²⁴. */
export function sampleUniform(seed: number, step: number, row: number): number {
  return (philox4x32([row, step, 0, 0], [seed, 0])[0] >>> 8) / 2 ** 24;
}

/**
 * Reference of {@link sampleDispatches} (f64): per row the greedy token, or the smallest v whose
 * cumulative weight exceeds u·total, with `target` and the cumulative weights before and after the
 * chosen token (to judge a disagreement within rounding of a boundary).
 */
export function sampleReference(
  spec: SampleSpec,
  logits: Float32Array,
  seed = 0,
  step = 0,
): { token: number; below: number; above: number; target: number }[] {
  const { rows, vocab: V, temperature: T } = spec;
  const out = [];
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * V, (r + 1) * V);
    let best = 0;
    for (let v = 1; v < V; v++) if (row[v] > row[best]) best = v;
    if (!(T > 0)) {
      out.push({ token: best, below: 0, above: 0, target: 0 });
      continue;
    }
    const m = row[best];
    const w = Array.from(row, (l) => Math.exp((l - m) / T));
    const total = w.reduce((a, x) => a + x, 0);
    const target = sampleUniform(seed, step, r) * total;
    let acc = 0, token = V - 1;
    for (let v = 0; v < V; v++) {
      if (acc + w[v] > target) {
        token = v;
        break;
      }
      acc += w[v];
    }
    out.push({
      token,
      below: acc / total,
      above: (acc + w[token]) / total,
      target: target / total,
    });
  }
  return out;
}
