/**
 * A model's weights in one layout for every family, all f32 (converted from f16/bf16 on load):
 * every projection stored [out, in] row-major as torch's nn.Linear stores it (GPT-2's Conv1D
 * [in, out] matrices are transposed on load, its fused c_attn split into q, k, v), so y = x·Wᵀ.
 *
 * Which Hugging Face tensor fills which field (L = layer):
 *
 * | field        | llama (LlamaForCausalLM)         | gemma2 (Gemma2ForCausalLM)         | gpt2 (GPT2LMHeadModel, `transformer.` optional) |
 * |--------------|----------------------------------|------------------------------------|--------------------------------|
 * | embed        | model.embed_tokens               | model.embed_tokens                 | wte                            |
 * | posEmbed     | —                                | —                                  | wpe                            |
 * | attnNorm     | layers.L.input_layernorm         | layers.L.input_layernorm           | h.L.ln_1 (weight, bias)        |
 * | wq, wk, wv   | layers.L.self_attn.{q,k,v}_proj  | layers.L.self_attn.{q,k,v}_proj    | h.L.attn.c_attn (split, ᵀ)     |
 * | wo           | layers.L.self_attn.o_proj        | layers.L.self_attn.o_proj          | h.L.attn.c_proj (ᵀ)            |
 * | postAttnNorm | —                                | layers.L.post_attention_layernorm  | —                              |
 * | mlpNorm      | layers.L.post_attention_layernorm| layers.L.pre_feedforward_layernorm | h.L.ln_2                       |
 * | wGate        | layers.L.mlp.gate_proj           | layers.L.mlp.gate_proj             | —                              |
 * | wUp          | layers.L.mlp.up_proj             | layers.L.mlp.up_proj               | h.L.mlp.c_fc (ᵀ)               |
 * | wDown        | layers.L.mlp.down_proj           | layers.L.mlp.down_proj             | h.L.mlp.c_proj (ᵀ)             |
 * | postMlpNorm  | —                                | layers.L.post_feedforward_layernorm| —                              |
 * | finalNorm    | model.norm                       | model.norm                         | ln_f                           |
 * | unembed      | lm_head (embed when tied)        | embed (tied)                       | embed (tied)                   |
 */
import { UserError } from "../errors.ts";
import { type Tensor, tensorToF32 } from "../run/safetensors.ts";
import type { LmConfig } from "./config.ts";

/** A norm's weight [d] and, for LayerNorm, its bias [d]. */
export interface NormWeights {
  w: Float32Array;
  b?: Float32Array;
}

/** One transformer block. */
export interface LayerWeights {
  /** Before attention. */
  attnNorm: NormWeights;
  /** Before the MLP. */
  mlpNorm: NormWeights;
  /** Gemma-2: on the attention output before the residual add. */
  postAttnNorm?: NormWeights;
  /** Gemma-2: on the MLP output before the residual add. */
  postMlpNorm?: NormWeights;
  // wq: [nHeads·headDim, d], wk/wv: [nKvHeads·headDim, d], wo: [d, nHeads·headDim]
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  bo?: Float32Array;
  // wGate/wUp: [dMlp, d], wDown: [d, dMlp]
  wGate?: Float32Array;
  wUp: Float32Array;
  wDown: Float32Array;
  bGate?: Float32Array;
  bUp?: Float32Array;
  bDown?: Float32Array;
}

/** All weights of a model. */
export interface LmWeights {
  // embed: [vocab, d]
  embed: Float32Array;
  // posEmbed: [maxSeq, d] (gpt2)
  posEmbed?: Float32Array;
  layers: LayerWeights[];
  finalNorm: NormWeights;
  // unembed: [vocab, d]; the same array as embed when tied
  unembed: Float32Array;
}

/** Looks tensors up by name, and says which file a name is (or would be) in. */
export interface TensorSource {
  get(name: string): Tensor | undefined;
  fileOf(name: string): string;
  /** Every tensor name available. */
  names(): string[];
}

/** What was read: tensor names used, their dtypes, and the parameter count (tied counted once). */
export interface WeightStats {
  dtypes: string[];
  params: number;
  tensors: number;
}

/** Reads the tensors of `cfg`'s family from `src` into {@link LmWeights}, checking every shape. */
export function weightsFromTensors(
  cfg: LmConfig,
  src: TensorSource,
): { weights: LmWeights; stats: WeightStats } {
  const dtypes = new Set<string>();
  let params = 0, tensors = 0;
  const take = (name: string, shape: number[]): Float32Array => {
    const t = src.get(name);
    if (!t) {
      throw new UserError(
        `${src.fileOf(name)}: tensor '${name}' is missing (a ${cfg.family} model as ` +
          `${cfg.source} describes needs it): pass the matching model directory`,
      );
    }
    if (t.shape.length !== shape.length || t.shape.some((v, i) => v !== shape[i])) {
      throw new UserError(
        `${src.fileOf(name)}: tensor '${name}' is [${t.shape}], expected [${shape}] from ` +
          `${cfg.source}: the weights do not match the config`,
      );
    }
    if (!["F32", "F16", "BF16"].includes(t.dtype)) {
      throw new UserError(
        `${src.fileOf(name)}: tensor '${name}' is ${t.dtype}: weights must be F32, F16 or BF16`,
      );
    }
    dtypes.add(t.dtype);
    params += shape.reduce((a, b) => a * b, 1);
    tensors++;
    return tensorToF32(t);
  };
  const weights = cfg.family === "gpt2" ? gpt2Weights(cfg, src, take) : hfWeights(cfg, take);
  return { weights, stats: { dtypes: [...dtypes].sort(), params, tensors } };
}

