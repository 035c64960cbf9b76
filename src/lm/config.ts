/**
 * The architecture of a language model, in one shape for the three families this toolkit runs
 * (llama, gpt2, gemma2), parsed from a Hugging Face `config.json` or a llama2.c checkpoint header.
 *
 * Every default below is the one the family's Hugging Face configuration class uses when a key is
 * absent (transformers' configuration_llama.py, configuration_gpt2.py, configuration_gemma2.py).
 *
 * @example
 * ```ts
 * import { parseHfConfig } from "./config.ts";
 * const cfg = parseHfConfig(JSON.parse(await Deno.readTextFile("m/config.json")), "m/config.json");
 * cfg.family; // "llama"
 * ```
 */
import { UserError } from "../errors.ts";

/** The model families with a forward pass here. */
export type Family = "llama" | "gpt2" | "gemma2";

/** Hugging Face `architectures` names accepted, per family. */
export const ARCHITECTURES: Record<string, Family> = {
  LlamaForCausalLM: "llama",
  GPT2LMHeadModel: "gpt2",
  Gemma2ForCausalLM: "gemma2",
};

/**
 * Normalisation: "rms" x̂·w (Llama), "rms_gemma" x̂·(1 + w) (Gemma-2), "layer" LayerNorm with
 * weight and bias (GPT-2).
 */
export type NormKind = "rms" | "rms_gemma" | "layer";

/**
 * MLP non-linearity: "silu" (Llama's SwiGLU, gated), "gelu_tanh" (Gemma-2's GeGLU, gated; GPT-2's
 * gelu_new, not gated). gelu_new and gelu_pytorch_tanh are the same formula,
 * 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
 */
export type Activation = "silu" | "gelu_tanh";

/**
 * Rotary position embedding: `style` "half" rotates the pairs (i, i + hd/2) of each head (Hugging
 * Face's rotate_half), "interleaved" the pairs (2i, 2i + 1) (Meta's and llama2.c's layout).
 * `invFreq[i]` is the angle per position of pair i (hd/2 values, after any rope_scaling).
 */
export interface RopeConfig {
  style: "half" | "interleaved";
  theta: number;
  invFreq: Float64Array;
}

/** A model's architecture. */
export interface LmConfig {
  family: Family;
  /** The file the configuration came from, for messages. */
  source: string;
  /** Residual stream width. */
  dModel: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** MLP hidden width. */
  dMlp: number;
  vocabSize: number;
  /** Longest context the model was built for (max_position_embeddings / n_positions). */
  maxSeq: number;
  norm: NormKind;
  normEps: number;
  /** Null where positions are learned (gpt2). */
  rope: RopeConfig | null;
  act: Activation;
  /** Whether the MLP is gated: act(x·W_gateᵀ) ⊙ (x·W_upᵀ) (llama, gemma2) or act(x·W_upᵀ). */
  gated: boolean;
  /** Whether the unembedding is the embedding matrix. */
  tied: boolean;
  /** Whether q/k/v/o projections and the MLP's matrices have biases. */
  attnBias: boolean;
  mlpBias: boolean;
  /** Attention scores are multiplied by this (before any soft-cap), per layer. */
  attnScale: number[];
  /** Attention logit soft-cap c: s ↦ c·tanh(s/c) (gemma2), or null. */
  attnSoftcap: number | null;
  /** Final logit soft-cap (gemma2), or null. */
  finalSoftcap: number | null;
  /** Sliding attention window per layer (a query at p sees keys k with p − k < window), or null. */
  window: (number | null)[];
  /** The embedding is multiplied by this (√d_model for gemma2, else 1). */
  embedScale: number;
  /** Gemma-2's extra norms after attention and around the MLP. */
  sandwichNorms: boolean;
  bos: number | null;
  eos: number | null;
}

type Json = Record<string, unknown>;

function num(cfg: Json, key: string, file: string, fallback?: number): number {
  const v = cfg[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new UserError(`${file}: '${key}' is missing: is this a complete model config.json?`);
  }
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new UserError(`${file}: '${key}' is ${JSON.stringify(v)}, expected a number`);
  }
  return v;
}

function int(cfg: Json, key: string, file: string, fallback?: number): number {
  const v = num(cfg, key, file, fallback);
  if (!Number.isInteger(v) || v <= 0) {
    throw new UserError(`${file}: '${key}' is ${v}, expected a positive integer`);
  }
  return v;
}

/** First id of a token id or a list of ids (Llama 3 lists several EOS ids), or null. */
function tokenId(v: unknown): number | null {
  if (typeof v === "number" && Number.isInteger(v) && v >= 0) return v;
  if (Array.isArray(v) && v.length > 0) return tokenId(v[0]);
  return null;
}

/** Angles per position of the hd/2 rotary pairs: θ^(−2i/hd) (HF's default rope). */
export function ropeInvFreq(theta: number, headDim: number): Float64Array {
  const out = new Float64Array(headDim / 2);
  for (let i = 0; i < out.length; i++) out[i] = 1 / theta ** ((2 * i) / headDim);
  return out;
}

