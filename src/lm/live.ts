/**
 * Live training (config `data: live`, `sae train --model DIR --hook H --text FILE...`): the SAE
 * trains on a language model's activations computed on the same device as the step, as SAELens'
 * ActivationsStore feeds its trainer, with no activation files.
 *
 * - Text is packed into contexts on the host exactly as for a harvest (src/lm/contexts.ts: BOS
 *   first, SAELens' packing), looping over the text; the next chunks are tokenized while the
 *   device works.
 * - Chunks of `lm_batch` contexts run through the model up to the hook (LmForward with
 *   stopAtHook); their activations, the BOS position left out, are scattered into a mixing buffer
 *   of `buffer_contexts` contexts on the device (src/kernels/mixing.ts), filled whole at the start
 *   and refilled half at a time when half of it has been served, new rows landing among old ones.
 * - Each batch is gathered from the buffer by a kernel, in a seeded random order, straight into
 *   the step's input buffer. Per batch only token ids go from the host to the device.
 * - A checkpoint holds the buffer's rows, its counters and the text position after the last
 *   context that went into it, so a resumed run continues with the very same batches.
 *
 * The log shows the model's tokens/s (over the time of the refills, measured with host clocks
 * around a drained queue) and the SAE's steps/s (the rest of the time), and which of the two takes
 * more of the run.
 *
 * @example
 * ```ts
 * import { LiveSource } from "./live.ts";
 * const src = await LiveSource.open({ ...cfg, data: "live", model: "stories260K.bin",
 *   hook_name: "blocks.2.hook_resid_pre", dataset_path: "corpus.jsonl", d_in: 64 });
 * await src.attach(gpu);
 * await src.nextBatchOnDevice(session.bufs.x, cfg.batch);
 * ```
 * @module
 */
import { basename, delimiter } from "node:path";
import type { CoreConfig } from "../config_core.ts";
import type { DeviceSource, SourceReport } from "../data/source.ts";
import { UserError } from "../errors.ts";
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, run } from "../gpu/dispatch.ts";
import {
  advanceDispatches,
  gatherDispatches,
  MixingCounters,
  type MixingSpec,
  scatterDispatches,
} from "../kernels/mixing.ts";
import { f32Tensor, type Tensor, tensorToF32 } from "../run/safetensors.ts";
import { type ContextState, ContextStream } from "./contexts.ts";
import { GpuLm, LmForward } from "./forward.ts";
import { sha256File } from "./harvest.ts";
import { parseHook } from "./hooks.ts";
import { type LmModel, loadModel, modelName, resolveModel } from "./load.ts";
import { endOfTextMarkers, inspectText, type TextSource } from "./text.ts";
import type { Tokenizer } from "./tokenizer.ts";
import { llama2cConfig, parseHfConfig } from "./config.ts";

/** The value of the config key `data` that selects live training. */
export const LIVE_DATA = "live";

/** The name of the buffer's rows in a checkpoint. */
const BUFFER_TENSOR = "source.mixing_buffer";

/** The text files a `dataset_path` names (separated as PATH separates directories). */
export function textFiles(datasetPath: string): string[] {
  return datasetPath.split(delimiter).filter((p) => p !== "");
}

/** `dataset_path` for text files: joined as PATH joins directories. */
export function datasetPath(files: string[]): string {
  const bad = files.find((f) => f.includes(delimiter));
  if (bad !== undefined) {
    throw new UserError(
      `text file '${bad}' has '${delimiter}' in its name, which separates the files of dataset_path: rename it`,
    );
  }
  return files.join(delimiter);
}

/** A live run's settings, from its config. */
export interface LiveSettings {
  model: string;
  tokenizer: string | null;
  hook: string;
  text: string[];
  /** Tokens per context, BOS included. */
  context: number;
  /** Contexts per forward pass. */
  lmBatch: number;
  /** Contexts the mixing buffer holds. */
  bufferContexts: number;
}

