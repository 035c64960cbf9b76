/**
 * Tiny random models of each family, written as Hugging Face directories (config.json +
 * safetensors, optionally sharded, f32/f16/bf16), and where the shared real models live.
 */
import { join } from "node:path";
import { encodeSafetensors, f32Tensor, type Tensor } from "../../src/run/safetensors.ts";
import { Rng } from "../../src/rng.ts";

/** `../shared/lm` relative to the project root, or null (with a message) when absent. */
export function sharedLm(what: string): string | null {
  const dir = new URL("../../../shared/lm", import.meta.url).pathname;
  try {
    Deno.statSync(dir);
    return dir;
  } catch {
    console.warn(`skipped: ${what} needs ../shared/lm (the real models), absent here`);
    return null;
  }
}

/** The README's known greedy continuation of BOS for stories260K. */
export const STORIES_GREEDY =
  "Once upon a time, there was a little girl named Lily. She loved to " +
  "play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but " +
  "it was too high.";

type Json = Record<string, unknown>;

/** Awkward sizes (d 36, 3 heads, 1 KV head), as every kernel test uses. */
export const TINY_CONFIGS: Record<string, Json> = {
  llama: {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: 36,
    intermediate_size: 50,
    num_hidden_layers: 2,
    num_attention_heads: 3,
    num_key_value_heads: 1,
    vocab_size: 61,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 500,
    hidden_act: "silu",
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
  },
  gpt2: {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    n_embd: 36,
    n_layer: 2,
    n_head: 3,
    n_inner: null,
    vocab_size: 61,
    n_positions: 64,
    layer_norm_epsilon: 1e-5,
    activation_function: "gelu_new",
    bos_token_id: 60,
    eos_token_id: 60,
  },
  gemma2: {
    architectures: ["Gemma2ForCausalLM"],
    model_type: "gemma2",
    hidden_size: 36,
    intermediate_size: 44,
    num_hidden_layers: 3,
    num_attention_heads: 3,
    num_key_value_heads: 1,
    head_dim: 10,
    vocab_size: 61,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    hidden_activation: "gelu_pytorch_tanh",
    query_pre_attn_scalar: 12,
    sliding_window: 5,
    // Small caps so tanh is far from linear on random weights.
    attn_logit_softcapping: 1.5,
    final_logit_softcapping: 2.5,
    tie_word_embeddings: true,
    bos_token_id: 2,
    eos_token_id: 1,
  },
};

/** Random tensors of a tiny model of `config`'s family, named as Hugging Face names them. */
export function randomTensors(
  config: Json,
  seed: number,
  opts: { gpt2Prefix?: boolean } = {},
): Record<string, Tensor> {
  const rng = new Rng(seed);
  const out: Record<string, Tensor> = {};
  const rand = (name: string, shape: number[], scale: number, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = offset + scale * (2 * rng.uniform() - 1);
    out[name] = f32Tensor(shape, v);
  };
  const arch = (config.architectures as string[])[0];
  if (arch === "GPT2LMHeadModel") {
    const d = config.n_embd as number, f = (config.n_inner as number | null) ?? 4 * d;
    const p = opts.gpt2Prefix === false ? "" : "transformer.";
    rand(`${p}wte.weight`, [config.vocab_size as number, d], 1);
    rand(`${p}wpe.weight`, [config.n_positions as number, d], 0.5);
    for (let l = 0; l < (config.n_layer as number); l++) {
      const h = `${p}h.${l}.`;
      for (const ln of ["ln_1", "ln_2"]) {
        rand(`${h}${ln}.weight`, [d], 0.2, 1);
        rand(`${h}${ln}.bias`, [d], 0.2);
      }
      const conv = (name: string, inp: number, o: number) => {
        rand(`${h}${name}.weight`, [inp, o], 1.5 / Math.sqrt(inp));
        rand(`${h}${name}.bias`, [o], 0.2);
      };
      conv("attn.c_attn", d, 3 * d);
      conv("attn.c_proj", d, d);
      conv("mlp.c_fc", d, f);
      conv("mlp.c_proj", f, d);
    }
    rand(`${p}ln_f.weight`, [d], 0.2, 1);
    rand(`${p}ln_f.bias`, [d], 0.2);
    return out;
  }
  const gemma = arch === "Gemma2ForCausalLM";
  const d = config.hidden_size as number, f = config.intermediate_size as number;
  const H = config.num_attention_heads as number;
  const KV = (config.num_key_value_heads as number | undefined) ?? H;
  const hd = (config.head_dim as number | undefined) ?? d / H;
  const V = config.vocab_size as number;
  // Gemma's norms multiply by (1 + w): weights near 0 there, near 1 elsewhere.
  const norm = (name: string) => rand(name, [d], 0.3, gemma ? 0 : 1);
  rand("model.embed_tokens.weight", [V, d], gemma ? 0.3 : 1);
  for (let l = 0; l < (config.num_hidden_layers as number); l++) {
    const p = `model.layers.${l}.`;
    norm(`${p}input_layernorm.weight`);
    norm(`${p}post_attention_layernorm.weight`);
    if (gemma) {
      norm(`${p}pre_feedforward_layernorm.weight`);
      norm(`${p}post_feedforward_layernorm.weight`);
    }
    const lin = (name: string, o: number, inp: number, bias: boolean) => {
      rand(`${p}${name}.weight`, [o, inp], 1.5 / Math.sqrt(inp));
      if (bias) rand(`${p}${name}.bias`, [o], 0.2);
    };
    const ab = config.attention_bias === true, mb = config.mlp_bias === true;
    lin("self_attn.q_proj", H * hd, d, ab);
    lin("self_attn.k_proj", KV * hd, d, ab);
    lin("self_attn.v_proj", KV * hd, d, ab);
    lin("self_attn.o_proj", d, H * hd, ab);
    lin("mlp.gate_proj", f, d, mb);
    lin("mlp.up_proj", f, d, mb);
    lin("mlp.down_proj", d, f, mb);
  }
  norm("model.norm.weight");
  if (config.tie_word_embeddings !== true && !gemma) rand("lm_head.weight", [V, d], 1);
  return out;
}

