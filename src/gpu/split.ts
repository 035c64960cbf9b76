/**
 * Views of buffers larger than the storage-binding limit.
 *
 * Some adapters bind at most 128 MiB of a buffer (lavapipe; WebGPU's default) while buffers may be
 * larger (maxBufferSize; 2 GiB on lavapipe). At user scale W_enc [d_sae, d_in] and the latents
 * [batch, d_sae] exceed the binding limit, so a kernel that touches them splits its dispatch into
 * parts, each binding a contiguous range (a "view") of rows. Every matrix here is row-major with
 * the latent index on the rows of the weights, so a range of latents of W is a range of rows; a
 * range of batch rows of f is a range of rows too. Small buffers are bound whole, exactly as
 * before: a run whose buffers all fit dispatches the same kernels it always did.
 */
import type { Gpu } from "./device.ts";

/** A binding of part of a buffer plus where the wanted data starts inside it (f32 elements). */
export interface View {
  /** A range of the buffer, or the whole buffer where nothing needs splitting. */
  binding: GPUBufferBinding | GPUBuffer;
  /** Element offset of the first wanted element from the start of the binding. */
  off: number;
}

/** A buffer, or a range of one, as kernels take it. */
export type Operand = GPUBuffer | GPUBufferBinding;

/** The buffer and the element offset of an operand (a range must start at a multiple of 4 B). */
export function operandBase(op: Operand): { buffer: GPUBuffer; base: number; elems: number } {
  if (op instanceof GPUBuffer) return { buffer: op, base: 0, elems: op.size / 4 };
  const offset = op.offset ?? 0;
  const size = op.size ?? op.buffer.size - offset;
  return { buffer: op.buffer, base: offset / 4, elems: size / 4 };
}

/** Bytes an operand binds. */
export function operandBytes(op: Operand): number {
  return operandBase(op).elems * 4;
}

/** Whether `op` can be bound whole on this device. */
export function fits(gpu: Gpu, op: Operand): boolean {
  return operandBytes(op) <= gpu.maxBinding;
}

/**
 * Elements one view may cover: the binding limit less the slack of aligning its start down and
 * padding its end to 16 bytes.
 */
export function viewElems(gpu: Gpu): number {
  return Math.floor((gpu.maxBinding - gpu.offsetAlign - 16) / 4);
}

/**
 * A view of `count` elements of `op` from element `start` (relative to the operand): the binding
 * starts at the aligned offset at or before it, and is padded to a multiple of 16 bytes where the
 * buffer allows (vec4 arrays alias f32 bindings).
 */
export function view(
  gpu: Gpu,
  op: Operand,
  start: number,
  count: number,
): { binding: GPUBufferBinding; off: number } {
  const { buffer, base } = operandBase(op);
  const startB = (base + start) * 4;
  const offset = Math.floor(startB / gpu.offsetAlign) * gpu.offsetAlign;
  const end = startB + count * 4;
  const size = Math.min(Math.ceil((end - offset) / 16) * 16, buffer.size - offset);
  if (size > gpu.maxBinding) {
    throw new Error(
      `view of '${buffer.label}' [${start}, ${start + count}) needs ${size} B, over the ` +
        `binding limit ${gpu.maxBinding} B`,
    );
  }
  return { binding: { buffer, offset, size }, off: (startB - offset) / 4 };
}

/**
 * Splits [0, n) into consecutive ranges of at most `chunk` items, `chunk` rounded down to a
 * multiple of `mult` (at least `mult`).
 */
export function ranges(n: number, chunk: number, mult = 1): [number, number][] {
  const c = Math.max(mult, Math.floor(chunk / mult) * mult);
  const out: [number, number][] = [];
  for (let i = 0; i < n; i += c) out.push([i, Math.min(n, i + c)]);
  return out.length ? out : [[0, 0]];
}

/**
 * Row ranges of a row-major [rows, rowLen] matrix such that each range's rows fit one view, rows
 * per range a multiple of `mult`. One range covering everything when the whole matrix fits.
 */
export function rowRanges(
  gpu: Gpu,
  rows: number,
  rowLen: number,
  mult = 1,
): [number, number][] {
  if (rows * rowLen * 4 <= gpu.maxBinding) return [[0, rows]];
  const per = Math.floor(viewElems(gpu) / rowLen);
  if (per < mult) {
    throw new Error(
      `a row of ${rowLen} f32 (${mult} at a time) does not fit the storage-binding limit of ` +
        `${gpu.maxBinding} B`,
    );
  }
  return ranges(rows, per, mult);
}

/** One part of a dispatch over row ranges: its rows and a view of each buffer for them. */
export interface RowPart {
  r0: number;
  r1: number;
  /** Views of the buffers, in the order given ({ binding: buffer, off: 0 } when not split). */
  views: View[];
}

/**
 * The parts of a kernel over the rows of row-major [rows, rowLen] buffers of the same shape: one
 * part binding the buffers whole when they fit, else one per range from {@link rowRanges}.
 */
export function rowParts(
  gpu: Gpu,
  rows: number,
  rowLen: number,
  bufs: GPUBuffer[],
): RowPart[] {
  const parts = rowRanges(gpu, rows, rowLen);
  return parts.map(([r0, r1]) => ({
    r0,
    r1,
    views: bufs.map((b) =>
      parts.length === 1 ? { binding: b, off: 0 } : view(gpu, b, r0 * rowLen, (r1 - r0) * rowLen)
    ),
  }));
}
