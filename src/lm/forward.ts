/**
 * The language model's forward pass on the GPU, every operation in WGSL: the weights are uploaded
 * once ({@link GpuLm}); a forward of a fixed shape ({@link LmForward}) builds its dispatch list
 * once and reruns it on new token ids, writing logits and the activations of the hooks asked for
 * into GPU buffers (the SAE trains from those on the same device).
 *
 * Per block, with x the residual stream [T, d] (T = batch·seq):
 *
 *   h = attnNorm(x)                                  norm
 *   qkv = h·[Wq; Wk; Wv]ᵀ (+ b)                      one GEMM, [T, (nH + 2·nKv)·hd]
 *   RoPE on q and k in place (llama, gemma2)         rope
 *   k, v → KV cache at their positions               kv write
 *   att = attention(q, cache)                        attention (causal, GQA, window, soft-cap)
 *   a = att·Woᵀ (+ bo); gemma2: a = postAttnNorm(a)  GEMM (+ norm)       → hook_attn_out
 *   x += a                                           add (gemma2 unhooked: norm accumulating)
 *   h = mlpNorm(x)
 *   g = h·[Wgate; Wup]ᵀ; u = act(gate)·up            GEMM + glu (llama, gemma2)
 *   or u = gelu_new(h·Wupᵀ + bu)                     GEMM + gelu (gpt2)
 *   m = u·Wdownᵀ (+ bd); gemma2: postMlpNorm(m)      GEMM (+ norm)       → hook_mlp_out
 *   x += m                                                               → hook_resid_post
 *
 * A branch that is neither hooked, spliced nor post-normed is added to x by its GEMM's epilogue
 * (x += att·Woᵀ + bo in one pass over x instead of a store, a load and an add), and GPT-2's gelu_new
 * is its MLP-in GEMM's epilogue: the same arithmetic, up to three fewer element-wise kernels per
 * block (`fuse: false` keeps them, for A/B timings).
 *
 * then logits = finalNorm(x)·Unembedᵀ (all positions, or each sequence's last), soft-capped for
 * gemma2. The same code runs a prefill (positions pos[b] + s, s < seq) and an incremental decoding
 * step (seq 1, one new token per sequence at pos[b], attending to the keys cached before it).
 *
 * A splice ({@link Splice}) replaces one hook's activations in place where the pass reaches them,
 * as TransformerLens' `run_with_hooks` does with a hook that returns a new tensor: everything
 * after the hook reads the replacement (SAEBench's KL and CE with the SAE spliced in).
 */
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, encodeDispatches } from "../gpu/dispatch.ts";
import { addDispatches, geluDispatches, gluDispatches } from "../kernels/act.ts";
import {
  attentionDispatches,
  type AttentionSpec,
  kvWriteDispatches,
} from "../kernels/attention.ts";
import { embedDispatches } from "../kernels/embed.ts";
import { type Epilogue, gemmDispatches, type GemmLayout } from "../kernels/gemm/mod.ts";
import { normDispatches } from "../kernels/norm.ts";
import { ropeDispatches } from "../kernels/rope.ts";
import { copyRowsDispatches } from "../kernels/rows.ts";
import { softcapDispatches } from "../kernels/logits.ts";
import { UserError } from "../errors.ts";
import type { LmConfig } from "./config.ts";
import { type HookPoint, parseHook, stopPoint } from "./hooks.ts";
import type { LmWeights, NormWeights } from "./weights.ts";

/** A norm's weights on the device. */
interface GpuNorm {
  w: GPUBuffer;
  b?: GPUBuffer;
}

/** One block's weights on the device. */
interface GpuLayer {
  attnNorm: GpuNorm;
  mlpNorm: GpuNorm;
  postAttnNorm?: GpuNorm;
  postMlpNorm?: GpuNorm;
  // wqkv: [(nH + 2·nKv)·hd, d], rows q then k then v; bqkv the same order
  wqkv: GPUBuffer;
  bqkv?: GPUBuffer;
  // wo: [d, nH·hd]
  wo: GPUBuffer;
  bo?: GPUBuffer;
  // wIn: [2·dMlp, d] gate rows then up rows (gated), or [dMlp, d] up (gpt2)
  wIn: GPUBuffer;
  bIn?: GPUBuffer;
  // wDown: [d, dMlp]
  wDown: GPUBuffer;
  bDown?: GPUBuffer;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A model's weights uploaded to a device, shared by every forward built on them. */
export class GpuLm {
  readonly gpu: Gpu;
  readonly config: LmConfig;
  // embed, unembed: [vocab, d] (the same buffer when tied); posEmbed: [maxSeq, d]
  readonly embed: GPUBuffer;
  readonly unembed: GPUBuffer;
  readonly posEmbed?: GPUBuffer;
  // invFreq: [headDim/2] f32 RoPE angles per position
  readonly invFreq?: GPUBuffer;
  readonly layers: GpuLayer[];
  readonly finalNorm: GpuNorm;
  private readonly owned: GPUBuffer[] = [];

