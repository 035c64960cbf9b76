/**
 * A shuffle buffer (SAELens' mixing buffer, tf.data's shuffle) over any activation source: rows
 * that arrive in order (consecutive tokens of one document, say) leave in random order.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { UserError } from "../errors.ts";
import { Rng } from "../rng.ts";
import type { ActivationSource } from "./source.ts";

/** Serialised state of a {@link ShuffleBuffer}. */
export interface ShuffleState {
  /** Tag checked on restore. */
  kind: "shuffle";
  /** Format version. */
  version: 1;
  /** Capacity, chunk size and row width, checked on restore. */
  capacity: number;
  /** See {@link ShuffleOptions.chunkRows}. */
  chunkRows: number;
  /** Row width. */
  dIn: number;
  /** Whether the initial fill happened (before it, nothing is held). */
  filled: boolean;
  /** Rows held (the first `rows` slots of the buffer). */
  rows: number;
  /** Rng words of the slot picker. */
  rng: number[];
  /** The wrapped source's state, taken after it produced the held rows. */
  inner: unknown;
  /** The held rows, [rows, dIn] f32 little-endian bytes, base64. */
  buffer: string;
}

/** Options of a {@link ShuffleBuffer}. */
export interface ShuffleOptions {
  /**
   * Rows pulled from the inner source per refill: the buffer refills once this many slots are free,
   * so it serves from between capacity − chunkRows + 1 and capacity rows. Default ⌈capacity / 4⌉.
   */
  chunkRows?: number;
}

/**
 * Serves each requested row from a uniformly random slot of a buffer of `capacity` rows, and
 * refills the consumed slots from the inner source in chunks. Every inner row is served exactly
 * once (the held rows are served later, never twice).
 *
 * The first request fills the whole buffer. Held rows are packed in slots [0, rows): serving slot
 * r moves the last held row into r, so a refill appends one contiguous chunk that the inner source
 * writes in place.
 *
 * State cost: {@link ShuffleBuffer.state} carries the held rows, capacity·dIn·4 bytes as base64
 * (4/3 of that as text): 4,096 rows of dIn = 2,304 is 37.7 MB of f32, a ~50 MB string in the
 * checkpoint. Keep the capacity small where checkpoints must be small.
 *
 * @example
 * ```ts
 * import { DEFAULT_SYNTHETIC } from "../config.ts";
 * import { SyntheticSource } from "./synthetic.ts";
 * import { ShuffleBuffer } from "./shuffle.ts";
 * const src = new ShuffleBuffer(new SyntheticSource(DEFAULT_SYNTHETIC, 64), 4096, 1);
 * const x = new Float32Array(512 * 64); // x: [512, 64] f32, row-major
 * await src.nextBatch(x);
 * ```
 */
export class ShuffleBuffer implements ActivationSource {
  /** Width of each row (the inner source's). */
  readonly dIn: number;
  /** "shuffle(4096, <inner description>)". */
  readonly description: string;
  /** Rows the buffer holds when full. */
  readonly capacity: number;
  /** Rows pulled from the inner source per refill. */
  readonly chunkRows: number;

  private readonly inner: ActivationSource;
  private rng: Rng;
  // buf: [capacity, dIn] f32, row-major; slots [0, rows) hold unserved rows.
  private readonly buf: Float32Array;
  private rows = 0;
  private filled = false;

