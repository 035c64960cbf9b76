/**
 * Token embedding gather (wgsl/embed.wgsl): out[t] = scale · E[ids[t]] (+ wpe[position(t)] with
 * learned positions). Gemma scales by √d_model; GPT-2 adds learned positions; Llama does neither.
 * E may be larger than one storage binding (Gemma-2's 256000 × 2304): it is then split into row
 * ranges, one dispatch each (src/gpu/split.ts).
 */
import embedSrc from "../../wgsl/embed.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { type Operand, operandBytes, ranges, view, viewElems } from "../gpu/split.ts";
import { WG, withCommon } from "./common.ts";
import {
  positionConstants,
  type PositionMode,
  tokenPositions,
  withPositions,
} from "./positions.ts";

/** Storage of a weight matrix: f32, or f16 / bf16 packed two per u32 word (low half first). */
export type WeightDtype = "f32" | "f16" | "bf16";

const DTYPE_CODE: Record<WeightDtype, number> = { f32: 0, f16: 1, bf16: 2 };
const DTYPE_BYTES: Record<WeightDtype, number> = { f32: 4, f16: 2, bf16: 2 };

/** Shapes and options of the embedding gather. */
export interface EmbedSpec {
  batch: number;
  /** Tokens per sequence (T = batch·seq). */
  seq: number;
  vocab: number;
  dModel: number;
  /** Factor on E's rows (default 1; Gemma: √d_model). */
  scale?: number;
  /** Storage of E (default f32). */
  dtype?: WeightDtype;
  /** Add learned positions wpe (GPT-2), read from `pos` in this mode. */
  learnedPositions?: PositionMode;
}

/** Buffers of the embedding gather. */
export interface EmbedBuffers {
  /** Token ids: [T] u32. Ids ≥ vocab give zero rows (plus positions): validate them on the host. */
  ids: GPUBuffer;
  /** E: [vocab, d_model] in `dtype`, row-major; may exceed one binding. */
  table: Operand;
  /** [T, d_model] f32. */
  out: GPUBuffer;
  /** Learned positions wpe: [n_ctx, d_model] f32 (with `learnedPositions`). */
  wpe?: GPUBuffer;
  /** Positions (with `learnedPositions`): u32 [batch] or [T] (see {@link PositionMode}). */
  pos?: GPUBuffer;
}

/**
 * The gather as one dispatch, or one per row range of E where E exceeds a storage binding (each
 * writes the tokens whose ids fall in its range).
 */
export async function embedDispatches(
  gpu: Gpu,
  spec: EmbedSpec,
  bufs: EmbedBuffers,
): Promise<Dispatch[]> {
  const { batch, seq, vocab, dModel: D } = spec;
  const T = batch * seq;
  const dtype = spec.dtype ?? "f32";
  const eb = DTYPE_BYTES[dtype];
  if (operandBytes(bufs.table) < Math.ceil((vocab * D * eb) / 4) * 4) {
    throw new Error(`embed: E holds ${operandBytes(bufs.table)} B, not [${vocab}, ${D}] ${dtype}`);
  }
  const lp = spec.learnedPositions;
  if (lp && (!bufs.wpe || !bufs.pos)) throw new Error("embed: learned positions need wpe and pos");
  const whole = vocab * D * eb <= gpu.maxBinding;
  // A range's words: at most one more than its rows hold (a row may start inside a word).
  const perPart = whole ? vocab : Math.floor(((viewElems(gpu) - 1) * 4) / (D * eb));
  if (perPart < 1) throw new Error(`embed: one row of ${D} ${dtype} exceeds a storage binding`);
  const parts = ranges(vocab, perPart);
  const out: Dispatch[] = [];
  for (const [r0, r1] of parts) {
    const e0 = r0 * D; // first element of the range
    const w0 = dtype === "f32" ? e0 : Math.floor(e0 / 2);
    const w1 = dtype === "f32" ? r1 * D : Math.ceil((r1 * D) / 2);
    const v = whole ? { binding: bufs.table, off: 0 } : view(gpu, bufs.table, w0, w1 - w0);
    const rows = parts.length === 1 ? T : T * (r1 - r0) / vocab; // expected, for the cost
    out.push(
      await kernel(gpu, {
        label: parts.length === 1 ? "embed" : `embed rows ${r0}-${r1}`,
        code: withCommon(withPositions(embedSrc)),
        entry: "embed",
        constants: {
          T,
          D,
          VOCAB: vocab,
          R0: r0,
          R1: r1,
          LAST: r1 === vocab ? 1 : 0,
          DTYPE: DTYPE_CODE[dtype],
          E_OFF: v.off,
          E_ODD: dtype === "f32" ? 0 : e0 % 2,
          SCALE: spec.scale ?? 1,
          LEARNED_POS: lp ? 1 : 0,
          ...positionConstants(lp ?? "offset", seq),
        },
        buffers: [bufs.ids, v.binding, bufs.out, bufs.wpe ?? gpu.dummy(), bufs.pos ?? gpu.dummy()],
        groups: groupsFor(T * D, WG),
        cost: {
          flops: rows * D * (lp ? 2 : 1),
          bytes: T * 4 + rows * D * (eb + 4 + (lp ? 4 : 0)),
        },
      }),
    );
  }
  return out;
}

/** Reference of {@link embedDispatches}; `table` holds E's values as f32 [vocab, d_model]. */
export function embedReference(
  spec: EmbedSpec,
  ids: Uint32Array,
  table: Float32Array,
  wpe?: Float32Array,
  pos?: Uint32Array,
): Float32Array {
  const { batch, seq, vocab, dModel: D } = spec;
  const T = batch * seq;
  const scale = spec.scale ?? 1;
  const lp = spec.learnedPositions;
  const at = lp ? tokenPositions(lp, batch, seq, pos!) : null;
  const out = new Float32Array(T * D);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < D; c++) {
      let v = ids[t] < vocab ? scale * table[ids[t] * D + c] : 0;
      if (at) v += wpe![at[t] * D + c];
      out[t * D + c] = v;
    }
  }
  return out;
}