/** The live settings of `cfg`, with every check that needs no file (one-line UserErrors). */
export function liveSettings(cfg: CoreConfig): LiveSettings {
  if (cfg.model === "") {
    throw new UserError(`data '${LIVE_DATA}' trains on a language model: pass --model DIR`);
  }
  if (cfg.hook_name === "") {
    throw new UserError(
      "live training needs the hook to read: pass --hook NAME, e.g. blocks.2.hook_resid_pre",
    );
  }
  const text = textFiles(cfg.dataset_path);
  if (text.length === 0) {
    throw new UserError("live training needs text: pass --text FILE... (.txt, .jsonl, .parquet)");
  }
  if (!cfg.prepend_bos) {
    throw new UserError(
      "prepend_bos false is not supported: live contexts always begin with BOS (SAELens' " +
        "default); set prepend_bos true",
    );
  }
  const { lm_batch: lb, buffer_contexts: bc, context_size: C, batch: B } = cfg;
  if (bc % (2 * lb) !== 0) {
    throw new UserError(
      `--buffer-contexts ${bc} must be a multiple of 2 × --lm-batch ${lb} = ${2 * lb} ` +
        `(the buffer is refilled half at a time, in whole forward passes): pass ` +
        `${Math.max(1, Math.round(bc / (2 * lb))) * 2 * lb}`,
    );
  }
  const half = (bc / 2) * (C - 1);
  if (B > half) {
    throw new UserError(
      `a batch of ${B} rows is more than half the mixing buffer (${bc} contexts × ${C - 1} ` +
        `rows / 2 = ${half}): pass --buffer-contexts ${
          Math.ceil((2 * B) / (C - 1) / (2 * lb)) * 2 * lb
        } or more`,
    );
  }
  return {
    model: cfg.model,
    tokenizer: cfg.tokenizer === "" ? null : cfg.tokenizer,
    hook: cfg.hook_name,
    text,
    context: C,
    lmBatch: lb,
    bufferContexts: bc,
  };
}

/**
 * The width of a model's hooks (d_model) and its name for `model_name`, read from its config
 * alone (config.json, or a llama2.c checkpoint's header): what `sae train --model` needs before
 * any weight is read.
 */
export async function modelWidth(spec: string): Promise<{ dModel: number; name: string }> {
  const source = await resolveModel(spec);
  if (source.format === "hf") {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(await Deno.readTextFile(source.configFile));
    } catch (e) {
      throw new UserError(`${source.configFile}: not valid JSON (${(e as Error).message})`);
    }
    return { dModel: parseHfConfig(json, source.configFile).dModel, name: modelName(source) };
  }
  const f = await Deno.open(source.path);
  const head = new Uint8Array(28);
  try {
    await f.read(head);
  } finally {
    f.close();
  }
  const header = new Int32Array(head.buffer).slice(0, 7);
  return { dModel: llama2cConfig(header, source.path).dModel, name: modelName(source) };
}

/** Contexts packed ahead of their forward pass, with the stream's state after them. */
interface Chunk {
  /** [lmBatch, context] token ids. */
  tokens: Uint32Array;
  state: ContextState;
}

/** What a checkpoint's `meta.source` holds for a live run. */
interface LiveState {
  kind: "live";
  version: 1;
  model: string;
  hook: string;
  dIn: number;
  context: number;
  lmBatch: number;
  bufferContexts: number;
  seed: number;
  /** The buffer's counters: serve round, serve position, fill round, fill position. */
  counters: number[];
  /** The text position after the last context that went into the buffer. */
  text: ContextState | null;
}

/** The device's part of a live source, made by {@link LiveSource.attach}. */
interface OnDevice {
  gpu: Gpu;
  lm: GpuLm;
  fwd: LmForward;
  /** [N, d] f32, the mixing buffer. */
  buf: GPUBuffer;
  /** u32 [4], its counters. */
  st: GPUBuffer;
  /** One chunk: the forward pass, the scatter into the buffer, the fill counter's advance. */
  fill: Dispatch[];
  /** Gathers by destination buffer and row count. */
  plans: Map<GPUBuffer, Map<number, ServePlan>>;
  /** Host-read batches: a device buffer per row count. */
  staging: Map<number, GPUBuffer>;
}

/** The dispatches serving `rows` rows into one buffer. */
interface ServePlan {
  part0: Dispatch[];
  part1: Dispatch[];
  advance: Dispatch[];
}

/** Times of the source's work (host clocks, milliseconds). */
interface Clocks {
  /** When the first device batch was asked for (the training loop's start), or null. */
  start: number | null;
  /** Device batches since `start`. */
  batches: number;
  /** Refill time (forward passes and scatters, queue drained before and after) since `start`. */
  lmMs: number;
  /** Host time waiting for tokenization since `start`. */
  textMs: number;
  /** Over the whole run (the initial fill included): tokens through the model and their time. */
  tokensAll: number;
  lmMsAll: number;
}

