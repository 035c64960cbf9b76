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
import { writeCorpus } from "../lm/corpus.ts";
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
function lmInfo(m: LmModel, tokenizer: Tokenizer | null): LmInfo {
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
function formatLmInfo(m: LmModel, info: LmInfo, tokNote: string): string {
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
function makeLmInfoCommand() {
  return new Command("info")
    .description("print a model's family, sizes, dtype, parameter count, context length and hooks")
    .requiredOption(
      "--model <dir|file.bin|owner/name>",
      "Hugging Face model directory, llama2.c checkpoint, or Hugging Face repo id (required)",
    )
    .option("--tokenizer <file>", "tokenizer file (default: the one beside the model, if any)")
    .option("--json", "print the facts as JSON (default: text)");
}

/** A count with an optional k/M/G suffix (10^3, 10^6, 10^9): "2M" is 2000000. */
export function parseCount(raw: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)$/.exec(raw.trim());
  const mult = { "": 1, k: 1e3, m: 1e6, g: 1e9 }[m?.[2].toLowerCase() ?? ""] ?? 1;
  const v = m ? Number(m[1]) * mult : NaN;
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new UserError(
      `${flag} must be a positive whole number such as 20000 or 2M (got '${raw}')`,
    );
  }
  return v;
}

function nonNegative(raw: string, flag: string): number {
  const v = Number(raw);
  if (!(v >= 0) || !Number.isFinite(v)) {
    throw new UserError(`${flag} must be a number >= 0 (got '${raw}')`);
  }
  return v;
}

/** The `lm generate` command's options (no action attached). */
function makeLmGenerateCommand() {
  return new Command("generate")
    .description(
      "sample documents from a model on the GPU, batched, each from BOS until EOS or the context " +
        "is full, and write them as a text corpus",
    )
    .requiredOption(
      "--model <dir|file.bin|owner/name>",
      "Hugging Face model directory, llama2.c checkpoint, or Hugging Face repo id (required)",
    )
    .requiredOption(
      "--tokens <n>",
      "stop once the documents hold this many tokens: 20000, 2M (required)",
    )
    .requiredOption(
      "--out <file>",
      "corpus to write (required): .txt, documents separated by a blank line, or .jsonl, one " +
        '{"text": ...} per line',
    )
    .option("--tokenizer <file>", "tokenizer file (default: the one beside the model)")
    .option(
      "--temperature <t>",
      "softmax temperature; 0 is greedy, where every document is the same (default: 1)",
      "1",
    )
    .option("--seed <n>", "seed of the draws (default: 0)", "0")
    .option("--batch <n>", "sequences decoded in parallel (default: 64)", "64")
    .option("--context <n>", "longest document in tokens, BOS included (default: the model's)");
}

type GenerateFlags = ReturnType<ReturnType<typeof makeLmGenerateCommand>["opts"]>;

async function generateAction(flags: GenerateFlags) {
  const tokens = parseCount(flags.tokens, "--tokens");
  const temperature = nonNegative(flags.temperature, "--temperature");
  const seed = parseCount(String(Number(flags.seed) + 1), "--seed") - 1;
  const batch = parseCount(flags.batch, "--batch");
  const context = flags.context ? parseCount(flags.context, "--context") : undefined;
  const tty = Deno.stderr.isTerminal();
  let shown = 0;
  const out = await writeCorpus({
    model: flags.model,
    tokenizer: flags.tokenizer,
    tokens,
    temperature,
    seed,
    batch,
    context,
    out: flags.out,
    onProgress: (p) => {
      if (p.seconds - shown < 1 && p.tokens < tokens) return;
      shown = p.seconds;
      const line = `${p.tokens}/${tokens} tokens in ${p.documents} finished documents, ` +
        `${Math.round(p.decoded / Math.max(p.seconds, 1e-9))} tokens/s decoded`;
      Deno.stderr.writeSync(new TextEncoder().encode(tty ? `\r${line}` : `${line}\n`));
    },
  });
  if (tty) Deno.stderr.writeSync(new TextEncoder().encode("\n"));
  console.log(
    `wrote ${flags.out}: ${out.documents} documents, ${out.tokens} tokens (${out.steps} steps of ` +
      `${batch} sequences in ${out.seconds.toFixed(1)} s, ` +
      `${Math.round(out.decodedPerSecond)} tokens/s decoded)`,
  );
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
    .addCommand(makeLmInfoCommand().action(infoAction))
    .addCommand(makeLmGenerateCommand().action(generateAction));
}
