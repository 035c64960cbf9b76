/**
 * Contexts for a language model: documents tokenized and packed into rows of `context` tokens
 * that each begin with BOS, by the rule SAELens applies with `prepend_bos=True` and its default
 * `sequence_separator_token="bos"` (sae_lens/tokenization_and_batching.py,
 * `concat_and_batch_sequences`, called by `ActivationsStore._iterate_tokenized_sequences` with
 * `begin_batch_token_id=bos`, `begin_sequence_token_id=None`, `sequence_separator_token_id=bos`):
 *
 * - documents are tokenized without BOS and concatenated in order;
 * - each context starts with BOS unless its first token already is BOS;
 * - where a document starts inside a context, BOS is inserted before it as a separator unless
 *   the document's first token already is BOS (when that separator is the context's last
 *   token, the document starts the next context);
 * - a document that does not fit continues in the next context (behind that context's BOS);
 * - the leftover tail when the text ends, shorter than a context, is dropped.
 *
 * docs/lm.md ("Contexts") states the rule with an example. The pieces of one over-long document
 * (src/lm/text.ts) are joined with no separator, as one document.
 *
 * The stream is deterministic and resumable: {@link ContextStream.state} is a small JSON object
 * (the text's identity, and the file, document, piece and token the next context starts at), and
 * a stream opened from it produces exactly the contexts the original would have produced next.
 *
 * @example
 * ```ts
 * import { ContextStream } from "./contexts.ts";
 * const stream = ContextStream.open({ sources, tokenizer, context: 128 });
 * const batch = await stream.next(8); // { tokens: Int32Array [n, 128], n } or null at the end
 * const saved = stream.state();       // JSON: reopen with { ..., from: saved }
 * ```
 * @module
 */

import { UserError } from "../errors.ts";
import { Rng } from "../rng.ts";
import type { Tokenizer } from "./tokenizer.ts";
import { readFilePieces, type TextOptions, type TextPosition, type TextSource } from "./text.ts";

/** Options of {@link ContextStream.open}. */
export interface ContextOptions {
  /** The text, as {@link inspectText} checked it. */
  sources: TextSource[];
  /** Encodes the documents; its BOS begins every context and separates documents. */
  tokenizer: Tokenizer;
  /** Tokens per context, BOS included (at least 2). */
  context: number;
  /** Start again from the first file when the text ends (a live training run); default false. */
  loop?: boolean;
  /**
   * Order of the files: omitted, the order given (every pass); a number, a permutation of the
   * files drawn from this seed for each pass (the documents inside a file keep their order).
   */
  shuffleSeed?: number;
  /** SHA-256 of the tokenizer's file, recorded in the state and checked on resume. */
  tokenizerSha256?: string;
  /** Piece size and read chunk size (src/lm/text.ts). Must be the same when resuming. */
  text?: TextOptions;
  /** Resume from a {@link ContextStream.state}. */
  from?: ContextState;
}

/** Where the next context starts: a piece of text, how many of its tokens are used, the pass. */
export interface ContextPosition extends TextPosition {
  /** Tokens of the piece already packed into earlier contexts. */
  token: number;
  /** Completed passes over the text. */
  epoch: number;
}

/** JSON-serialisable state of a {@link ContextStream}. */
export interface ContextState {
  kind: "contexts";
  version: 1;
  /** What the stream packs; all must match on resume. */
  context: number;
  bos: number;
  tokenizer: string;
  tokenizerSha256: string | null;
  text: { path: string; sha256: string }[];
  shuffleSeed: number | null;
  maxChars: number | null;
  chunkBytes: number | null;
  /** Where the next context starts; null before the first. */
  next: ContextPosition | null;
  /** Contexts produced so far. */
  contexts: number;
  /** Whether the text has ended (without `loop`): no further context will come. */
  done: boolean;
}

/** A batch of contexts. */
export interface ContextBatch {
  /** Token ids: [n, context] int32, row-major. */
  tokens: Int32Array;
  /** Number of contexts (fewer than asked only where the text ended). */
  n: number;
}

interface Packed {
  tokens: Int32Array; // [context]
  after: ContextPosition;
}

/** Documents packed into contexts; see the module doc for the rule. */
export class ContextStream {
  /** Tokens per context. */
  readonly context: number;
  /** The BOS id beginning each context. */
  readonly bos: number;

