/**
 * Causal self-attention over a KV cache (wgsl/attention.wgsl): grouped-query heads, a scale
 * parameter, optional logit soft-capping and sliding window, one kernel for a prefill (queries at
 * positions 0..n−1) and for incremental decoding (one query per sequence at position p, attending
 * keys 0..p); and the kernel that writes new keys and values into the cache. The attention kernel
 * is tiled with an online softmax (flash-attention style): a workgroup holds one block of scores
 * at a time, never a whole row.
 *
 * Typical order in a layer: q, k, v projections (GEMM) → RoPE on q and k → {@link kvWriteDispatches}
 * → {@link attentionDispatches} → output projection (GEMM).
 */
import attentionSrc from "../../wgsl/attention.wgsl" with { type: "text" };
import { UserError } from "../errors.ts";
import type { Gpu } from "../gpu/device.ts";
import { cdiv, type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { WG, withCommon } from "./common.ts";
import { adapterClass } from "../gpu/adapter.ts";
import {
  positionConstants,
  type PositionMode,
  tokenPositions,
  withPositions,
} from "./positions.ts";

/** Output elements one invocation accumulates at most (E_MAX in wgsl/attention.wgsl). */
const E_MAX = 16;

/** Shapes and options of attention and of the KV-cache write. */
export interface AttentionSpec {
  /** Sequences. */
  batch: number;
  /** Query tokens per sequence in this dispatch (T = batch·seq): the context in a prefill, 1 in a decoding step. */
  seq: number;
  /** Rows of the KV cache per sequence (the longest context). */
  maxSeq: number;
  nHeads: number;
  /** KV heads; divides nHeads (query head h reads KV head h / (nHeads / nKvHeads)). */
  nKvHeads: number;
  headDim: number;
  /** Factor on q·k: 1/√head_dim, or Gemma-2's query_pre_attn_scalar^−0.5. */
  scale: number;
  /** Attention-logit soft-capping cap·tanh(s/cap) (Gemma-2: 50); 0 or absent: none. */
  softcap?: number;
  /** Sliding window W: key j visible from position i iff i − W < j ≤ i; 0 or absent: none. */
  window?: number;
  positions: PositionMode;
  /**
   * Where q (attention) and the new k and v (KV write) sit in their rows, in elements: default
   * tightly packed q [T, nHeads·hd], k and v [T, nKv·hd]; a fused QKV buffer
   * [T, (nHeads + 2·nKv)·hd] gives ld* = its width, offK = nHeads·hd, offV = (nHeads + nKv)·hd.
   */
  layout?: {
    ldQ?: number;
    offQ?: number;
    ldK?: number;
    offK?: number;
    ldV?: number;
    offV?: number;
  };
  /** Tile: query rows × keys per block (default from headDim, see {@link attentionTile}). */
  tile?: { rows: number; keys: number };
  /**
   * One invocation per query row without workgroup memory (entry point attend_lane; default on
   * CPU adapters where head_dim and q's layout are multiples of 4, see {@link laneOk}) instead of
   * the tiled kernel.
   */
  lane?: boolean;
}

/** Buffers of attention. */
export interface AttentionBuffers {
  /** Queries [T, ldQ] f32, RoPE applied. */
  q: GPUBuffer;
  /** Keys [batch, maxSeq, nKv·hd] f32: row p of sequence b is the key at position p. */
  kCache: GPUBuffer;
  /** Values [batch, maxSeq, nKv·hd] f32. */
  vCache: GPUBuffer;
  /** u32 positions of the queries: [batch] or [T] (see {@link PositionMode}); each < maxSeq. */
  pos: GPUBuffer;
  /** [T, nHeads·hd] f32, head h at columns h·hd... */
  out: GPUBuffer;
}

/** Buffers of the KV-cache write. */
export interface KvWriteBuffers {
  /** New keys [T, ldK] f32, RoPE applied. */
  k: GPUBuffer;
  /** New values [T, ldV] f32. */
  v: GPUBuffer;
  /** [batch, maxSeq, nKv·hd] f32: row pos(t) of sequence b ← token t = b·seq + s. */
  kCache: GPUBuffer;
  vCache: GPUBuffer;
  /** u32 positions: [batch] or [T]; tokens at positions ≥ maxSeq are not written. */
  pos: GPUBuffer;
}

/**
 * Default tile: R query rows and BK keys with R·hd ≤ 1024 and BK·hd ≤ 2048, so the workgroup
 * holds under 15 KiB (q tile, one block of keys or values padded by one float a row, one block of
 * scores): within WebGPU's guaranteed 16 KiB of workgroup memory.
 */
function attentionTile(headDim: number): { rows: number; keys: number } {
  return {
    rows: Math.max(1, Math.min(16, Math.floor(1024 / headDim))),
    keys: Math.max(1, Math.min(32, Math.floor(2048 / headDim))),
  };
}

/** Whether attend_lane can run this shape: head_dim ≤ 256 and q's vec4 views line up. */
export function laneOk(spec: AttentionSpec): boolean {
  const l = spec.layout ?? {};
  return [spec.headDim, l.ldQ ?? 0, l.offQ ?? 0].every((v) => v % 4 === 0) &&
    spec.headDim <= 256;
}

function check(gpu: Gpu, spec: AttentionSpec): void {
  const { nHeads, nKvHeads, headDim } = spec;
  if (spec.seq > spec.maxSeq) {
    throw new Error(`attention: ${spec.seq} tokens per sequence exceed the cache's ${spec.maxSeq}`);
  }
  if (nHeads % nKvHeads !== 0) {
    throw new Error(`attention: ${nKvHeads} KV heads do not divide ${nHeads} query heads`);
  }
  const bytes = spec.batch * spec.maxSeq * nKvHeads * headDim * 4;
  if (bytes > gpu.maxBinding) {
    throw new UserError(
      `the KV cache of ${spec.batch} sequences × ${spec.maxSeq} positions needs ${bytes} B per ` +
        `layer, over this adapter's storage-binding limit of ${gpu.maxBinding} B: lower the ` +
        `batch or the context`,
    );
  }
}

function constants(spec: AttentionSpec): Record<string, number> {
  return {
    B: spec.batch,
    MAX_SEQ: spec.maxSeq,
    NH: spec.nHeads,
    NKV: spec.nKvHeads,
    HD: spec.headDim,
    ...positionConstants(spec.positions, spec.seq),
  };
}

/** Writes the new keys and values of the T tokens into the caches at their positions. */
export async function kvWriteDispatches(
  gpu: Gpu,
  spec: AttentionSpec,
  bufs: KvWriteBuffers,
): Promise<Dispatch[]> {
  check(gpu, spec);
  const kvw = spec.nKvHeads * spec.headDim, l = spec.layout ?? {};
  const n = spec.batch * spec.seq * kvw;
  return [
    await kernel(gpu, {
      label: "kv write",
      code: withCommon(withPositions(attentionSrc)),
      entry: "kv_write",
      constants: {
        ...constants(spec),
        LDK: l.ldK ?? kvw,
        OFFK: l.offK ?? 0,
        LDV: l.ldV ?? kvw,
        OFFV: l.offV ?? 0,
      },
      buffers: [null, bufs.kCache, bufs.vCache, bufs.pos, null, bufs.k, bufs.v],
      groups: groupsFor(n, WG),
      cost: { flops: 0, bytes: n * 16 + spec.batch * spec.seq * 4 },
    }),
  ];
}

/**
 * Attention of the T query tokens, one dispatch. Its cost assumes the queries are the last `seq`
 * positions of a full cache of maxSeq (exact for a prefill into a cache of its own length, an
 * upper bound otherwise).
 */
export async function attentionDispatches(
  gpu: Gpu,
  spec: AttentionSpec,
  bufs: AttentionBuffers,
): Promise<Dispatch[]> {
  check(gpu, spec);
  const { batch, seq, maxSeq, nHeads, nKvHeads, headDim: hd } = spec;
  const lane = spec.lane ?? (adapterClass(gpu) === "cpu" && laneOk(spec));
  if (lane && !laneOk(spec)) {
    throw new Error(`attention: the lane kernel needs head_dim ≤ 256 and q in vec4s`);
  }
  const tile = spec.tile ?? attentionTile(hd);
  if (!lane && tile.rows * hd > WG * E_MAX) {
    throw new Error(
      `attention: a tile of ${tile.rows} rows × head_dim ${hd} exceeds ${WG * E_MAX}`,
    );
  }
  const l = spec.layout ?? {};
  const G = nHeads / nKvHeads;
  let pairs = 0; // (query, visible key) pairs of one head of one sequence
  for (let s = 0; s < seq; s++) {
    const p = Math.max(maxSeq - seq, 0) + s;
    pairs += spec.window ? Math.min(p + 1, spec.window) : p + 1;
  }
  const keys = Math.min(maxSeq, spec.window ? seq + spec.window - 1 : maxSeq);
  return [
    await kernel(gpu, {
      label: "attention",
      code: withCommon(withPositions(attentionSrc)),
      entry: lane ? "attend_lane" : "attend",
      constants: {
        ...constants(spec),
        SCALE: spec.scale,
        SOFTCAP: spec.softcap ?? 0,
        WINDOW: spec.window ?? 0,
        LDQ: l.ldQ ?? nHeads * hd,
        OFFQ: l.offQ ?? 0,
        R: tile.rows,
        BK: tile.keys,
      },
      buffers: [bufs.q, bufs.kCache, bufs.vCache, bufs.pos, bufs.out],
      groups: lane
        ? groupsFor(batch * nHeads * seq, WG)
        : [cdiv(seq * G, tile.rows), nKvHeads, batch],
      cost: {
        flops: batch * nHeads * pairs * (4 * hd + 6),
        bytes: batch * (seq * nHeads * hd * 8 + keys * nKvHeads * hd * 8 + seq * 4),
      },
    }),
  ];
}

/** Reference of {@link kvWriteDispatches} on tightly packed k and v: the caches after. */
export function kvWriteReference(
  spec: AttentionSpec,
  k: Float32Array,
  v: Float32Array,
  kCache: Float32Array,
  vCache: Float32Array,
  pos: Uint32Array,
): { kCache: Float32Array; vCache: Float32Array } {
  const { batch, seq, maxSeq } = spec;
  const kvw = spec.nKvHeads * spec.headDim;
  const at = tokenPositions(spec.positions, batch, seq, pos);
  const kc = kCache.slice(), vc = vCache.slice();
  for (let t = 0; t < batch * seq; t++) {
    if (at[t] >= maxSeq) continue;
    const dst = (Math.floor(t / seq) * maxSeq + at[t]) * kvw;
    kc.set(k.subarray(t * kvw, (t + 1) * kvw), dst);
    vc.set(v.subarray(t * kvw, (t + 1) * kvw), dst);
  }
  return { kCache: kc, vCache: vc };
}

/** Reference of {@link attentionDispatches} on tightly packed q (f64, two-pass softmax). */
export function attentionReference(
  spec: AttentionSpec,
  q: Float32Array,
  kCache: Float32Array,
  vCache: Float32Array,
  pos: Uint32Array,
): Float32Array {
  const { batch, seq, maxSeq, nHeads, nKvHeads, headDim: hd } = spec;
  const G = nHeads / nKvHeads, kvw = nKvHeads * hd;
  const at = tokenPositions(spec.positions, batch, seq, pos);
  const out = new Float32Array(batch * seq * nHeads * hd);
  for (let t = 0; t < batch * seq; t++) {
    const b = Math.floor(t / seq), p = at[t];
    const j0 = spec.window ? Math.max(0, p - spec.window + 1) : 0;
    for (let h = 0; h < nHeads; h++) {
      const qo = (t * nHeads + h) * hd, kvo = Math.floor(h / G) * hd;
      const s: number[] = [];
      for (let j = j0; j <= p; j++) {
        const ko = (b * maxSeq + j) * kvw + kvo;
        let dot = 0;
        for (let d = 0; d < hd; d++) dot += q[qo + d] * kCache[ko + d];
        dot *= spec.scale;
        if (spec.softcap) dot = spec.softcap * Math.tanh(dot / spec.softcap);
        s.push(dot);
      }
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const sum = e.reduce((a, x) => a + x, 0);
      for (let d = 0; d < hd; d++) {
        let o = 0;
        for (let j = j0; j <= p; j++) o += e[j - j0] * vCache[(b * maxSeq + j) * kvw + kvo + d];
        out[qo + d] = o / sum;
      }
    }
  }
  return out;
}