/**
 * rope_scaling of type "llama3" (Llama 3.1/3.2): long wavelengths divided by `factor`, short ones
 * kept, smooth in between (transformers' modeling_rope_utils._compute_llama3_parameters).
 */
function llama3InvFreq(base: Float64Array, s: Json, file: string): Float64Array {
  const factor = num(s, "factor", file);
  const low = num(s, "low_freq_factor", file);
  const high = num(s, "high_freq_factor", file);
  const orig = num(s, "original_max_position_embeddings", file);
  const lowWavelen = orig / low, highWavelen = orig / high;
  return base.map((f) => {
    const wavelen = 2 * Math.PI / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / factor;
    const smooth = (orig / wavelen - low) / (high - low);
    return (1 - smooth) * f / factor + smooth * f;
  });
}

function ropeFor(cfg: Json, file: string, headDim: number): RopeConfig {
  const theta = num(cfg, "rope_theta", file, 10000);
  let invFreq = ropeInvFreq(theta, headDim);
  const scaling = cfg.rope_scaling as Json | null | undefined;
  if (scaling) {
    const type = scaling.rope_type ?? scaling.type;
    if (type === "llama3") invFreq = llama3InvFreq(invFreq, scaling, file);
    else if (type === "linear") {
      const factor = num(scaling, "factor", file);
      invFreq = invFreq.map((f) => f / factor);
    } else if (type !== "default") {
      throw new UserError(
        `${file}: rope_scaling type ${JSON.stringify(type)} is not supported ` +
          `(supported: default, linear, llama3)`,
      );
    }
  }
  return { style: "half", theta, invFreq };
}

function checkHeads(c: LmConfig): LmConfig {
  if (c.nHeads % c.nKvHeads !== 0) {
    throw new UserError(
      `${c.source}: ${c.nHeads} attention heads are not a multiple of ${c.nKvHeads} key/value ` +
        `heads: fix num_key_value_heads`,
    );
  }
  if (c.rope && c.headDim % 2 !== 0) {
    throw new UserError(`${c.source}: head_dim ${c.headDim} is odd: RoPE needs it even`);
  }
  return c;
}

/** The family of a Hugging Face config.json, or a UserError naming the supported ones. */
function familyOf(cfg: Json, file: string): Family {
  const archs = Array.isArray(cfg.architectures) ? cfg.architectures as unknown[] : [];
  for (const a of archs) if (typeof a === "string" && a in ARCHITECTURES) return ARCHITECTURES[a];
  const byType: Record<string, Family> = { llama: "llama", gpt2: "gpt2", gemma2: "gemma2" };
  if (!archs.length && typeof cfg.model_type === "string" && cfg.model_type in byType) {
    return byType[cfg.model_type];
  }
  const what = archs.length ? `architecture ${archs.join(", ")}` : `model_type ${cfg.model_type}`;
  throw new UserError(
    `${file}: ${what} is not supported: use a ${Object.keys(ARCHITECTURES).join(", ")} model`,
  );
}

/** Parses a Hugging Face `config.json` (already JSON-decoded) of a supported family. */
export function parseHfConfig(cfg: Json, file: string): LmConfig {
  if (typeof cfg !== "object" || cfg === null || Array.isArray(cfg)) {
    throw new UserError(`${file}: not a JSON object: pass a model directory's config.json`);
  }
  const family = familyOf(cfg, file);
  if (family === "gpt2") return parseGpt2(cfg, file);
  const dModel = int(cfg, "hidden_size", file);
  const nLayers = int(cfg, "num_hidden_layers", file);
  const nHeads = int(cfg, "num_attention_heads", file);
  const gemma = family === "gemma2";
  const headDim = int(cfg, "head_dim", file, gemma ? 256 : dModel / nHeads);
  const act = cfg[gemma ? "hidden_activation" : "hidden_act"] ??
    (gemma ? "gelu_pytorch_tanh" : "silu");
  const wanted = gemma ? ["gelu_pytorch_tanh", "gelu_new"] : ["silu"];
  if (!wanted.includes(act as string)) {
    throw new UserError(
      `${file}: activation ${JSON.stringify(act)} is not supported for ${family} ` +
        `(supported: ${wanted.join(", ")})`,
    );
  }
  const attnBias = cfg.attention_bias === true;
  const window: (number | null)[] = [];
  const slide = gemma ? int(cfg, "sliding_window", file, 4096) : null;
  // Gemma2DecoderLayer: is_sliding = not bool(layer_idx % 2): even layers slide.
  for (let l = 0; l < nLayers; l++) window.push(gemma && l % 2 === 0 ? slide : null);
  const softcap = (key: string, fallback: number) => {
    const v = cfg[key] === undefined ? fallback : cfg[key];
    return v === null ? null : num({ [key]: v }, key, file);
  };
  return checkHeads({
    family,
    source: file,
    dModel,
    nLayers,
    nHeads,
    nKvHeads: int(cfg, "num_key_value_heads", file, nHeads),
    headDim,
    dMlp: int(cfg, "intermediate_size", file),
    vocabSize: int(cfg, "vocab_size", file),
    maxSeq: int(cfg, "max_position_embeddings", file, gemma ? 8192 : 2048),
    norm: gemma ? "rms_gemma" : "rms",
    normEps: num(cfg, "rms_norm_eps", file, 1e-6),
    rope: ropeFor(cfg, file, headDim),
    act: gemma ? "gelu_tanh" : "silu",
    gated: true,
    tied: cfg.tie_word_embeddings === undefined ? gemma : cfg.tie_word_embeddings === true,
    attnBias,
    mlpBias: !gemma && cfg.mlp_bias === true,
    attnScale: Array(nLayers).fill(
      gemma ? num(cfg, "query_pre_attn_scalar", file, 256) ** -0.5 : 1 / Math.sqrt(headDim),
    ),
    attnSoftcap: gemma ? softcap("attn_logit_softcapping", 50) : null,
    finalSoftcap: gemma ? softcap("final_logit_softcapping", 30) : null,
    window,
    // Gemma2Model.forward: hidden_states * hidden_size**0.5.
    embedScale: gemma ? Math.sqrt(dModel) : 1,
    sandwichNorms: gemma,
    bos: tokenId(cfg.bos_token_id),
    eos: tokenId(cfg.eos_token_id),
  });
}