  private constructor(gpu: Gpu, config: LmConfig, w: LmWeights) {
    this.gpu = gpu;
    this.config = config;
    const up = (label: string, data: Float32Array) => {
      if (data.byteLength > gpu.maxBufferSize) {
        throw new UserError(
          `${config.source}: weight '${label}' needs ${data.byteLength} B, over this adapter's ` +
            `buffer-size limit of ${gpu.maxBufferSize} B: this model is too large for this device`,
        );
      }
      const b = gpu.upload(label, data);
      this.owned.push(b);
      return b;
    };
    const norm = (label: string, n: NormWeights): GpuNorm => ({
      w: up(`${label}.w`, n.w),
      b: n.b ? up(`${label}.b`, n.b) : undefined,
    });
    this.embed = up("embed", w.embed);
    this.unembed = w.unembed === w.embed ? this.embed : up("unembed", w.unembed);
    this.posEmbed = w.posEmbed ? up("posEmbed", w.posEmbed) : undefined;
    this.invFreq = config.rope ? up("invFreq", Float32Array.from(config.rope.invFreq)) : undefined;
    this.layers = w.layers.map((L, l) => {
      const biases = [L.bq, L.bk, L.bv];
      const gate = L.wGate ? [L.wGate] : [];
      const inBias = L.wGate ? [L.bGate, L.bUp] : [L.bUp];
      return {
        attnNorm: norm(`l${l}.attnNorm`, L.attnNorm),
        mlpNorm: norm(`l${l}.mlpNorm`, L.mlpNorm),
        postAttnNorm: L.postAttnNorm ? norm(`l${l}.postAttnNorm`, L.postAttnNorm) : undefined,
        postMlpNorm: L.postMlpNorm ? norm(`l${l}.postMlpNorm`, L.postMlpNorm) : undefined,
        wqkv: up(`l${l}.wqkv`, concat([L.wq, L.wk, L.wv])),
        bqkv: biases.every((b) => b)
          ? up(`l${l}.bqkv`, concat(biases as Float32Array[]))
          : undefined,
        wo: up(`l${l}.wo`, L.wo),
        bo: L.bo ? up(`l${l}.bo`, L.bo) : undefined,
        wIn: up(`l${l}.wIn`, concat([...gate, L.wUp])),
        bIn: inBias.every((b) => b) ? up(`l${l}.bIn`, concat(inBias as Float32Array[])) : undefined,
        wDown: up(`l${l}.wDown`, L.wDown),
        bDown: L.bDown ? up(`l${l}.bDown`, L.bDown) : undefined,
      };
    });
    this.finalNorm = norm("finalNorm", w.finalNorm);
  }

  /** Uploads a model's weights (f32). */
  static upload(gpu: Gpu, model: { config: LmConfig; weights: LmWeights }): GpuLm {
    return new GpuLm(gpu, model.config, model.weights);
  }