/** The live language model as an activation source on the device (see the module doc). */
export class LiveSource implements DeviceSource {
  readonly dIn: number;
  readonly description: string;
  readonly settings: LiveSettings;
  private model: LmModel | null;
  private readonly tokenizer: Tokenizer;
  private readonly sources: TextSource[];
  private readonly tokenizerSha256: string | null;
  private readonly spec: MixingSpec;
  private readonly counters: MixingCounters;
  private stream: ContextStream;
  /** Text state after the last context that went into the buffer. */
  private consumed: ContextState | null = null;
  /** Chunks being packed, in order (each a promise chained after the one before). */
  private ahead: Promise<Chunk>[] = [];
  private dev: OnDevice | null = null;
  private readonly clocks: Clocks = {
    start: null,
    batches: 0,
    lmMs: 0,
    textMs: 0,
    tokensAll: 0,
    lmMsAll: 0,
  };

  private constructor(
    settings: LiveSettings,
    model: LmModel,
    tokenizer: Tokenizer,
    sources: TextSource[],
    tokenizerSha256: string | null,
    seed: number,
  ) {
    this.settings = settings;
    this.model = model;
    this.tokenizer = tokenizer;
    this.sources = sources;
    this.tokenizerSha256 = tokenizerSha256;
    this.dIn = model.config.dModel;
    const N = settings.bufferContexts * (settings.context - 1);
    this.spec = { rows: N, dim: this.dIn, seed };
    this.counters = new MixingCounters(N);
    this.stream = this.openStream(undefined);
    this.description = `live(${modelName(model.source)} ${settings.hook}, ${
      settings.text.map((t) => basename(t)).join(", ")
    }, buffer ${settings.bufferContexts} contexts)`;
  }

  /**
   * Loads the model (weights on the host until {@link LiveSource.attach}) and its tokenizer and
   * reads the text once, checking what can be checked before training: the hook, d_in against
   * the hook's width, the tokenizer against the vocabulary, the context against the model's.
   */
  static async open(cfg: CoreConfig): Promise<LiveSource> {
    const s = liveSettings(cfg);
    const model = await loadModel(s.model, { tokenizer: s.tokenizer ?? undefined });
    const mc = model.config;
    parseHook(s.hook, mc);
    if (cfg.d_in !== mc.dModel) {
      throw new UserError(
        `d_in is ${cfg.d_in} but ${s.hook} of ${modelName(model.source)} is ${mc.dModel} wide: ` +
          `leave --d-in out or pass --d-in ${mc.dModel}`,
      );
    }
    if (s.context > mc.maxSeq) {
      throw new UserError(
        `a context of ${s.context} tokens is longer than the model's ${mc.maxSeq} ` +
          `(${mc.source}): pass --context ${mc.maxSeq} or less`,
      );
    }
    const tok = model.tokenizer;
    if (!tok) {
      throw new UserError(
        `${model.source.path} has no tokenizer beside it: pass --tokenizer (tokenizer.json or tok.bin)`,
      );
    }
    const sources = await inspectText(s.text, { markers: endOfTextMarkers(tok) });
    const sha = model.source.tokenizerFile ? await sha256File(model.source.tokenizerFile) : null;
    return new LiveSource(s, model, tok, sources, sha, cfg.seed);
  }

  private openStream(from: ContextState | undefined): ContextStream {
    return ContextStream.open({
      sources: this.sources,
      tokenizer: this.tokenizer,
      context: this.settings.context,
      loop: true,
      tokenizerSha256: this.tokenizerSha256 ?? undefined,
      from,
    });
  }

  /** Uploads the weights, allocates the buffer and builds every dispatch, once. */
  async attach(gpu: Gpu): Promise<void> {
    if (this.dev) throw new Error("live source: attached twice");
    const { lmBatch, context: C, hook } = this.settings;
    const bytes = this.spec.rows * this.dIn * 4;
    if (bytes > gpu.maxBinding) {
      throw new UserError(
        `the mixing buffer of ${this.settings.bufferContexts} contexts needs ${
          (bytes / 2 ** 20).toFixed(1)
        } MiB, over this adapter's storage-binding limit of ${
          (gpu.maxBinding / 2 ** 20).toFixed(1)
        } MiB: pass a smaller --buffer-contexts`,
      );
    }
    const lm = GpuLm.upload(gpu, this.model!);
    this.model = null;
    const fwd = await LmForward.build(lm, {
      batch: lmBatch,
      seq: C,
      hooks: [hook],
      stopAtHook: true,
    });
    const buf = gpu.buffer("mixing buffer", bytes);
    const st = gpu.upload("mixing counters", this.counters.words());
    const fill = [
      ...fwd.dispatches,
      ...await scatterDispatches(gpu, this.spec, { contexts: lmBatch, seq: C }, {
        act: fwd.hooks[hook],
        st,
        buf,
      }),
      ...await advanceDispatches(gpu, this.spec, { serve: 0, fill: lmBatch * (C - 1) }, { st }),
    ];
    this.dev = { gpu, lm, fwd, buf, st, fill, plans: new Map(), staging: new Map() };
  }