  /**
   * Wraps `inner`; nothing is pulled until the first request.
   *
   * @param inner the source to shuffle
   * @param capacity rows held (more mixes better; costs capacity·dIn·4 bytes and checkpoint size)
   * @param seed seed of the slot picker
   * @param opts refill chunk size
   */
  constructor(inner: ActivationSource, capacity: number, seed: number, opts: ShuffleOptions = {}) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new UserError(
        `shuffle buffer capacity must be a positive integer (got ${capacity}); set it to e.g. 4096`,
      );
    }
    const chunk = opts.chunkRows ?? Math.ceil(capacity / 4);
    if (!Number.isInteger(chunk) || chunk < 1 || chunk > capacity) {
      throw new UserError(
        `shuffle buffer chunkRows must be an integer in [1, capacity=${capacity}] (got ${chunk})`,
      );
    }
    this.inner = inner;
    this.dIn = inner.dIn;
    this.capacity = capacity;
    this.chunkRows = chunk;
    this.description = `shuffle(${capacity}, ${inner.description})`;
    this.rng = new Rng(seed);
    this.buf = new Float32Array(capacity * this.dIn);
  }

  /** The inner source's rows before it repeats (undefined for a generator). */
  get totalRows(): number | undefined {
    return this.inner.totalRows;
  }

  /** Fills `out` ([rows, dIn] f32, row-major) with the next shuffled rows. */
  async nextBatch(out: Float32Array): Promise<void> {
    const dIn = this.dIn;
    if (out.length % dIn !== 0) {
      throw new Error(
        `shuffle buffer: batch buffer length ${out.length} is not a multiple of d_in=${dIn}`,
      );
    }
    if (!this.filled) {
      while (this.rows < this.capacity) {
        await this.pull(Math.min(this.chunkRows, this.capacity - this.rows));
      }
      this.filled = true;
    }
    const buf = this.buf;
    const n = out.length / dIn;
    for (let i = 0; i < n; i++) {
      if (this.capacity - this.rows >= this.chunkRows) await this.pull(this.chunkRows);
      const r = this.rng.int(this.rows);
      out.set(buf.subarray(r * dIn, (r + 1) * dIn), i * dIn);
      const last = --this.rows;
      if (r !== last) buf.copyWithin(r * dIn, last * dIn, (last + 1) * dIn);
    }
  }

  /** JSON-serialisable state, buffer contents included (see the class docs for its size). */
  state(): ShuffleState {
    const bytes = new Uint8Array(this.buf.buffer, this.buf.byteOffset, this.rows * this.dIn * 4);
    return {
      kind: "shuffle",
      version: 1,
      capacity: this.capacity,
      chunkRows: this.chunkRows,
      dIn: this.dIn,
      filled: this.filled,
      rows: this.rows,
      rng: this.rng.getState(),
      inner: this.inner.state(),
      buffer: Buffer.from(bytes).toString("base64"),
    };
  }

  /** Restores a {@link ShuffleBuffer.state} (the inner source's state included). */
  restore(state: unknown): void {
    const s = state as Partial<ShuffleState> | null;
    if (
      !s || s.kind !== "shuffle" || s.version !== 1 || typeof s.buffer !== "string" ||
      !Array.isArray(s.rng) || s.rng.length !== 4 || !Number.isInteger(s.rows) ||
      typeof s.filled !== "boolean"
    ) {
      throw new UserError(
        "shuffle buffer: the saved data state is not a shuffle-buffer state; resume with the data settings the run was started with",
      );
    }
    if (s.capacity !== this.capacity || s.chunkRows !== this.chunkRows || s.dIn !== this.dIn) {
      throw new UserError(
        `shuffle buffer: the saved state is for capacity=${s.capacity}, chunkRows=${s.chunkRows}, d_in=${s.dIn} but this buffer has capacity=${this.capacity}, chunkRows=${this.chunkRows}, d_in=${this.dIn}; resume with the original settings`,
      );
    }
    const rows = s.rows as number;
    const bytes = Buffer.from(s.buffer, "base64");
    const expected = rows * this.dIn * 4;
    if (rows < 0 || rows > this.capacity || bytes.length !== expected) {
      throw new UserError(
        `shuffle buffer: the saved buffer holds ${bytes.length} bytes, expected ${expected}; the checkpoint is damaged`,
      );
    }
    this.inner.restore(s.inner);
    this.rng = Rng.fromState(s.rng);
    this.filled = s.filled as boolean;
    this.rows = rows;
    new Uint8Array(this.buf.buffer, this.buf.byteOffset, expected).set(bytes);
  }

  /** Appends `n` rows from the inner source at slots [rows, rows + n). */
  private async pull(n: number): Promise<void> {
    const dIn = this.dIn;
    await this.inner.nextBatch(this.buf.subarray(this.rows * dIn, (this.rows + n) * dIn));
    this.rows += n;
  }
}