function parseGpt2(cfg: Json, file: string): LmConfig {
  const dModel = int(cfg, "n_embd", file);
  const nLayers = int(cfg, "n_layer", file);
  const nHeads = int(cfg, "n_head", file);
  const act = cfg.activation_function ?? "gelu_new";
  if (act !== "gelu_new" && act !== "gelu_pytorch_tanh") {
    throw new UserError(
      `${file}: activation_function ${JSON.stringify(act)} is not supported for gpt2 ` +
        `(supported: gelu_new, gelu_pytorch_tanh)`,
    );
  }
  if (dModel % nHeads !== 0) {
    throw new UserError(`${file}: n_embd ${dModel} is not a multiple of n_head ${nHeads}`);
  }
  const headDim = dModel / nHeads;
  // GPT2Attention._attn: scores / √hd when scale_attn_weights, and / (layer_idx + 1) when
  // scale_attn_by_inverse_layer_idx.
  const base = cfg.scale_attn_weights === false ? 1 : 1 / Math.sqrt(headDim);
  const byLayer = cfg.scale_attn_by_inverse_layer_idx === true;
  return checkHeads({
    family: "gpt2",
    source: file,
    dModel,
    nLayers,
    nHeads,
    nKvHeads: nHeads,
    headDim,
    dMlp: int(cfg, "n_inner", file, 4 * dModel),
    vocabSize: int(cfg, "vocab_size", file),
    maxSeq: int(cfg, "n_positions", file, 1024),
    norm: "layer",
    normEps: num(cfg, "layer_norm_epsilon", file, 1e-5),
    rope: null,
    act: "gelu_tanh",
    gated: false,
    tied: true,
    attnBias: true,
    mlpBias: true,
    attnScale: Array.from({ length: nLayers }, (_, l) => byLayer ? base / (l + 1) : base),
    attnSoftcap: null,
    finalSoftcap: null,
    window: Array(nLayers).fill(null),
    embedScale: 1,
    sandwichNorms: false,
    bos: tokenId(cfg.bos_token_id),
    eos: tokenId(cfg.eos_token_id),
  });
}

/**
 * The configuration of a llama2.c checkpoint from its 7-int32 header (dim, hidden_dim, n_layers,
 * n_heads, n_kv_heads, vocab_size, seq_len; vocab_size < 0 means an untied classifier). llama2.c's
 * run.c fixes RMSNorm eps 1e-5, RoPE θ 10000 on interleaved pairs, SwiGLU, BOS 1 and EOS 2.
 */
export function llama2cConfig(header: Int32Array, file: string): LmConfig {
  const [dModel, dMlp, nLayers, nHeads, nKvHeads, vocab, maxSeq] = header;
  const bad = [dModel, dMlp, nLayers, nHeads, nKvHeads, maxSeq].some((v) => !(v > 0)) ||
    vocab === 0 || dModel % nHeads !== 0;
  if (bad) {
    throw new UserError(
      `${file}: header [${header.join(", ")}] is not a llama2.c checkpoint's (dim, hidden_dim, ` +
        `n_layers, n_heads, n_kv_heads, vocab_size, seq_len): pass a legacy llama2.c .bin`,
    );
  }
  const headDim = dModel / nHeads;
  return checkHeads({
    family: "llama",
    source: file,
    dModel,
    nLayers,
    nHeads,
    nKvHeads,
    headDim,
    dMlp,
    vocabSize: Math.abs(vocab),
    maxSeq,
    norm: "rms",
    normEps: 1e-5,
    rope: { style: "interleaved", theta: 10000, invFreq: ropeInvFreq(10000, headDim) },
    act: "silu",
    gated: true,
    tied: vocab > 0,
    attnBias: false,
    mlpBias: false,
    attnScale: Array(nLayers).fill(1 / Math.sqrt(headDim)),
    attnSoftcap: null,
    finalSoftcap: null,
    window: Array(nLayers).fill(null),
    embedScale: 1,
    sandwichNorms: false,
    bos: 1,
    eos: 2,
  });
}
