/**
 * Batched generation bookkeeping (wgsl/generate.wgsl): after each step's sampling, append the
 * sampled ids to each row's history and set the row's next input and position, restarting a row
 * from BOS at position 0 when its document ends (EOS or BOS sampled) or its context is full.
 */
import generateSrc from "../../wgsl/generate.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { cdiv, type Dispatch, kernel } from "../gpu/dispatch.ts";
import { WG, withCommon } from "./common.ts";

/** History flag of a token after which the document was cut at the context length. */
export const CUT_FLAG = 0x80000000;

/** Shapes and special ids of one generation step's bookkeeping. */
export interface AdvanceSpec {
  batch: number;
  /** History slots per row: steps per round. */
  steps: number;
  /** Context length: positions 0..maxSeq−1. */
  maxSeq: number;
  bos: number;
  eos: number;
}

/** Buffers of {@link advanceDispatches} (all u32). */
export interface AdvanceBuffers {
  /** [batch] ids sampled this step. */
  next: GPUBuffer;
  /** [batch] inputs of the next step (written). */
  ids: GPUBuffer;
  /** [batch] their positions (read and written). */
  pos: GPUBuffer;
  /** [batch, steps] sampled ids, CUT_FLAG set where the document was cut. */
  hist: GPUBuffer;
  /** [batch] entries in each row's history (zeroed by the host at the start of a round). */
  count: GPUBuffer;
  /**
   * The sampler's u32 (seed, step) (src/kernels/sample.ts): its step is advanced once per step,
   * so many steps run in one submission with fresh draws.
   */
  params?: GPUBuffer;
}

/** One dispatch of the bookkeeping. */
export async function advanceDispatches(
  gpu: Gpu,
  spec: AdvanceSpec,
  bufs: AdvanceBuffers,
): Promise<Dispatch[]> {
  return [
    await kernel(gpu, {
      label: "generate advance",
      code: withCommon(generateSrc),
      entry: "advance",
      constants: {
        BATCH: spec.batch,
        STEPS: spec.steps,
        MAX_SEQ: spec.maxSeq,
        BOS: spec.bos,
        EOS: spec.eos,
        STEP_PARAMS: bufs.params ? 1 : 0,
      },
      buffers: [bufs.next, bufs.ids, bufs.pos, bufs.hist, bufs.count, bufs.params ?? gpu.dummy()],
      groups: [cdiv(spec.batch, WG), 1, 1],
      cost: { flops: 0, bytes: spec.batch * 4 * 7 },
    }),
  ];
}

/** Reference of one {@link advanceDispatches} step, updating the arrays in place. */
export function advanceReference(
  spec: AdvanceSpec,
  s: {
    next: Uint32Array;
    ids: Uint32Array;
    pos: Uint32Array;
    hist: Uint32Array;
    count: Uint32Array;
    params?: Uint32Array;
  },
): void {
  if (s.params) s.params[1]++;
  for (let b = 0; b < spec.batch; b++) {
    const t = s.next[b], p = s.pos[b] + 1;
    const ends = t === spec.eos || t === spec.bos;
    const full = !ends && p >= spec.maxSeq;
    if (s.count[b] < spec.steps) {
      s.hist[b * spec.steps + s.count[b]] = full ? (t | CUT_FLAG) >>> 0 : t;
      s.count[b]++;
    }
    s.ids[b] = ends || full ? spec.bos : t;
    s.pos[b] = ends || full ? 0 : p;
  }
}

/**
 * The documents of a round's history: each row's ids split at each EOS/BOS or cut (the ending
 * token left out), so a document holds at most maxSeq − 1 tokens. `open` holds each row's unfinished document from earlier rounds (updated
 * in place); finished documents are returned.
 */
export function splitDocuments(
  spec: AdvanceSpec,
  hist: Uint32Array,
  count: Uint32Array,
  open: number[][],
): number[][] {
  const done: number[][] = [];
  for (let b = 0; b < spec.batch; b++) {
    for (let i = 0; i < count[b]; i++) {
      const h = hist[b * spec.steps + i];
      const t = h & ~CUT_FLAG;
      if (t === spec.eos || t === spec.bos) {
        done.push(open[b]);
        open[b] = [];
      } else if (h & CUT_FLAG) {
        // The context is full: the token sampled after its last position is left out, so BOS
        // and the document fit the context.
        done.push(open[b]);
        open[b] = [];
      } else open[b].push(t);
    }
  }
  return done;
}