/** Rounds f32 to f16 bits (round to nearest even; no overflow handling: test values are small). */
function toF16Bits(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  const mant = u & 0x7fffff;
  if (exp <= 0) {
    // Subnormal: value / 2^-24, rounded to nearest even.
    const v = Math.abs(x) / 2 ** -24;
    let r = Math.round(v);
    if (Math.abs(v - Math.trunc(v) - 0.5) < 1e-12 && Math.trunc(v) % 2 === 0) r = Math.trunc(v);
    return sign | r;
  }
  let h = (exp << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/** A tensor converted to F16 or BF16 (rounded to nearest even). */
export function convertTensor(t: Tensor, dtype: "F32" | "F16" | "BF16"): Tensor {
  if (dtype === "F32") return t;
  const v = new Float32Array(t.data.slice().buffer);
  const out = new Uint16Array(v.length);
  const bits = new Uint32Array(v.buffer);
  for (let i = 0; i < v.length; i++) {
    if (dtype === "F16") out[i] = toF16Bits(v[i]);
    else {
      const u = bits[i];
      out[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
    }
  }
  return { dtype, shape: t.shape, data: new Uint8Array(out.buffer) };
}

/**
 * Writes a Hugging Face model directory: config.json and the tensors as model.safetensors, or as
 * `shards` files model-0000N-of-0000M.safetensors with model.safetensors.index.json.
 */
export async function writeHfDir(
  dir: string,
  config: Json,
  tensors: Record<string, Tensor>,
  opts: { shards?: number; dtype?: "F32" | "F16" | "BF16" } = {},
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(config, null, 2));
  const conv = Object.fromEntries(
    Object.entries(tensors).map(([k, t]) => [k, convertTensor(t, opts.dtype ?? "F32")]),
  );
  const shards = opts.shards ?? 1;
  if (shards === 1) {
    await Deno.writeFile(join(dir, "model.safetensors"), encodeSafetensors(conv));
    return dir;
  }
  const names = Object.keys(conv);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}` +
      ".safetensors";
    const part: Record<string, Tensor> = {};
    names.filter((_, i) => i % shards === s).forEach((n) => {
      part[n] = conv[n];
      weightMap[n] = file;
    });
    await Deno.writeFile(join(dir, file), encodeSafetensors(part));
  }
  await Deno.writeTextFile(
    join(dir, "model.safetensors.index.json"),
    JSON.stringify({ metadata: {}, weight_map: weightMap }),
  );
  return dir;
}

/** Random token ids in [0, vocab). */
export function randomTokens(n: number, vocab: number, seed: number): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Math.floor(rng.uniform() * vocab));
}

/** A llama2.c tokenizer file of `n` tokens: unk, BOS, EOS, then single letters and digits. */
export function llama2cTokenizerBytes(n: number): Uint8Array {
  const chars = " abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?";
  const pieces = ["<unk>", "<s>", "</s>", ...chars.slice(0, n - 3)];
  const enc = new TextEncoder();
  const parts = pieces.map((p) => enc.encode(p));
  const out = new Uint8Array(4 + parts.reduce((s, p) => s + 8 + p.length, 0));
  const v = new DataView(out.buffer);
  v.setInt32(0, 5, true);
  let o = 4;
  for (const p of parts) {
    v.setFloat32(o, 0, true);
    v.setInt32(o + 4, p.length, true);
    out.set(p, o + 8);
    o += 8 + p.length;
  }
  return out;
}
