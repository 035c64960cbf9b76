/**
 * A text corpus sampled from a model and written to a file (`sae lm generate`, and the corpus
 * `sae ablate --preset lm` trains on): {@link generate}'s documents decoded by the model's
 * tokenizer, as `.txt` (documents separated by a blank line) or `.jsonl` (one `{"text": ...}` per
 * line), written atomically, so a corpus file that exists is whole.
 *
 * @example
 * ```ts
 * import { writeCorpus } from "./corpus.ts";
 * await writeCorpus({
 *   model: "../shared/lm/stories260K/stories260K.bin",
 *   tokens: 20000,
 *   temperature: 1,
 *   seed: 1,
 *   batch: 64,
 *   out: "corpus.jsonl",
 * });
 * ```
 * @module
 */
import { extname } from "node:path";
import { UserError } from "../errors.ts";
import { getGpu, type Gpu } from "../gpu/device.ts";
import { atomicWrite } from "../run/atomic.ts";
import { checkOutputFile, writingTo } from "../run/output.ts";
import { GpuLm } from "./forward.ts";
import { generate, type GenerateOptions } from "./generate.ts";
import { loadModel } from "./load.ts";

/** Options of {@link writeCorpus}: the model, the sampling settings and the file. */
export interface CorpusOptions {
  /** A Hugging Face directory, a llama2.c `.bin` or a repo id. */
  model: string;
  /** Tokenizer file (default: the one beside the model). */
  tokenizer?: string;
  /** Stop once the documents hold this many tokens. */
  tokens: number;
  /** Softmax temperature (0: greedy). */
  temperature: number;
  seed: number;
  /** Sequences decoded in parallel (the draws depend on it). */
  batch: number;
  /** Longest document in tokens, BOS included (default: the model's context length). */
  context?: number;
  /** The file to write: `.txt` or `.jsonl`. */
  out: string;
  /** Flag named in messages about `out` (default "--out"). */
  flag?: string;
  /** The device (default: the process-wide one, announced). */
  gpu?: Gpu;
  onProgress?: GenerateOptions["onProgress"];
}

/** What {@link writeCorpus} wrote. */
export interface CorpusResult {
  documents: number;
  tokens: number;
  /** Decoding steps, each of `batch` sequences. */
  steps: number;
  seconds: number;
  /** Tokens decoded per second (unfinished documents included). */
  decodedPerSecond: number;
}

/**
 * Samples documents from the model until they hold `tokens` tokens and writes them to `out`.
 * The output path, the tokenizer and the context are checked before anything is sampled.
 */
export async function writeCorpus(opts: CorpusOptions): Promise<CorpusResult> {
  const flag = opts.flag ?? "--out";
  const ext = extname(opts.out).toLowerCase();
  if (ext !== ".txt" && ext !== ".jsonl") {
    throw new UserError(`${flag} '${opts.out}' must end in .txt or .jsonl`);
  }
  // Before the model is loaded and sampled from: a path that cannot be written is refused now.
  await checkOutputFile(opts.out, flag);
  const m = await loadModel(opts.model, { tokenizer: opts.tokenizer });
  const tok = m.tokenizer;
  if (!tok) {
    throw new UserError(
      `${m.source.path} has no tokenizer beside it: pass --tokenizer (tokenizer.json or tok.bin)`,
    );
  }
  const context = opts.context ?? m.config.maxSeq;
  if (context > m.config.maxSeq) {
    throw new UserError(
      `--context ${context} is longer than the model's ${m.config.maxSeq} (${m.config.source}): ` +
        `pass --context ${m.config.maxSeq} or less`,
    );
  }
  if (context < 2) throw new UserError(`--context must be at least 2 (BOS and one token)`);
  const lm = GpuLm.upload(opts.gpu ?? await getGpu({ announce: true }), m);
  let out;
  try {
    out = await generate(lm, {
      batch: opts.batch,
      tokens: opts.tokens,
      temperature: opts.temperature,
      seed: opts.seed,
      context,
      bos: tok.bos ?? undefined,
      eos: tok.eos ?? undefined,
      onProgress: opts.onProgress,
    });
  } finally {
    lm.destroy();
  }
  const texts = out.documents.map((d) => tok.decode(d));
  const body = ext === ".jsonl"
    ? texts.map((text) => JSON.stringify({ text }) + "\n").join("")
    : texts.map((t) => t.trim()).join("\n\n") + "\n";
  await writingTo(opts.out, flag, () => atomicWrite(opts.out, body));
  return {
    documents: texts.length,
    tokens: out.tokens,
    steps: out.steps,
    seconds: out.seconds,
    decodedPerSecond: (out.steps * opts.batch) / out.seconds,
  };
}
