/**
 * `sae lm`: language models. `lm info` describes a model (family, sizes, dtype, parameter count,
 * context length, tokenizer, hook points); `lm generate` samples a text corpus from it on the GPU.
 *
 * @example
 * ```sh
 * deno task sae lm info --model ../shared/lm/stories260K/stories260K.bin
 * deno task sae lm generate --model ../shared/lm/stories260K/stories260K.bin --tokens 20000 \
 *   --temperature 1 --seed 1 --out corpus.txt
 * ```
 */
import { Command, type CommandUnknownOpts } from "@commander-js/extra-typings";
import { UserError } from "../errors.ts";
import { hookPoints, hookSummary } from "../lm/hooks.ts";
import { type LmModel, loadModel } from "../lm/load.ts";
import { checkTokenizerFits, openTokenizer, type Tokenizer } from "../lm/tokenizer.ts";

/** What `lm info` reports, as printed with --json. */
export interface LmInfo {
  model: string;
  format: "hf" | "llama2c";
  family: string;
  d_model: number;
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  head_dim: number;
  d_mlp: number;
  vocab_size: number;
  context_length: number;
  dtypes: string[];
  parameters: number;
  tied_embeddings: boolean;
  tokenizer: string | null;
  hooks: string[];
}

/** The facts `lm info` prints about a loaded model. */
export function lmInfo(m: LmModel, tokenizer: Tokenizer | null): LmInfo {
  const c = m.config;
  return {
    model: m.source.path,
    format: m.source.format,
    family: c.family,
    d_model: c.dModel,
    n_layers: c.nLayers,
    n_heads: c.nHeads,
    n_kv_heads: c.nKvHeads,
    head_dim: c.headDim,
    d_mlp: c.dMlp,
    vocab_size: c.vocabSize,
    context_length: c.maxSeq,
    dtypes: m.stats.dtypes,
    parameters: m.stats.params,
    tied_embeddings: c.tied,
    tokenizer: tokenizer?.name ?? m.source.tokenizerFile,
    hooks: hookPoints(c),
  };
}

/** `lm info` as text: one fact per line. */
export function formatLmInfo(m: LmModel, info: LmInfo, tokNote: string): string {
  const c = m.config;
  const arch = [
    c.norm === "layer" ? "LayerNorm" : c.norm === "rms_gemma" ? "RMSNorm (1 + w)" : "RMSNorm",
    c.rope
      ? `RoPE ${c.rope.style === "half" ? "rotate-half" : "interleaved"} θ ${c.rope.theta}`
      : "learned positions",
    c.gated ? (c.act === "silu" ? "SwiGLU" : "GeGLU (tanh)") : "gelu_new MLP",
    c.nKvHeads < c.nHeads ? `GQA ${c.nHeads}/${c.nKvHeads} heads` : `${c.nHeads} heads`,
    c.tied ? "tied unembedding" : "separate unembedding",
    ...c.attnSoftcap !== null ? [`attention soft-cap ${c.attnSoftcap}`] : [],
    ...c.finalSoftcap !== null ? [`logit soft-cap ${c.finalSoftcap}`] : [],
    ...c.window.some((w) => w !== null)
      ? [`sliding window ${c.window.find((w) => w)} on even layers`]
      : [],
  ];
  const rows: [string, string][] = [
    [
      "model",
      `${info.model} (${info.format === "hf" ? "Hugging Face directory" : "llama2.c checkpoint"})`,
    ],
    ["family", `${info.family}: ${arch.join(", ")}`],
    [
      "sizes",
      `d_model ${c.dModel}, ${c.nLayers} layers, ${c.nHeads} heads (${c.nKvHeads} key/value, ` +
      `head_dim ${c.headDim}), d_mlp ${c.dMlp}, vocabulary ${c.vocabSize}`,
    ],
    ["dtype", `${info.dtypes.join(", ")} on disk, computed in f32`],
    ["parameters", info.parameters.toLocaleString("en-US")],
    ["context", `${info.context_length} tokens`],
    ["tokenizer", tokNote],
    ["hooks", `${hookSummary(c)} (${info.hooks.length}, each [tokens, ${c.dModel}])`],
  ];
  return rows.map(([k, v]) => `${k.padEnd(11)}${v}`).join("\n");
}

/**
 * A command with subcommands that hands the settings it inherits (exit override, output) down to
 * them: the program copies its settings into each top-level command after the command is built.
 */
class CommandGroup extends Command {
  override copyInheritedSettings(source: CommandUnknownOpts): this {
    super.copyInheritedSettings(source);
    for (const sub of this.commands) sub.copyInheritedSettings(this);
    return this;
  }
}

/** The `lm info` command's options (no action attached). */
export function makeLmInfoCommand() {
  return new Command("info")
    .description("print a model's family, sizes, dtype, parameter count, context length and hooks")
    .requiredOption(
      "--model <dir|file.bin|owner/name>",
      "Hugging Face model directory, llama2.c checkpoint, or Hugging Face repo id (required)",
    )
    .option("--tokenizer <file>", "tokenizer file (default: the one beside the model, if any)")
    .option("--json", "print the facts as JSON (default: text)");
}

async function infoAction(flags: { model: string; tokenizer?: string; json?: boolean }) {
  const m = await loadModel(flags.model, { tokenizer: flags.tokenizer, openTokenizer: false });
  let tok: Tokenizer | null = null;
  let note = "none found (pass --tokenizer to generate text)";
  if (m.source.tokenizerFile) {
    try {
      tok = await openTokenizer(m.source.tokenizerFile);
      checkTokenizerFits(tok, m.config);
      note = `${tok.name} (${tok.vocabSize} tokens, BOS ${tok.bos ?? "none"}, EOS ${
        tok.eos ?? "none"
      })`;
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      // info describes the model even when its tokenizer cannot be used; generate will refuse.
      note = e.message;
    }
  }
  const info = lmInfo(m, tok);
  console.log(flags.json ? JSON.stringify(info, null, 2) : formatLmInfo(m, info, note));
}

/** `sae lm`, ready to register on the program. */
export function lmCommand() {
  return new CommandGroup("lm")
    .description("language models: describe one (info) or sample a text corpus from it (generate)")
    .addCommand(makeLmInfoCommand().action(infoAction));
}
