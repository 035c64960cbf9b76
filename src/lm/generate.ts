/**
 * Batched text generation on the GPU: `batch` sequences decoded in parallel, one token per step
 * through the KV-cache decoding forward ({@link LmForward} with seq 1), the next token chosen on
 * the device (greedy at temperature 0, else a seeded draw: src/kernels/sample.ts), and each row
 * restarted from BOS when its document ends (EOS or BOS sampled) or fills the context
 * (src/kernels/generate.ts). A round of steps is one submission; the host reads the sampled ids
 * once per round and collects the finished documents.
 *
 * @example
 * ```ts
 * import { getGpu } from "../gpu/device.ts";
 * import { GpuLm } from "./forward.ts";
 * import { generate } from "./generate.ts";
 * import { loadModel } from "./load.ts";
 * const m = await loadModel("../shared/lm/stories260K/stories260K.bin");
 * const lm = GpuLm.upload(await getGpu(), m);
 * const { documents } = await generate(lm, { batch: 8, tokens: 2000, temperature: 1, seed: 1 });
 * console.log(m.tokenizer!.decode(documents[0]));
 * ```
 */
import { type Dispatch, encodeDispatches } from "../gpu/dispatch.ts";
import { advanceDispatches, type AdvanceSpec, splitDocuments } from "../kernels/generate.ts";
import { sampleDispatches } from "../kernels/sample.ts";
import { UserError } from "../errors.ts";
import { type GpuLm, LmForward } from "./forward.ts";

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** Sequences decoded in parallel. */
  batch: number;
  /** Stop once the finished documents hold at least this many tokens. */
  tokens: number;
  /** 0: greedy (every row then writes the same text); > 0: softmax(logits / temperature). */
  temperature: number;
  /** Seed of the draws (same seed, batch and settings: same documents). */
  seed: number;
  /** Longest document in tokens, BOS included (default: the model's context length). */
  context?: number;
  /** Decoding steps per submission (default 32). */
  stepsPerRound?: number;
  /** Id that starts each document (default: the model's BOS, else its EOS). */
  bos?: number;
  /** Id that ends a document (default: the model's EOS, else its BOS). */
  eos?: number;
  /**
   * Called after each round with the totals so far: tokens in finished documents, documents, and
   * tokens decoded (steps × batch, unfinished documents included).
   */
  onProgress?: (p: { tokens: number; documents: number; decoded: number; seconds: number }) => void;
}

/** What {@link generate} produced. */
export interface Generated {
  /** Finished documents' token ids, BOS and EOS left out, in the order they finished. */
  documents: number[][];
  /** Tokens in `documents`. */
  tokens: number;
  /** Decoding steps run (each decodes `batch` tokens). */
  steps: number;
  seconds: number;
}

/** Samples documents from the model until they hold `opts.tokens` tokens (see the module). */
export async function generate(lm: GpuLm, opts: GenerateOptions): Promise<Generated> {
  const cfg = lm.config, gpu = lm.gpu;
  const bos = opts.bos ?? cfg.bos ?? cfg.eos;
  const eos = opts.eos ?? cfg.eos ?? cfg.bos;
  if (bos === null || eos === null) {
    throw new UserError(
      `${cfg.source} names no BOS or EOS token (bos_token_id, eos_token_id): generation needs ` +
        `one to start and end documents`,
    );
  }
  if (!(opts.temperature >= 0)) {
    throw new UserError(`--temperature must be >= 0, got ${opts.temperature}`);
  }
  const batch = opts.batch, context = opts.context ?? cfg.maxSeq;
  const steps = opts.stepsPerRound ?? 32;
  const decode = await LmForward.build(lm, { batch, seq: 1, cacheLen: context });
  const own: GPUBuffer[] = [];
  const buf = (label: string, words: number) => {
    const b = gpu.buffer(label, words * 4);
    own.push(b);
    return b;
  };
  const next = buf("next", batch);
  const hist = buf("history", batch * steps);
  const count = buf("history count", batch);
  const params = opts.temperature > 0 ? buf("sample params", 2) : undefined;
  const spec: AdvanceSpec = { batch, steps, maxSeq: context, bos, eos };
  const step: Dispatch[] = [
    ...decode.dispatches,
    ...await sampleDispatches(gpu, {
      rows: batch,
      vocab: cfg.vocabSize,
      temperature: opts.temperature,
    }, { logits: decode.logits!, params, next }),
    ...await advanceDispatches(gpu, spec, {
      next,
      ids: decode.tokens,
      pos: decode.pos,
      hist,
      count,
      params,
    }),
  ];
  const round = Array.from({ length: steps }, () => step).flat();
  gpu.write(decode.tokens, new Uint32Array(batch).fill(bos));
  gpu.write(decode.pos, new Uint32Array(batch));
  if (params) gpu.write(params, new Uint32Array([opts.seed >>> 0, 0]));
  const open: number[][] = Array.from({ length: batch }, () => []);
  const documents: number[][] = [];
  let tokens = 0, rounds = 0, idle = 0;
  const t0 = performance.now();
  try {
    while (tokens < opts.tokens) {
      gpu.write(count, new Uint32Array(batch));
      const enc = gpu.device.createCommandEncoder();
      encodeDispatches(enc, round);
      gpu.submit([enc.finish()]);
      rounds++;
      const [h, c] = await gpu.readMany([{ buf: hist }, { buf: count }]);
      const u32 = (f: Float32Array) => new Uint32Array(f.buffer, f.byteOffset, f.length);
      const before = tokens;
      for (const doc of splitDocuments(spec, u32(h), u32(c), open)) {
        if (tokens >= opts.tokens) break;
        documents.push(doc);
        tokens += doc.length;
      }
      // A model that only ever ends documents at once would loop forever.
      idle = tokens > before ? 0 : idle + 1;
      if (idle * steps > 4 * context + 1024) {
        throw new UserError(
          `${cfg.source}: ${idle * steps} decoding steps gave no text (every document ended ` +
            `at once): check the model and its BOS/EOS ids`,
        );
      }
      opts.onProgress?.({
        tokens,
        documents: documents.length,
        decoded: rounds * steps * batch,
        seconds: (performance.now() - t0) / 1000,
      });
    }
  } finally {
    decode.destroy();
    for (const b of own) gpu.destroyBuffer(b);
  }
  return { documents, tokens, steps: rounds * steps, seconds: (performance.now() - t0) / 1000 };
}