  private readonly opts: ContextOptions;
  private readonly gen: AsyncGenerator<Packed>;
  private position: ContextPosition | null;
  private produced: number;
  private ended = false;

  private constructor(opts: ContextOptions, bos: number) {
    this.opts = opts;
    this.context = opts.context;
    this.bos = bos;
    this.position = opts.from?.next ?? null;
    this.produced = opts.from?.contexts ?? 0;
    this.ended = opts.from?.done ?? false;
    this.gen = this.pack(this.position);
  }

  /**
   * A stream over `opts.sources`, or resumed from `opts.from` after checking that it was made
   * from the same text, tokenizer and settings.
   */
  static open(opts: ContextOptions): ContextStream {
    const { context, tokenizer } = opts;
    if (!Number.isInteger(context) || context < 2) {
      throw new UserError(
        `context ${context} is too short: a context needs BOS and at least one token (pass --context 2 or more)`,
      );
    }
    if (tokenizer.bos === null) {
      throw new UserError(
        `tokenizer ${tokenizer.name} names no BOS token, which every context begins with; give bos_token in tokenizer_config.json`,
      );
    }
    if (opts.sources.length === 0) throw new UserError("no text files given; pass --text FILE...");
    if (opts.from !== undefined) checkState(opts.from, opts, tokenizer.bos);
    return new ContextStream(opts, tokenizer.bos);
  }

  /** Up to `n` next contexts, or null when the text has ended (never with `loop`). */
  async next(n: number): Promise<ContextBatch | null> {
    const C = this.context;
    const tokens = new Int32Array(n * C);
    let got = 0;
    while (got < n && !this.ended) {
      const r = await this.gen.next();
      if (r.done) {
        this.ended = true;
        break;
      }
      tokens.set(r.value.tokens, got * C);
      this.position = r.value.after;
      this.produced++;
      got++;
    }
    if (got === 0) return null;
    return { tokens: got === n ? tokens : tokens.slice(0, got * C), n: got };
  }

  /** The state after the last context returned. */
  state(): ContextState {
    const { sources, tokenizer, shuffleSeed, tokenizerSha256, text } = this.opts;
    return {
      kind: "contexts",
      version: 1,
      context: this.context,
      bos: this.bos,
      tokenizer: tokenizer.name,
      tokenizerSha256: tokenizerSha256 ?? null,
      text: sources.map((s) => ({ path: s.path, sha256: s.sha256 })),
      shuffleSeed: shuffleSeed ?? null,
      maxChars: text?.maxChars ?? null,
      chunkBytes: text?.chunkBytes ?? null,
      next: this.position === null ? null : { ...this.position },
      contexts: this.produced,
      done: this.ended,
    };
  }

  /** Contexts produced so far (including those before a resume). */
  get contexts(): number {
    return this.produced;
  }

  private async *pack(from: ContextPosition | null): AsyncGenerator<Packed> {
    const { sources, tokenizer, loop, shuffleSeed } = this.opts;
    const C = this.context;
    const bos = this.bos;
    const sep = bos;
    let epoch = from?.epoch ?? 0;
    let resumeAt = from;
    for (;;) {
      const order = fileOrder(sources.length, shuffleSeed, epoch);
      let rank = 0;
      if (resumeAt !== null) {
        rank = order.indexOf(resumeAt.file);
        if (rank < 0) throw new UserError("the saved context position names a file the text lacks");
      }
      let produced = 0;
      // The context being filled: its first `fill` tokens.
      const batch = new Int32Array(C);
      let fill = 0;
      for (; rank < order.length; rank++) {
        const f = order[rank];
        const at = resumeAt !== null && resumeAt.file === f ? resumeAt : null;
        let skip = at?.token ?? 0;
        for await (const piece of readFilePieces(sources, f, at, this.opts.text)) {
          const ids = tokenizer.encode(piece.text);
          const startOfDocument = piece.at.piece === 0;
          let offset = skip;
          skip = 0;
          while (ids.length - offset > 0) {
            if (fill === 0) {
              // A new context: BOS first unless the text already starts with it.
              if (ids[offset] !== bos) batch[fill++] = bos;
            } else if (startOfDocument && offset === 0 && ids[0] !== sep) {
              // A document starting inside a context: the separator first.
              batch[fill++] = sep;
            }
            const take = Math.min(C - fill, ids.length - offset);
            for (let k = 0; k < take; k++) batch[fill + k] = ids[offset + k];
            fill += take;
            offset += take;
            if (fill === C) {
              produced++;
              yield {
                tokens: batch.slice(),
                after: { ...piece.at, token: offset, epoch },
              };
              fill = 0;
            }
          }
        }
        resumeAt = null;
      }
      // The tail shorter than a context is dropped, as SAELens drops it.
      if (!loop) return;
      if (produced === 0 && from === null) {
        throw new UserError(
          `the text (${
            sources.map((s) => s.path).join(", ")
          }) is shorter than one context of ${C} tokens; give more text or a shorter --context`,
        );
      }
      from = null;
      epoch++;
    }
  }
}

