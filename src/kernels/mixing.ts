/**
 * The mixing buffer of live training on the GPU (wgsl/mixing.wgsl), SAELens' activation-store
 * buffer: N rows of activations that the SAE's batches are drawn from, refilled half at a time
 * with fresh rows that land among the old ones.
 *
 * Serving round r hands out the rows of slots slot(r, 0), …, slot(r, H − 1) (H = N/2): a random
 * half of the buffer in random order, slot(r, ·) being a pseudo-random permutation of [0, N)
 * keyed by (seed, r) (a Feistel network with Philox4x32-10 as round function, cycle-walked into
 * [0, N)). Fill round r + 1 then writes H fresh rows into exactly those slots; fill round 0 fills
 * all N slots in order. So each round serves a random half, and a row stays in the buffer for a
 * geometric number of rounds, as in SAELens' mixing_buffer (shuffle the whole buffer, serve one
 * half, keep the other).
 *
 * The counters ({@link MixingCounters}: serve round and position, fill round and position) live
 * in a u32 [4] buffer on the device, read by the gather and scatter kernels and advanced by the
 * advance kernel, so nothing but the model's token ids goes from the host to the device per batch.
 * The host keeps the same counters to know when a fill is due.
 *
 * @example
 * ```ts
 * const spec = { rows: 8128, dim: 64, seed: 42 };       // N = 64 contexts × 127 rows
 * const slot = mixSlot(spec, 3, 17);                     // round 3's 18th served slot
 * const ds = await gatherDispatches(gpu, spec, { rows: 256, part: 0 }, { buf, st, x });
 * ```
 */
import mixingSrc from "../../wgsl/mixing.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { withCommon } from "./common.ts";
import { philox4x32 } from "./sample.ts";

/** A mixing buffer: `rows` (N, even) rows of `dim` f32, permutations keyed by `seed`. */
export interface MixingSpec {
  rows: number;
  dim: number;
  seed: number;
}

/** Philox key word 1 and counter word 3 of the mixing draws (MIX_KEY in the WGSL). */
const MIX_KEY = 0x6d697862;

/** Half the bits of the Feistel domain: the smallest HB ≥ 1 with 4^HB ≥ N. */
function halfBits(n: number): number {
  let hb = 1;
  while (4 ** hb < n) hb++;
  return hb;
}

function constants(spec: MixingSpec): Record<string, number> {
  return {
    N: spec.rows,
    H: spec.rows / 2,
    D: spec.dim,
    HB: halfBits(spec.rows),
    SEED: spec.seed >>> 0,
  };
}

/**
 * slot(round, p): the slot served p-th in serving round `round` (p < N), a permutation of [0, N)
 * for each round (mix_slot in the WGSL).
 */
export function mixSlot(spec: MixingSpec, round: number, p: number): number {
  const hb = halfBits(spec.rows), mask = (1 << hb) - 1;
  let v = p;
  for (;;) {
    let l = v >>> hb, r = v & mask;
    for (let i = 0; i < 4; i++) {
      const f = philox4x32([r, i, round, MIX_KEY], [spec.seed, MIX_KEY])[0] & mask;
      [l, r] = [r, (l ^ f) >>> 0];
    }
    v = ((l << hb) | r) >>> 0;
    if (v < spec.rows) return v;
  }
}

/**
 * Where the buffer stands: rows served in the current serving round, rows written in the current
 * fill round. The same four words as the device's counter buffer.
 */
export class MixingCounters {
  /** Rows of the buffer (N). */
  readonly rows: number;
  serveRound = 0;
  servePos = 0;
  fillRound = 0;
  fillPos = 0;

  constructor(rows: number) {
    this.rows = rows;
  }

  /** H = N / 2: rows per serving round and per fill round after the first. */
  get half(): number {
    return this.rows / 2;
  }

  /** Rows fill round `fillRound` writes: N for the first, H after. */
  get fillSize(): number {
    return this.fillRound === 0 ? this.rows : this.half;
  }

  /** Whether the serving round's slots still wait for their rows (a fill is due first). */
  get fillDue(): boolean {
    return this.fillRound <= this.serveRound;
  }

  /** Whether `rows` more served rows run past the end of the serving round. */
  straddles(rows: number): boolean {
    return this.servePos + rows > this.half;
  }

  /** The counters after `serve` rows served and `fill` rows written (the advance kernel). */
  advance(serve: number, fill: number): void {
    if (serve > 0) {
      this.servePos += serve;
      if (this.servePos >= this.half) {
        this.servePos -= this.half;
        this.serveRound++;
      }
    }
    if (fill > 0) {
      const size = this.fillSize;
      this.fillPos += fill;
      if (this.fillPos >= size) {
        this.fillPos -= size;
        this.fillRound++;
      }
    }
  }

  /** The device's words: u32 [serve round, serve position, fill round, fill position]. */
  words(): Uint32Array {
    return Uint32Array.of(this.serveRound, this.servePos, this.fillRound, this.fillPos);
  }

  /** Counters from {@link MixingCounters.words} (or a checkpoint's copy of them). */
  static from(rows: number, w: ArrayLike<number>): MixingCounters {
    const c = new MixingCounters(rows);
    [c.serveRound, c.servePos, c.fillRound, c.fillPos] = Array.from(w);
    return c;
  }
}

/**
 * x [rows, dim] ← the next `rows` served rows: part 0 writes those inside the current serving
 * round, part 1 those past its end (served from the next round, after the fill between the two).
 * Does not advance the counters.
 */
