/**
 * The plain-TypeScript reference forward pass of every family, written from Hugging Face's
 * modeling code (transformers 4.4x: models/llama/modeling_llama.py, models/gpt2/modeling_gpt2.py,
 * models/gemma2/modeling_gemma2.py) and llama2.c's run.c. f32 storage, f64 sums. It is what the
 * WGSL forward (src/lm/forward.ts) is tested against.
 *
 * Per block, with x the residual stream [T, d] (T = batch·seq, row-major):
 *
 *   h = attnNorm(x); q, k, v = h·Wqᵀ + bq, h·Wkᵀ + bk, h·Wvᵀ + bv; RoPE(q, k) (llama, gemma2)
 *   s = scale·q·k (per head; GQA: query head i reads kv head ⌊i / (nHeads/nKv)⌋)
 *   s = c·tanh(s/c) (gemma2 attn_logit_softcapping); causal (and sliding window) mask; softmax
 *   a = (softmax·v)·Woᵀ + bo; a = postAttnNorm(a) (gemma2)          → hook_attn_out
 *   x = x + a; h = mlpNorm(x)
 *   m = (act(h·Wgᵀ) ⊙ h·Wuᵀ)·Wdᵀ (llama SwiGLU, gemma2 GeGLU) or act(h·Wuᵀ + bu)·Wdᵀ + bd (gpt2)
 *   m = postMlpNorm(m) (gemma2)                                     → hook_mlp_out
 *   x = x + m                                                        → hook_resid_post
 *
 * then logits = finalNorm(x)·Unembedᵀ, soft-capped c·tanh(l/c) for gemma2.
 *
 * Sources of each formula:
 * - RMSNorm x·rsqrt(mean(x²) + eps)·w: LlamaRMSNorm. Gemma2RMSNorm: x̂·(1 + w). GPT-2: nn.LayerNorm
 *   (biased variance) with layer_norm_epsilon.
 * - RoPE rotate_half: apply_rotary_pos_emb in modeling_llama/gemma2 (pairs (i, i + hd/2), angle
 *   pos·θ^(−2i/hd)); interleaved pairs (2i, 2i + 1) with the same angles: llama2.c run.c.
 * - Attention scale 1/√hd (llama; gpt2 _attn with scale_attn_weights), query_pre_attn_scalar^−½
 *   (Gemma2Attention.scaling); gemma2 soft-cap before the mask (eager_attention_forward); sliding
 *   window on even layers, keys k with q − k < window (Gemma2DecoderLayer's tril mask).
 * - SiLU x·σ(x) (LlamaMLP act_fn); gelu_new / gelu_pytorch_tanh 0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))
 *   (activations.NewGELUActivation, Gemma2MLP hidden_activation).
 * - Embedding × hidden_size^½ (Gemma2Model.forward, "normalizer"); gpt2 adds wpe[pos].
 * - Final logit soft-cap (Gemma2ForCausalLM.forward, final_logit_softcapping).
 */
import type { LmConfig } from "./config.ts";
import { type HookPoint, parseHook, stopPoint } from "./hooks.ts";
import type { LmWeights, NormWeights } from "./weights.ts";

/** Options of {@link referenceForward}. */
export interface ReferenceOptions {
  /** Hook names whose activations to return. */
  hooks?: string[];
  /** Stop after the last requested hook instead of computing logits. */
  stopAtHook?: boolean;
  /**
   * Replaces one hook's activations [T, d] in place where the pass reaches them (the reference of
   * src/lm/forward.ts's Splice); the returned hooks keep the values from before.
   */
  splice?: { hook: string; apply: (act: Float32Array) => void };
}

/** Output of a forward pass: logits [T, vocab] (null when stopped early) and hook activations. */
export interface ForwardResult {
  logits: Float32Array | null;
  hooks: Record<string, Float32Array>;
}

/** y [T, out] = x [T, in]·Wᵀ (+ b), W [out, in]. */
export function linear(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | undefined,
  T: number,
  inp: number,
  out: number,
): Float32Array {
  const y = new Float32Array(T * out);
  for (let t = 0; t < T; t++) {
    const xo = t * inp;
    for (let o = 0; o < out; o++) {
      const wo = o * inp;
      let s = b ? b[o] : 0;
      for (let i = 0; i < inp; i++) s += x[xo + i] * w[wo + i];
      y[t * out + o] = s;
    }
  }
  return y;
}