  private device(): OnDevice {
    if (!this.dev) throw new Error("live source: not attached to a device");
    return this.dev;
  }

  /** The next rows into `out` ([rows, dIn] f32), read back from the device. */
  async nextBatch(out: Float32Array): Promise<void> {
    const dev = this.device();
    const rows = out.length / this.dIn;
    let x = dev.staging.get(rows);
    if (!x) {
      x = dev.gpu.buffer(`live batch ${rows}`, rows * this.dIn * 4);
      dev.staging.set(rows, x);
    }
    await this.serve(x, rows);
    out.set(await dev.gpu.read(x, rows * this.dIn * 4));
  }

  /** Leaves the next `rows` rows in `x` ([rows, dIn] f32); the first call starts the clocks. */
  async nextBatchOnDevice(x: GPUBuffer, rows: number): Promise<void> {
    const c = this.clocks;
    if (c.start === null) {
      c.start = performance.now();
      c.lmMs = c.textMs = 0;
    }
    await this.serve(x, rows);
    c.batches++;
  }

  /** Submits the gathers (and any refill due) that leave the next `rows` rows in `x`. */
  private async serve(x: GPUBuffer, rows: number): Promise<void> {
    const dev = this.device(), c = this.counters;
    const plan = await this.plan(x, rows);
    while (c.fillDue) await this.fillRound();
    if (!c.straddles(rows)) run(dev.gpu, [...plan.part0, ...plan.advance]);
    else {
      run(dev.gpu, plan.part0);
      await this.fillRound();
      run(dev.gpu, [...plan.part1, ...plan.advance]);
    }
    c.advance(rows, 0);
  }

  private async plan(x: GPUBuffer, rows: number): Promise<ServePlan> {
    const dev = this.device();
    let byRows = dev.plans.get(x);
    if (!byRows) dev.plans.set(x, byRows = new Map());
    let p = byRows.get(rows);
    if (!p) {
      const bufs = { buf: dev.buf, st: dev.st, x };
      p = {
        part0: await gatherDispatches(dev.gpu, this.spec, { rows, part: 0 }, bufs),
        part1: await gatherDispatches(dev.gpu, this.spec, { rows, part: 1 }, bufs),
        advance: await advanceDispatches(dev.gpu, this.spec, { serve: rows, fill: 0 }, bufs),
      };
      byRows.set(rows, p);
    }
    return p;
  }

  /**
   * One fill round: the whole buffer (the first) or the half just served, a forward pass per
   * chunk of contexts; tokenization of the next chunks overlaps the device's work.
   */
  private async fillRound(): Promise<void> {
    const dev = this.device(), c = this.counters;
    const { lmBatch, context: C, bufferContexts } = this.settings;
    const per = lmBatch * (C - 1);
    const chunks = c.fillSize / per;
    const first = c.fillRound === 0;
    await dev.gpu.sync();
    const t0 = performance.now();
    let waited = 0;
    for (let k = 0; k < chunks; k++) {
      this.packAhead(Math.min(2, chunks - k));
      const tw = performance.now();
      const chunk = await this.ahead.shift()!;
      waited += performance.now() - tw;
      if (first && chunk.state.next !== null && chunk.state.next.epoch > 0) {
        throw new UserError(
          `the text (${this.settings.text.join(", ")}) holds fewer than the ${bufferContexts} ` +
            `contexts of ${C} tokens the mixing buffer holds: give more text or a smaller ` +
            `--buffer-contexts`,
        );
      }
      dev.gpu.write(dev.fwd.tokens, chunk.tokens);
      run(dev.gpu, dev.fill);
      c.advance(0, per);
      this.consumed = chunk.state;
    }
    await dev.gpu.sync();
    // The next round's contexts are packed while the SAE trains on this one.
    this.packAhead(this.counters.half / per);
    const ms = performance.now() - t0 - waited;
    const k = this.clocks;
    k.lmMs += ms;
    k.textMs += waited;
    k.lmMsAll += ms;
    k.tokensAll += chunks * lmBatch * C;
  }

  /** Starts packing chunks until `n` are queued. */
  private packAhead(n: number): void {
    while (this.ahead.length < n) {
      const before = this.ahead[this.ahead.length - 1] ?? Promise.resolve(null);
      const stream = this.stream;
      const next = before.then(async () => {
        const b = await stream.next(this.settings.lmBatch);
        // With `loop` the stream never ends: every batch is whole.
        if (b === null || b.n !== this.settings.lmBatch) {
          throw new Error("live: the text stream ended");
        }
        return { tokens: Uint32Array.from(b.tokens), state: stream.state() };
      });
      next.catch(() => {}); // awaited where used; one never used must not be reported unhandled
      this.ahead.push(next);
    }
  }