  /** Frees the weights. */
  destroy(): void {
    for (const b of this.owned) this.gpu.destroyBuffer(b);
    this.owned.length = 0;
  }
}

/**
 * Dispatches that replace a hook's activations in place, inserted where the pass reaches the
 * hook: `build(act)` gets the buffer [batch·seq, d] holding them and returns dispatches that leave
 * the replacement there. The hook's own buffer (when also asked for in `hooks`) keeps the
 * activations from before the splice.
 */
export interface Splice {
  /** The hook point, TransformerLens-named (`blocks.2.hook_resid_pre`). */
  hook: string;
  /** Dispatches reading `act` [batch·seq, d] f32 and leaving the replacement in it. */
  build: (act: GPUBuffer) => Promise<Dispatch[]>;
}

/** Where a {@link Splice} sits in {@link LmForward.dispatches}. */
export interface SplicePoint {
  /** The spliced hook. */
  hook: string;
  /** The buffer the splice replaces in place, [batch·seq, d] f32. */
  act: GPUBuffer;
  /** Index of the splice's first dispatch: they are `dispatches.slice(start, end)`. */
  start: number;
  /** Index after its last dispatch. */
  end: number;
}

/** Shape and outputs of one {@link LmForward}. */
export interface ForwardSpec {
  /** Sequences per call. */
  batch: number;
  /** Tokens per sequence per call: the context in a prefill, 1 in a decoding step. */
  seq: number;
  /** KV-cache rows per sequence: the longest position + 1 (default `seq`: a prefill from 0). */
  cacheLen?: number;
  /** Hooks whose activations to keep, each in its own buffer [batch·seq, d]. */
  hooks?: string[];
  /** Stop after the last hooked layer (no logits). */
  stopAtHook?: boolean;
  /**
   * Logits to compute: "all" [batch·seq, vocab], "last" [batch, vocab] (each sequence's last
   * position), or "none" (default "all" unless stopping at a hook).
   */
  logits?: "all" | "last" | "none";
  /** KV caches shared with another forward of the same batch and cache length (decode after prefill). */
  caches?: KvCaches;
  /** Replaces one hook's activations in place inside the pass. */
  splice?: Splice;
  /**
   * Whether GEMM epilogues add unobserved branches to the residual stream and apply GPT-2's
   * gelu_new (default true); false runs each in its own kernel, for A/B timings and tests.
   */
  fuse?: boolean;
}

/** Per layer, keys and values [batch, cacheLen, nKv·hd] f32. */
export interface KvCaches {
  k: GPUBuffer[];
  v: GPUBuffer[];
  batch: number;
  cacheLen: number;
}

/**
 * A forward pass of a fixed shape on a {@link GpuLm}: built once, run many times. Inputs are the
 * `tokens` (u32 [batch·seq]) and `pos` (u32 [batch], the position of each sequence's first token)
 * buffers; outputs `logits` and `hooks`.
 */
export class LmForward {
  readonly lm: GpuLm;
  readonly spec: Required<Omit<ForwardSpec, "caches" | "splice" | "fuse">>;
  /** u32 [batch·seq] token ids. */
  readonly tokens: GPUBuffer;
  /** u32 [batch] position of each sequence's first token (zeros after build). */
  readonly pos: GPUBuffer;
  /** f32 [batch·seq, vocab] ("all") or [batch, vocab] ("last"), or null. */
  readonly logits: GPUBuffer | null;
  /** f32 [batch·seq, d] per hook name asked for. */
  readonly hooks: Record<string, GPUBuffer>;
  readonly caches: KvCaches;
  /** The whole pass, in order. */
  readonly dispatches: Dispatch[] = [];
  /** Where the splice's dispatches are (null without a splice, or when the pass stops before it). */
  splicePoint: SplicePoint | null = null;
  private readonly owned: GPUBuffer[] = [];

  private constructor(lm: GpuLm, spec: ForwardSpec) {
    const cfg = lm.config;
    const stopping = !!spec.stopAtHook && (spec.hooks?.length ?? 0) > 0;
    this.lm = lm;
    this.spec = {
      batch: spec.batch,
      seq: spec.seq,
      cacheLen: spec.cacheLen ?? spec.seq,
      hooks: spec.hooks ?? [],
      stopAtHook: stopping,
      logits: spec.logits ?? (stopping ? "none" : "all"),
    };
    const { batch, seq, cacheLen } = this.spec;
    if (cacheLen > cfg.maxSeq) {
      throw new UserError(
        `a context of ${cacheLen} tokens is longer than the model's ${cfg.maxSeq} ` +
          `(${cfg.source}): pass --context ${cfg.maxSeq} or less`,
      );
    }
    if (seq > cacheLen) {
      throw new Error(`forward: ${seq} tokens per call but a cache of ${cacheLen}`);
    }
    const T = batch * seq;
    const gpu = lm.gpu;
    this.tokens = this.buffer("tokens", T * 4);
    this.pos = this.buffer("pos", batch * 4);
    gpu.write(this.pos, new Uint32Array(batch));
    const V = cfg.vocabSize;
    const rows = this.spec.logits === "last" ? batch : T;
    this.logits = this.spec.logits === "none" ? null : this.buffer("logits", rows * V * 4);
    this.hooks = {};
    for (const h of this.spec.hooks) this.hooks[h] = this.buffer(h, T * cfg.dModel * 4);
    if (spec.caches && (spec.caches.batch !== batch || spec.caches.cacheLen !== cacheLen)) {
      throw new Error("forward: shared KV caches of another shape");
    }
    // Filled per layer as the plan reaches it: a pass that stops early has no caches past it.
    this.caches = spec.caches ?? { k: [], v: [], batch, cacheLen };
  }