/** A norm of each row of x [T, d] (see the module comment for the three kinds). */
export function normRows(cfg: LmConfig, x: Float32Array, nw: NormWeights, T: number): Float32Array {
  const d = x.length / T;
  const y = new Float32Array(x.length);
  for (let t = 0; t < T; t++) {
    const r = x.subarray(t * d, (t + 1) * d);
    let mean = 0;
    if (cfg.norm === "layer") {
      for (const v of r) mean += v;
      mean /= d;
    }
    let sq = 0;
    for (const v of r) sq += (v - mean) ** 2;
    const inv = 1 / Math.sqrt(sq / d + cfg.normEps);
    for (let i = 0; i < d; i++) {
      const xh = (r[i] - mean) * inv;
      y[t * d + i] = cfg.norm === "rms_gemma"
        ? xh * (1 + nw.w[i])
        : xh * nw.w[i] + (nw.b ? nw.b[i] : 0);
    }
  }
  return y;
}

/** RoPE in place on x [T, heads·hd] at positions pos[t]. */
function applyRope(
  cfg: LmConfig,
  x: Float32Array,
  pos: ArrayLike<number>,
  heads: number,
): void {
  const rope = cfg.rope!;
  const hd = cfg.headDim, half = hd / 2;
  for (let t = 0; t < pos.length; t++) {
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * hd;
      for (let i = 0; i < half; i++) {
        const ang = pos[t] * rope.invFreq[i];
        const c = Math.cos(ang), s = Math.sin(ang);
        const [a, b] = rope.style === "half" ? [base + i, base + i + half] : [
          base + 2 * i,
          base + 2 * i + 1,
        ];
        const x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x1 * c + x0 * s;
      }
    }
  }
}

/** The MLP activation of one value. */
export function activation(cfg: Pick<LmConfig, "act">, x: number): number {
  if (cfg.act === "silu") return x / (1 + Math.exp(-x));
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

/**
 * Causal self-attention of one layer for `batch` sequences of `seq` tokens: q [T, nH·hd],
 * k/v [T, nKv·hd] → [T, nH·hd].
 */
export function attention(
  cfg: LmConfig,
  layer: number,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  batch: number,
  seq: number,
): Float32Array {
  const { nHeads: H, nKvHeads: KV, headDim: hd } = cfg;
  const group = H / KV, scale = cfg.attnScale[layer], cap = cfg.attnSoftcap;
  const win = cfg.window[layer];
  const out = new Float32Array(batch * seq * H * hd);
  const s = new Float64Array(seq);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / group);
      for (let p = 0; p < seq; p++) {
        const qo = ((b * seq + p) * H + h) * hd;
        const j0 = win === null ? 0 : Math.max(0, p - win + 1);
        let max = -Infinity;
        for (let j = j0; j <= p; j++) {
          const ko = ((b * seq + j) * KV + kh) * hd;
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += q[qo + i] * k[ko + i];
          dot *= scale;
          if (cap !== null) dot = cap * Math.tanh(dot / cap);
          s[j] = dot;
          max = Math.max(max, dot);
        }
        let sum = 0;
        for (let j = j0; j <= p; j++) sum += s[j] = Math.exp(s[j] - max);
        for (let i = 0; i < hd; i++) {
          let acc = 0;
          for (let j = j0; j <= p; j++) acc += s[j] * v[((b * seq + j) * KV + kh) * hd + i];
          out[qo + i] = acc / sum;
        }
      }
    }
  }
  return out;
}

function add(a: Float32Array, b: Float32Array): Float32Array {
  const y = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = a[i] + b[i];
  return y;
}

/** The residual stream entering block 0: [T, d]. */
function embedTokens(
  cfg: LmConfig,
  w: LmWeights,
  tokens: ArrayLike<number>,
  pos: ArrayLike<number>,
): Float32Array {
  const d = cfg.dModel;
  const x = new Float32Array(tokens.length * d);
  for (let t = 0; t < tokens.length; t++) {
    for (let i = 0; i < d; i++) {
      let v = w.embed[tokens[t] * d + i] * cfg.embedScale;
      if (w.posEmbed) v += w.posEmbed[pos[t] * d + i];
      x[t * d + i] = v;
    }
  }
  return x;
}