/** The order files are read in during pass `epoch`. */
export function fileOrder(n: number, seed: number | undefined, epoch: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  if (seed === undefined) return order;
  const rng = new Rng((seed ^ Math.imul(epoch + 1, 0x9e3779b9)) >>> 0);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** Checks a saved state against the options it is resumed with. */
function checkState(s: ContextState, opts: ContextOptions, bos: number): void {
  if (s === null || typeof s !== "object" || s.kind !== "contexts" || s.version !== 1) {
    throw new UserError(
      "the saved text position is not a context-stream state; the file is damaged",
    );
  }
  const differs = (what: string, was: unknown, now: unknown) => {
    throw new UserError(
      `cannot resume: the run used ${what} ${JSON.stringify(was)} but now ${
        JSON.stringify(now)
      } is given; resume with the same settings`,
    );
  };
  if (s.context !== opts.context) differs("context", s.context, opts.context);
  if (s.bos !== bos) differs("BOS id", s.bos, bos);
  if (s.tokenizer !== opts.tokenizer.name) differs("tokenizer", s.tokenizer, opts.tokenizer.name);
  const sha = opts.tokenizerSha256 ?? null;
  if (s.tokenizerSha256 !== null && sha !== null && s.tokenizerSha256 !== sha) {
    differs("a tokenizer file with SHA-256", s.tokenizerSha256, sha);
  }
  if ((s.shuffleSeed ?? null) !== (opts.shuffleSeed ?? null)) {
    differs("file shuffle seed", s.shuffleSeed, opts.shuffleSeed ?? null);
  }
  if ((s.maxChars ?? null) !== (opts.text?.maxChars ?? null)) {
    differs("piece size", s.maxChars, opts.text?.maxChars ?? null);
  }
  if ((s.chunkBytes ?? null) !== (opts.text?.chunkBytes ?? null)) {
    differs("read chunk size", s.chunkBytes, opts.text?.chunkBytes ?? null);
  }
  const was = Array.isArray(s.text) ? s.text : [];
  const now = opts.sources;
  if (was.length !== now.length) {
    throw new UserError(
      `cannot resume: the run read ${was.length} text file(s) but ${now.length} are given; pass the same --text files in the same order`,
    );
  }
  for (let i = 0; i < now.length; i++) {
    if (was[i]?.sha256 !== now[i].sha256) {
      throw new UserError(
        `cannot resume: text file ${i + 1} (${now[i].path}) is not the one the run read (${
          was[i]?.path
        }, SHA-256 ${String(was[i]?.sha256).slice(0, 12)}…, now ${
          now[i].sha256.slice(0, 12)
        }…); pass the same --text files in the same order`,
      );
    }
  }
  const p = s.next;
  if (p !== null) {
    const ints = [p?.file, p?.doc, p?.offset, p?.piece, p?.token, p?.epoch];
    if (!ints.every((v) => Number.isInteger(v) && (v as number) >= 0) || p.file >= now.length) {
      throw new UserError("the saved text position is out of range; the file is damaged");
    }
    if (now[p.file].format !== "parquet" && p.offset > now[p.file].bytes) {
      throw new UserError(
        "the saved text position is past the end of its file; the file is damaged",
      );
    }
  }
  if (!Number.isInteger(s.contexts) || s.contexts < 0 || typeof s.done !== "boolean") {
    throw new UserError("the saved context count is damaged");
  }
}