  private buffer(label: string, bytes: number): GPUBuffer {
    const b = this.lm.gpu.buffer(label, bytes);
    this.owned.push(b);
    return b;
  }

  /** Builds a forward of `spec` on `lm` (pipelines and bind groups created here, once). */
  static async build(lm: GpuLm, spec: ForwardSpec): Promise<LmForward> {
    const f = new LmForward(lm, spec);
    await f.plan(spec);
    return f;
  }

  private async plan(spec0: ForwardSpec): Promise<void> {
    const { gpu, config: cfg } = this.lm;
    const lm = this.lm;
    const { batch, seq, cacheLen } = this.spec;
    const T = batch * seq, d = cfg.dModel, f = cfg.dMlp, hd = cfg.headDim;
    const qd = cfg.nHeads * hd, kvd = cfg.nKvHeads * hd, qkvd = qd + 2 * kvd;
    const points: HookPoint[] = this.spec.hooks.map((h) => parseHook(h, cfg));
    const hooked = new Set(this.spec.hooks);
    const splice = spec0.splice;
    const fuse = spec0.fuse ?? true;
    if (splice) parseHook(splice.hook, cfg);
    const stop = this.spec.stopAtHook ? stopPoint(points) : null;
    const out = this.dispatches;
    const push = (ds: Dispatch[]) => out.push(...ds);
    const x = this.buffer("resid", T * d * 4);
    const h = this.buffer("normed", T * d * 4);
    const branch = this.buffer("branch", T * d * 4);
    const linear = async (
      label: string,
      a: GPUBuffer,
      w: GPUBuffer,
      bias: GPUBuffer | undefined,
      c: GPUBuffer,
      M: number,
      N: number,
      K: number,
      layout: Partial<GemmLayout> = {},
      then: "store" | "add" | "gelu" = "store",
    ) => {
      // "add": C += the product (+ b), a residual branch added in the GEMM's epilogue; "gelu":
      // C = gelu_new(product + b) (GPT-2's MLP; only with a bias).
      const epilogue: Epilogue = then === "add"
        ? (bias ? "bias_accumulate" : "accumulate")
        : then === "gelu"
        ? "bias_gelu"
        : (bias ? "bias" : "none");
      push(
        await gemmDispatches(
          gpu,
          { label, M, N, K, transA: false, transB: true, epilogue },
          { a, b: w, c, e: bias },
          { layout },
        ),
      );
    };
    const norm = async (n: GpuNorm, src: GPUBuffer, dst: GPUBuffer, accumulate = false) =>
      push(
        await normDispatches(gpu, {
          rows: T,
          dim: d,
          kind: cfg.norm,
          eps: cfg.normEps,
          accumulate,
        }, { x: src, weight: n.w, bias: n.b, out: dst }),
      );
    const keep = async (name: string, src: GPUBuffer) => {
      if (hooked.has(name)) {
        push(
          await copyRowsDispatches(gpu, { batch, seq, dim: d }, { x: src, out: this.hooks[name] }),
        );
      }
    };
    // The hook's activations in `act` (after `keep` copied them): the splice replaces them there.
    const spliceAt = async (name: string, act: GPUBuffer) => {
      if (splice?.hook !== name) return;
      const start = out.length;
      push(await splice.build(act));
      this.splicePoint = { hook: name, act, start, end: out.length };
    };
    // Adds a branch output (post-normed here when `postNorm`) into x; the branch lands in its
    // hook buffer when hooked; `hookOnly` stops once the hook is written.
    // A spliced branch is post-normed into h (free between the norms that fill it), kept, and
    // replaced there before the add.
    const addBranch = async (
      name: string,
      raw: GPUBuffer,
      postNorm: GpuNorm | undefined,
      hookOnly = false,
    ) => {
      if (splice?.hook === name) {
        let y = raw;
        if (postNorm) {
          await norm(postNorm, raw, h);
          y = h;
        }
        await keep(name, y);
        await spliceAt(name, y);
        if (!hookOnly) push(await addDispatches(gpu, { n: T * d }, { x, y }));
        return;
      }
      const hook = hooked.has(name) ? this.hooks[name] : null;
      if (postNorm && !hook) return await norm(postNorm, raw, x, true);
      let y = raw;
      if (postNorm) {
        await norm(postNorm, raw, hook!);
        y = hook!;
      }
      if (!hookOnly) push(await addDispatches(gpu, { n: T * d }, { x, y }));
    };

    push(
      await embedDispatches(gpu, {
        batch,
        seq,
        vocab: cfg.vocabSize,
        dModel: d,
        scale: cfg.embedScale,
        learnedPositions: lm.posEmbed ? "offset" : undefined,
      }, { ids: this.tokens, table: lm.embed, out: x, wpe: lm.posEmbed, pos: this.pos }),
    );
    const qkv = this.buffer("qkv", T * qkvd * 4);
    const att = this.buffer("attention", T * qd * 4);
    const mlpIn = this.buffer("mlp in", T * f * (cfg.gated ? 2 : 1) * 4);
    const mlpAct = cfg.gated ? this.buffer("mlp act", T * f * 4) : mlpIn;
    const fused = { ldQ: qkvd, offQ: 0, ldK: qkvd, offK: qd, ldV: qkvd, offV: qd + kvd };
    for (let l = 0; l < cfg.nLayers; l++) {
      await keep(`blocks.${l}.hook_resid_pre`, x);
      await spliceAt(`blocks.${l}.hook_resid_pre`, x);
      if (stop && l > stop.layer) return;
      const L = lm.layers[l];
      await norm(L.attnNorm, x, h);
      await linear(`l${l} qkv`, h, L.wqkv, L.bqkv, qkv, T, qkvd, d);
      if (cfg.rope) {
        push(
          await ropeDispatches(gpu, {
            batch,
            seq,
            nHeads: cfg.nHeads,
            nKvHeads: cfg.nKvHeads,
            headDim: hd,
            style: cfg.rope.style,
            positions: "offset",
            layout: fused,
          }, { q: qkv, k: qkv, invFreq: lm.invFreq!, pos: this.pos }),
        );
      }
      const aspec: AttentionSpec = {
        batch,
        seq,
        maxSeq: cacheLen,
        nHeads: cfg.nHeads,
        nKvHeads: cfg.nKvHeads,
        headDim: hd,
        scale: cfg.attnScale[l],
        softcap: cfg.attnSoftcap ?? 0,
        window: cfg.window[l] ?? 0,
        positions: "offset",
        layout: fused,
      };
      if (!this.caches.k[l]) {
        if (spec0.caches) throw new Error(`forward: the shared KV caches stop before layer ${l}`);
        const kvBytes = batch * cacheLen * kvd * 4;
        this.caches.k[l] = this.buffer(`k cache ${l}`, kvBytes);
        this.caches.v[l] = this.buffer(`v cache ${l}`, kvBytes);
      }
      const kCache = this.caches.k[l], vCache = this.caches.v[l];
      push(await kvWriteDispatches(gpu, aspec, { k: qkv, v: qkv, kCache, vCache, pos: this.pos }));
      push(
        await attentionDispatches(gpu, aspec, { q: qkv, kCache, vCache, pos: this.pos, out: att }),
      );
      const attnName = `blocks.${l}.hook_attn_out`;
      // A branch nobody looks at (no hook, no splice, no post-norm) is added to x by its GEMM.
      const direct = (name: string, postNorm?: GpuNorm) =>
        fuse && !postNorm && !hooked.has(name) && splice?.hook !== name;
      const attnDst = hooked.has(attnName) && !L.postAttnNorm && splice?.hook !== attnName
        ? this.hooks[attnName]
        : branch;
      if (direct(attnName, L.postAttnNorm)) {
        await linear(`l${l} o`, att, L.wo, L.bo, x, T, d, qd, {}, "add");
      } else {
        await linear(`l${l} o`, att, L.wo, L.bo, attnDst, T, d, qd);
        await addBranch(attnName, attnDst, L.postAttnNorm);
      }
      if (stop && stop.layer === l && stop.attnOnly) return;
      await norm(L.mlpNorm, x, h);
      const geluInGemm = fuse && !cfg.gated && !!L.bIn;
      const mlpInWidth = cfg.gated ? 2 * f : f;
      await linear(
        `l${l} mlp in`,
        h,
        L.wIn,
        L.bIn,
        mlpIn,
        T,
        mlpInWidth,
        d,
        {},
        geluInGemm ? "gelu" : "store",
      );
      if (cfg.gated) {
        push(
          await gluDispatches(gpu, {
            rows: T,
            width: f,
            kind: cfg.act === "silu" ? "swiglu" : "geglu",
            layout: { ldGate: 2 * f, offGate: 0, ldUp: 2 * f, offUp: f },
          }, { gate: mlpIn, up: mlpIn, out: mlpAct }),
        );
      } else if (!geluInGemm) push(await geluDispatches(gpu, { n: T * f }, { x: mlpIn }));
      const mlpName = `blocks.${l}.hook_mlp_out`;
      const mlpDst = hooked.has(mlpName) && !L.postMlpNorm && splice?.hook !== mlpName
        ? this.hooks[mlpName]
        : branch;
      // Stopping at this block's MLP output, the residual stream after it is not needed.
      const residAfter = hooked.has(`blocks.${l}.hook_resid_post`) ||
        hooked.has(`blocks.${l + 1}.hook_resid_pre`);
      if (direct(mlpName, L.postMlpNorm)) {
        await linear(`l${l} mlp out`, mlpAct, L.wDown, L.bDown, x, T, d, f, {}, "add");
      } else {
        await linear(`l${l} mlp out`, mlpAct, L.wDown, L.bDown, mlpDst, T, d, f);
        await addBranch(mlpName, mlpDst, L.postMlpNorm, !!stop && stop.layer === l && !residAfter);
      }
      if (stop && stop.layer === l && !residAfter) return;
      await keep(`blocks.${l}.hook_resid_post`, x);
      await spliceAt(`blocks.${l}.hook_resid_post`, x);
    }
    if (stop || !this.logits) return;
    await norm(lm.finalNorm, x, h);
    const last = this.spec.logits === "last";
    // "last": row b of A is position seq − 1 of sequence b, seq·d apart.
    const layout: Partial<GemmLayout> = last ? { lda: seq * d, offA: (seq - 1) * d } : {};
    const rows = last ? batch : T;
    await linear("unembed", h, lm.unembed, undefined, this.logits, rows, cfg.vocabSize, d, layout);
    if (cfg.finalSoftcap !== null) {
      push(
        await softcapDispatches(gpu, { rows, vocab: cfg.vocabSize, cap: cfg.finalSoftcap }, {
          logits: this.logits,
        }),
      );
    }
  }