/**
 * The reference forward pass on `tokens` [batch, seq] (positions 0..seq−1 in each row): logits
 * [batch·seq, vocab] and the requested hooks' activations [batch·seq, d].
 */
export function referenceForward(
  model: { config: LmConfig; weights: LmWeights },
  tokens: ArrayLike<number>,
  batch: number,
  seq: number,
  opts: ReferenceOptions = {},
): ForwardResult {
  const cfg = model.config, w = model.weights;
  const T = batch * seq, d = cfg.dModel;
  if (tokens.length !== T) throw new Error(`${tokens.length} tokens for [${batch}, ${seq}]`);
  const points: HookPoint[] = (opts.hooks ?? []).map((n) => parseHook(n, cfg));
  const want = new Set(points.map((p) => p.name));
  const stop = opts.stopAtHook && points.length ? stopPoint(points) : null;
  const hooks: Record<string, Float32Array> = {};
  if (opts.splice) parseHook(opts.splice.hook, cfg);
  const record = (name: string, x: Float32Array) => {
    if (want.has(name)) hooks[name] = x.slice();
    if (opts.splice?.hook === name) opts.splice.apply(x);
  };
  const pos = Array.from({ length: T }, (_, t) => t % seq);
  let x = embedTokens(cfg, w, tokens, pos);
  const qd = cfg.nHeads * cfg.headDim, kvd = cfg.nKvHeads * cfg.headDim;
  for (let l = 0; l < cfg.nLayers; l++) {
    record(`blocks.${l}.hook_resid_pre`, x);
    if (stop && l > stop.layer) return { logits: null, hooks };
    const L = w.layers[l];
    const h = normRows(cfg, x, L.attnNorm, T);
    const q = linear(h, L.wq, L.bq, T, d, qd);
    const k = linear(h, L.wk, L.bk, T, d, kvd);
    const v = linear(h, L.wv, L.bv, T, d, kvd);
    if (cfg.rope) {
      applyRope(cfg, q, pos, cfg.nHeads);
      applyRope(cfg, k, pos, cfg.nKvHeads);
    }
    let a = linear(attention(cfg, l, q, k, v, batch, seq), L.wo, L.bo, T, qd, d);
    if (L.postAttnNorm) a = normRows(cfg, a, L.postAttnNorm, T);
    record(`blocks.${l}.hook_attn_out`, a);
    if (stop && stop.layer === l && stop.attnOnly) return { logits: null, hooks };
    x = add(x, a);
    const h2 = normRows(cfg, x, L.mlpNorm, T);
    const up = linear(h2, L.wUp, L.bUp, T, d, cfg.dMlp);
    if (L.wGate) {
      const gate = linear(h2, L.wGate, L.bGate, T, d, cfg.dMlp);
      for (let i = 0; i < up.length; i++) up[i] *= activation(cfg, gate[i]);
    } else {
      for (let i = 0; i < up.length; i++) up[i] = activation(cfg, up[i]);
    }
    let m = linear(up, L.wDown, L.bDown, T, cfg.dMlp, d);
    if (L.postMlpNorm) m = normRows(cfg, m, L.postMlpNorm, T);
    record(`blocks.${l}.hook_mlp_out`, m);
    x = add(x, m);
    record(`blocks.${l}.hook_resid_post`, x);
  }
  if (stop) return { logits: null, hooks };
  const logits = linear(
    normRows(cfg, x, w.finalNorm, T),
    w.unembed,
    undefined,
    T,
    d,
    cfg.vocabSize,
  );
  const cap = cfg.finalSoftcap;
  if (cap !== null) {
    for (let i = 0; i < logits.length; i++) logits[i] = cap * Math.tanh(logits[i] / cap);
  }
  return { logits, hooks };
}

/** Greedy decoding with the reference forward (recomputing the whole prefix each step). */
export function referenceGreedy(
  model: { config: LmConfig; weights: LmWeights },
  prompt: number[],
  steps: number,
): number[] {
  const ids = [...prompt];
  const V = model.config.vocabSize;
  for (let s = 0; s < steps; s++) {
    const { logits } = referenceForward(model, ids, 1, ids.length);
    const last = logits!.subarray((ids.length - 1) * V, ids.length * V);
    let best = 0;
    for (let i = 1; i < V; i++) if (last[i] > last[best]) best = i;
    ids.push(best);
  }
  return ids;
}