export async function gatherDispatches(
  gpu: Gpu,
  spec: MixingSpec,
  g: { rows: number; part: 0 | 1 },
  bufs: {
    /** [N, dim] f32, the buffer. */
    buf: GPUBuffer;
    /** u32 [4], the counters. */
    st: GPUBuffer;
    /** [rows, dim] f32, written. */
    x: GPUBuffer;
  },
): Promise<Dispatch[]> {
  const n = g.rows * spec.dim;
  return [
    await kernel(gpu, {
      label: g.part === 0 ? "mix gather" : "mix gather (next round)",
      code: withCommon(mixingSrc),
      entry: "gather",
      constants: { ...constants(spec), ROWS: g.rows, PART: g.part },
      buffers: [bufs.buf, bufs.st, bufs.x],
      groups: groupsFor(g.rows),
      cost: { flops: 0, bytes: n * 8 },
    }),
  ];
}

/**
 * The hook's activations of `contexts` contexts of `seq` tokens, BOS position left out, into the
 * next `contexts·(seq − 1)` slots of the fill round. Does not advance the counters.
 */
export async function scatterDispatches(
  gpu: Gpu,
  spec: MixingSpec,
  s: { contexts: number; seq: number },
  bufs: {
    /** [contexts, seq, dim] f32, the hook's activations. */
    act: GPUBuffer;
    /** u32 [4], the counters. */
    st: GPUBuffer;
    /** [N, dim] f32, the buffer. */
    buf: GPUBuffer;
  },
): Promise<Dispatch[]> {
  const rows = s.contexts * (s.seq - 1);
  return [
    await kernel(gpu, {
      label: "mix scatter",
      code: withCommon(mixingSrc),
      entry: "scatter",
      constants: { ...constants(spec), CTX: s.contexts, SEQ: s.seq },
      buffers: [null, null, null, bufs.act, bufs.st, bufs.buf],
      groups: groupsFor(rows),
      cost: { flops: 0, bytes: rows * spec.dim * 8 },
    }),
  ];
}

/** The counters after `serve` rows served or `fill` rows written (one round boundary at most). */
export async function advanceDispatches(
  gpu: Gpu,
  spec: MixingSpec,
  a: { serve: number; fill: number },
  bufs: { st: GPUBuffer },
): Promise<Dispatch[]> {
  return [
    await kernel(gpu, {
      label: "mix advance",
      code: withCommon(mixingSrc),
      entry: "advance",
      constants: { ...constants(spec), SERVE: a.serve, FILL: a.fill },
      buffers: [null, null, null, null, null, null, bufs.st],
      groups: [1, 1, 1],
      cost: { flops: 0, bytes: 32 },
    }),
  ];
}

/** Reference of {@link gatherDispatches}: the rows it writes (others left as in `x`). */
export function gatherReference(
  spec: MixingSpec,
  buf: Float32Array,
  c: MixingCounters,
  g: { rows: number; part: 0 | 1 },
  x: Float32Array,
): void {
  const d = spec.dim, H = spec.rows / 2;
  for (let i = 0; i < g.rows; i++) {
    const at = c.servePos + i;
    if ((at < H) !== (g.part === 0)) continue;
    const s = g.part === 0
      ? mixSlot(spec, c.serveRound, at)
      : mixSlot(spec, c.serveRound + 1, at - H);
    x.set(buf.subarray(s * d, (s + 1) * d), i * d);
  }
}

/** Reference of {@link scatterDispatches}: writes into `buf`. */
export function scatterReference(
  spec: MixingSpec,
  buf: Float32Array,
  c: MixingCounters,
  s: { contexts: number; seq: number },
  act: Float32Array,
): void {
  const d = spec.dim, kept = s.seq - 1;
  for (let j = 0; j < s.contexts * kept; j++) {
    const p = c.fillPos + j;
    const slot = c.fillRound === 0 ? p : mixSlot(spec, c.fillRound - 1, p);
    const src = (Math.floor(j / kept) * s.seq + 1 + (j % kept)) * d;
    buf.set(act.subarray(src, src + d), slot * d);
  }
}

/**
 * The whole buffer on the host, driven as the live source drives the device's (tests): `take`
 * serves `rows` rows, calling `fill` for the hook's activations of the next contexts whenever a
 * fill round is due (between the two parts of a batch that crosses a round's end).
 */
export class MixingReference {
  readonly spec: MixingSpec;
  readonly buf: Float32Array;
  readonly counters: MixingCounters;
  private readonly chunk: { contexts: number; seq: number };
  private readonly fill: () => Float32Array;

  /**
   * @param fill the next chunk's activations [contexts, seq, dim]
   */
  constructor(
    spec: MixingSpec,
    chunk: { contexts: number; seq: number },
    fill: () => Float32Array,
  ) {
    this.spec = spec;
    this.buf = new Float32Array(spec.rows * spec.dim);
    this.counters = new MixingCounters(spec.rows);
    this.chunk = chunk;
    this.fill = fill;
  }

  /** The next `rows` served rows, [rows, dim]. */
  take(rows: number): Float32Array {
    const c = this.counters;
    const x = new Float32Array(rows * this.spec.dim);
    while (c.fillDue) this.fillRound();
    gatherReference(this.spec, this.buf, c, { rows, part: 0 }, x);
    if (c.straddles(rows)) {
      this.fillRound();
      gatherReference(this.spec, this.buf, c, { rows, part: 1 }, x);
    }
    c.advance(rows, 0);
    return x;
  }

  private fillRound(): void {
    const c = this.counters, per = this.chunk.contexts * (this.chunk.seq - 1);
    for (let left = c.fillSize; left > 0; left -= per) {
      scatterReference(this.spec, this.buf, c, this.chunk, this.fill());
      c.advance(0, per);
    }
  }
}