  /**
   * The pass with the splice's dispatches replaced by `replacement` (`[]`: the pass without it),
   * on the same buffers: the clean, spliced and zero-ablated passes of one forward.
   */
  passWith(replacement: Dispatch[]): Dispatch[] {
    const p = this.splicePoint;
    if (!p) throw new Error("forward: no splice in this pass");
    return [
      ...this.dispatches.slice(0, p.start),
      ...replacement,
      ...this.dispatches.slice(p.end),
    ];
  }

  /**
   * Writes `tokens` (and `pos`, when given) and submits the pass, followed in the same submission
   * by `then` (kernels reading the pass's outputs).
   */
  run(tokens?: ArrayLike<number>, pos?: ArrayLike<number>, then: readonly Dispatch[] = []): void {
    const gpu = this.lm.gpu;
    if (tokens) {
      const ids = Uint32Array.from(tokens);
      const T = this.spec.batch * this.spec.seq, V = this.lm.config.vocabSize;
      if (ids.length !== T) throw new Error(`forward: ${ids.length} token ids for ${T} tokens`);
      // The embedding kernel gives ids past the vocabulary zero rows; refuse them here.
      const bad = ids.findIndex((t) => t >= V);
      if (bad >= 0) throw new Error(`forward: token id ${ids[bad]} at ${bad} is not below ${V}`);
      gpu.write(this.tokens, ids);
    }
    if (pos) gpu.write(this.pos, Uint32Array.from(pos));
    const enc = gpu.device.createCommandEncoder();
    encodeDispatches(enc, then.length ? [...this.dispatches, ...then] : this.dispatches);
    gpu.submit([enc.finish()]);
  }

  /** Frees this forward's buffers (and its KV caches unless they were shared in). */
  destroy(): void {
    for (const b of this.owned) this.lm.gpu.destroyBuffer(b);
    this.owned.length = 0;
  }
}