type Take = (name: string, shape: number[]) => Float32Array;

function hfWeights(cfg: LmConfig, take: Take): LmWeights {
  const { dModel: d, dMlp: f, vocabSize: V, headDim: hd } = cfg;
  const q = cfg.nHeads * hd, kv = cfg.nKvHeads * hd;
  const norm = (name: string): NormWeights => ({ w: take(name, [d]) });
  const layers: LayerWeights[] = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    const p = `model.layers.${l}.`;
    const lin = (name: string, out: number, inp: number, bias: boolean) => ({
      w: take(`${p}${name}.weight`, [out, inp]),
      b: bias ? take(`${p}${name}.bias`, [out]) : undefined,
    });
    const [Q, K, Vv] = (["q", "k", "v"] as const).map((x) =>
      lin(`self_attn.${x}_proj`, x === "q" ? q : kv, d, cfg.attnBias)
    );
    const O = lin("self_attn.o_proj", d, q, cfg.attnBias);
    const G = lin("mlp.gate_proj", f, d, cfg.mlpBias);
    const U = lin("mlp.up_proj", f, d, cfg.mlpBias);
    const D = lin("mlp.down_proj", d, f, cfg.mlpBias);
    const gemma = cfg.sandwichNorms;
    layers.push({
      attnNorm: norm(`${p}input_layernorm.weight`),
      mlpNorm: norm(`${p}${gemma ? "pre_feedforward" : "post_attention"}_layernorm.weight`),
      postAttnNorm: gemma ? norm(`${p}post_attention_layernorm.weight`) : undefined,
      postMlpNorm: gemma ? norm(`${p}post_feedforward_layernorm.weight`) : undefined,
      wq: Q.w,
      wk: K.w,
      wv: Vv.w,
      wo: O.w,
      bq: Q.b,
      bk: K.b,
      bv: Vv.b,
      bo: O.b,
      wGate: G.w,
      wUp: U.w,
      wDown: D.w,
      bGate: G.b,
      bUp: U.b,
      bDown: D.b,
    });
  }
  const embed = take("model.embed_tokens.weight", [V, d]);
  // A tied model's file may still hold lm_head (a copy): the embedding is used either way.
  const unembed = cfg.tied ? embed : take("lm_head.weight", [V, d]);
  return { embed, layers, finalNorm: norm("model.norm.weight"), unembed };
}

/** [rows, cols] → [cols, rows]. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

function gpt2Weights(cfg: LmConfig, src: TensorSource, take: Take): LmWeights {
  const { dModel: d, dMlp: f, vocabSize: V } = cfg;
  // openai-community/gpt2 names its tensors without the GPT2LMHeadModel's `transformer.` prefix.
  const pre = src.get("transformer.wte.weight") ? "transformer." : "";
  const ln = (name: string): NormWeights => ({
    w: take(`${pre}${name}.weight`, [d]),
    b: take(`${pre}${name}.bias`, [d]),
  });
  // Conv1D: y = x·W + b with W [in, out]; stored here transposed to [out, in].
  const conv = (name: string, inp: number, out: number) => ({
    w: transpose(take(`${pre}${name}.weight`, [inp, out]), inp, out),
    b: take(`${pre}${name}.bias`, [out]),
  });
  const layers: LayerWeights[] = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    const h = `h.${l}.`;
    const qkv = conv(`${h}attn.c_attn`, d, 3 * d);
    const O = conv(`${h}attn.c_proj`, d, d);
    const U = conv(`${h}mlp.c_fc`, d, f);
    const D = conv(`${h}mlp.c_proj`, f, d);
    // c_attn's output columns are [q | k | v] (GPT2Attention: split(split_size, dim=2)).
    const part = (i: number) => qkv.w.slice(i * d * d, (i + 1) * d * d);
    const bias = (i: number) => qkv.b.slice(i * d, (i + 1) * d);
    layers.push({
      attnNorm: ln(`${h}ln_1`),
      mlpNorm: ln(`${h}ln_2`),
      wq: part(0),
      wk: part(1),
      wv: part(2),
      wo: O.w,
      bq: bias(0),
      bk: bias(1),
      bv: bias(2),
      bo: O.b,
      wUp: U.w,
      wDown: D.w,
      bUp: U.b,
      bDown: D.b,
    });
  }
  const embed = take(`${pre}wte.weight`, [V, d]);
  return {
    embed,
    posEmbed: take(`${pre}wpe.weight`, [cfg.maxSeq, d]),
    layers,
    finalNorm: ln("ln_f"),
    unembed: embed,
  };
}