  /** The counters, the settings they depend on and the text position (JSON). */
  state(): LiveState {
    const s = this.settings;
    return {
      kind: "live",
      version: 1,
      model: s.model,
      hook: s.hook,
      dIn: this.dIn,
      context: s.context,
      lmBatch: s.lmBatch,
      bufferContexts: s.bufferContexts,
      seed: this.spec.seed,
      counters: Array.from(this.counters.words()),
      text: this.consumed,
    };
  }

  /** The buffer's rows, read back: `source.mixing_buffer` [N, dIn] f32. */
  async checkpointTensors(): Promise<Record<string, Tensor>> {
    const dev = this.device();
    const rows = await dev.gpu.read(dev.buf, this.spec.rows * this.dIn * 4);
    return { [BUFFER_TENSOR]: f32Tensor([this.spec.rows, this.dIn], rows) };
  }

  /** Restores the buffer, its counters and the text position of a checkpoint. */
  restore(state: unknown, tensors?: Record<string, Tensor>): void {
    const dev = this.device();
    const s = state as Partial<LiveState> | null;
    if (s?.kind !== "live" || s.version !== 1 || !Array.isArray(s.counters)) {
      throw new UserError(
        "cannot resume: the checkpoint's data state is not a live run's (it was made by a run on other data)",
      );
    }
    const now = this.state();
    for (const k of ["hook", "dIn", "context", "lmBatch", "bufferContexts", "seed"] as const) {
      if (s[k] !== now[k]) {
        throw new UserError(
          `cannot resume: the run used ${k} ${JSON.stringify(s[k])} but now ${
            JSON.stringify(now[k])
          } is given; resume with the run's settings`,
        );
      }
    }
    const t = tensors?.[BUFFER_TENSOR];
    const words = s.counters;
    if (
      !t || t.shape.join() !== `${this.spec.rows},${this.dIn}` || words.length !== 4 ||
      !words.every((w) => Number.isInteger(w) && w >= 0)
    ) {
      throw new UserError(
        `cannot resume: the checkpoint lacks the mixing buffer (${BUFFER_TENSOR} [${this.spec.rows}, ${this.dIn}]) or its counters; it is damaged`,
      );
    }
    if (this.ahead.length > 0) throw new Error("live source: restored after packing began");
    const c = this.counters;
    this.stream = this.openStream(s.text ?? undefined);
    this.consumed = s.text ?? null;
    [c.serveRound, c.servePos, c.fillRound, c.fillPos] = words;
    dev.gpu.write(dev.buf, tensorToF32(t));
    dev.gpu.write(dev.st, this.counters.words());
  }

  /**
   * The model's tokens/s over all refills, the SAE's steps/s over the rest of the time since the
   * first device batch, the share of that time spent on refills and which side bounds the run;
   * null before the first device batch.
   */
  report(): SourceReport | null {
    const k = this.clocks;
    if (k.start === null || k.lmMsAll === 0) return null;
    const wall = performance.now() - k.start;
    const lmSide = k.lmMs + k.textMs;
    const sae = Math.max(wall - lmSide, 1e-6);
    const tokensPerS = k.tokensAll / (k.lmMsAll / 1000);
    const stepsPerS = k.batches / (sae / 1000);
    const share = lmSide / Math.max(wall, 1e-6);
    const bound = share > 0.5 ? "lm" : "sae";
    return {
      fields: {
        lm_tokens_per_s: Math.round(tokensPerS),
        sae_steps_per_s: Number(stepsPerS.toFixed(2)),
        lm_time_share: Number(share.toFixed(3)),
        bound,
      },
      line: `LM ${Math.round(tokensPerS).toLocaleString("en-US")} tok/s (${
        (100 * share).toFixed(0)
      }% of the time) | SAE ${stepsPerS.toFixed(1)} steps/s | ${
        bound === "lm" ? "LM" : "SAE"
      }-bound`,
    };
  }

  /** Waits for the chunks being packed and frees the device's buffers. */
  async close(): Promise<void> {
    await Promise.allSettled(this.ahead);
    this.ahead = [];
    const dev = this.dev;
    if (!dev) return;
    this.dev = null;
    dev.fwd.destroy();
    dev.lm.destroy();
    dev.gpu.destroyBuffer(dev.buf);
    dev.gpu.destroyBuffer(dev.st);
    for (const b of dev.staging.values()) dev.gpu.destroyBuffer(b);
  }
}
