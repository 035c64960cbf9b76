/**
 * Rotary position embedding (wgsl/rope.wgsl), in place on q and k, rotate-half (Hugging Face) or
 * interleaved pairs (llama2.c), with the inverse frequencies in a buffer: {@link ropeInvFreq}
 * gives the plain ones for a `rope_theta`; a model with scaled RoPE (Llama 3's `rope_scaling`)
 * uploads its own.
 */
import ropeSrc from "../../wgsl/rope.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { WG, withCommon } from "./common.ts";
import {
  positionConstants,
  type PositionMode,
  tokenPositions,
  withPositions,
} from "./positions.ts";

/**
 * - `"half"`: pairs (i, i + rot/2) of each head (Hugging Face's rotate_half).
 * - `"interleaved"`: pairs (2i, 2i + 1) (llama2.c, Meta's original checkpoints).
 */
export type RopeStyle = "half" | "interleaved";

/** Shapes and options of RoPE on q and k. */
export interface RopeSpec {
  batch: number;
  /** Tokens per sequence (T = batch·seq). */
  seq: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** Rotated dimensions per head (even, default headDim; partial rotary leaves the rest). */
  rotaryDim?: number;
  style: RopeStyle;
  positions: PositionMode;
  /**
   * Where q and k sit in their rows (elements; default q [T, nHeads·hd] and k [T, nKv·hd]
   * tightly packed): a fused QKV buffer [T, (nHeads + 2·nKv)·hd] is bound as both q and k with
   * ldQ = ldK = its width and offK = nHeads·hd.
   */
  layout?: { ldQ?: number; offQ?: number; ldK?: number; offK?: number };
}

/** Buffers of RoPE. */
export interface RopeBuffers {
  /** Queries [T, ldQ] f32, rotated in place. */
  q: GPUBuffer;
  /** Keys [T, ldK] f32, rotated in place (may be q's buffer, see {@link RopeSpec.layout}). */
  k: GPUBuffer;
  /** [rotaryDim/2] f32 inverse frequencies ({@link ropeInvFreq}). */
  invFreq: GPUBuffer;
  /** u32 positions: [batch] or [T] (see {@link PositionMode}). */
  pos: GPUBuffer;
}

/**
 * Hugging Face's inverse frequencies 1 / θ^(2i/rot), i < rot/2, rounded to f32 as
 * `1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))` gives them (llama2.c's are the same).
 */
export function ropeInvFreq(theta: number, rotaryDim: number): Float32Array {
  const out = new Float32Array(rotaryDim / 2);
  for (let i = 0; i < rotaryDim / 2; i++) {
    out[i] = 1 / Math.fround(theta ** Math.fround((2 * i) / rotaryDim));
  }
  return out;
}

/** Two dispatches: RoPE on q, then on k. */
export async function ropeDispatches(
  gpu: Gpu,
  spec: RopeSpec,
  bufs: RopeBuffers,
): Promise<Dispatch[]> {
  const { batch, seq, headDim: hd } = spec;
  const rot = spec.rotaryDim ?? hd;
  if (rot % 2 !== 0 || rot > hd || rot < 2) {
    throw new Error(`rope: rotary dim ${rot} must be even and in [2, head_dim ${hd}]`);
  }
  const T = batch * seq;
  const l = spec.layout ?? {};
  const parts = [
    { name: "q", buf: bufs.q, heads: spec.nHeads, ld: l.ldQ ?? spec.nHeads * hd, off: l.offQ ?? 0 },
    {
      name: "k",
      buf: bufs.k,
      heads: spec.nKvHeads,
      ld: l.ldK ?? spec.nKvHeads * hd,
      off: l.offK ?? 0,
    },
  ];
  const out: Dispatch[] = [];
  for (const p of parts) {
    const pairs = T * p.heads * rot / 2;
    out.push(
      await kernel(gpu, {
        label: `rope ${p.name}`,
        code: withCommon(withPositions(ropeSrc)),
        entry: "rope",
        constants: {
          T,
          HEADS: p.heads,
          HD: hd,
          ROT: rot,
          LD: p.ld,
          OFF: p.off,
          INTERLEAVED: spec.style === "interleaved" ? 1 : 0,
          ...positionConstants(spec.positions, seq),
        },
        buffers: [p.buf, bufs.invFreq, bufs.pos],
        groups: groupsFor(pairs, WG),
        cost: { flops: pairs * 6, bytes: pairs * 16 + T * 4 },
      }),
    );
  }
  return out;
}

/** Reference of {@link ropeDispatches} on tightly packed q and k (f64 cos/sin of the f32 angle). */
export function ropeReference(
  spec: RopeSpec,
  q: Float32Array,
  k: Float32Array,
  invFreq: Float32Array,
  pos: Uint32Array,
): { q: Float32Array; k: Float32Array } {
  const { batch, seq, headDim: hd } = spec;
  const rot = spec.rotaryDim ?? hd;
  const half = rot / 2;
  const at = tokenPositions(spec.positions, batch, seq, pos);
  const apply = (x: Float32Array, heads: number) => {
    const y = x.slice();
    for (let t = 0; t < batch * seq; t++) {
      for (let h = 0; h < heads; h++) {
        const base = (t * heads + h) * hd;
        for (let i = 0; i < half; i++) {
          const angle = Math.fround(at[t] * invFreq[i]);
          const c = Math.cos(angle), s = Math.sin(angle);
          const a = base + (spec.style === "interleaved" ? 2 * i : i);
          const b = base + (spec.style === "interleaved" ? 2 * i + 1 : i + half);
          y[a] = x[a] * c - x[b] * s;
          y[b] = x[b] * c + x[a] * s;
        }
      }
    }
    return y;
  };
  return { q: apply(q, spec.nHeads), k: apply(k, spec.nKvHeads) };
}
