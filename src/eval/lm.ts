/**
 * SAEBench's core evaluation with the language model (`sae eval RUN --model DIR --text FILE`):
 * for each batch of contexts three forward passes on the GPU, clean, with the hook's activations
 * replaced by the SAE's reconstruction, and with them replaced by zeros; per token KL(p_clean ‖ p)
 * and next-token cross-entropy; means over every kept token; the KL-divergence and CE-loss scores
 * from those means; and the core reconstruction metrics (src/eval/core.ts) on the same tokens.
 * Definitions and sources: docs/metrics.md ("With the language model").
 *
 * The splice runs inside the model's forward pass (src/lm/forward.ts's Splice): the hook's
 * activations are copied into the SAE's input, the SAE's own GPU forward pass runs on them (the
 * dispatches of {@link SaeForward}, so its encoder, thresholds and input scale are the run's),
 * and x̂ / scale replaces the activations of the kept tokens in place. The three passes share
 * one set of buffers and go to the GPU as one command buffer per batch; the host writes token ids
 * and masks and reads back per-token losses and the rows the core metrics need.
 *
 * @example
 * ```ts
 * import { evaluateLmRun } from "./lm.ts";
 * const report = await evaluateLmRun("runs/demo", {
 *   model: "../shared/lm/stories260K/stories260K.bin",
 *   text: ["../shared/lm/text/tinystories-sample.txt"],
 *   out: "runs/demo/eval.json",
 * });
 * report.lm!.kl_div_score;
 * ```
 * @module
 */
import { basename, join } from "node:path";
import { UserError } from "../errors.ts";
import { getGpu, type Gpu } from "../gpu/device.ts";
import { type Dispatch, encodeDispatches } from "../gpu/dispatch.ts";
import {
  crossEntropyDispatches,
  crossEntropyReference,
  klDispatches,
  klReference,
  logitStatsDispatches,
} from "../kernels/logits.ts";
import { copyRowsDispatches } from "../kernels/rows.ts";
import { spliceOutDispatches, zeroDispatches } from "../kernels/splice.ts";
import { ContextStream } from "../lm/contexts.ts";
import { GpuLm, LmForward } from "../lm/forward.ts";
import { parseHook } from "../lm/hooks.ts";
import { type LmModel, loadModel, modelName } from "../lm/load.ts";
import { referenceForward } from "../lm/reference.ts";
import { endOfTextMarkers, inspectText } from "../lm/text.ts";
import { encodeInto } from "../sae/encode.ts";
import { type LoadedSae, loadSae } from "../sae/load.ts";
import { CoreAccumulator } from "./core.ts";
import { SaeForward, writeEvalReport } from "./evaluate.ts";
import type { EvalReport, LmMetrics } from "./schema.ts";

/** SAEBench's defaults (sae_bench/evals/core/main.py: arg_parser, CoreEvalConfig). */
export const LM_EVAL_DEFAULTS = {
  /** n_eval_reconstruction_batches (the paper's scripts pass 200). */
  batches: 10,
  /** batch_size_prompts. */
  batch: 16,
  /** context_size. */
  context: 128,
} as const;

/** What one evaluation forward computes: the hook, the shape, and which tokens count. */
export interface LmEvalSpec {
  hook: string;
  /** Contexts per batch. */
  batch: number;
  /** Tokens per context. */
  context: number;
  /** Token ids left out of every mean (SAEBench's ignore_tokens: BOS, EOS, pad). */
  ignoreTokens: number[];
  /**
   * Those tokens keep their own activation in the spliced pass (SAEBench's
   * exclude_special_tokens_from_reconstruction); false: they are reconstructed too.
   */
  excludeSpecial: boolean;
}

/** Per-token masks of one batch [batch·context], row-major. */
export interface EvalMasks {
  /** u32: 1 where the spliced pass uses x̂, 0 where the token keeps its activation. */
  keep: Uint32Array;
  /** u32: 1 where the token counts in the KL means and the core metrics. */
  kl: Uint32Array;
  /** u32: 1 where the next-token CE counts (as `kl`, without each context's last position). */
  ce: Uint32Array;
  /** u32: the next token of each position (0 at the last, where `ce` is 0). */
  targets: Uint32Array;
}

/**
 * The masks of a batch, as SAEBench's get_recons_loss and get_downstream_reconstruction_metrics
 * form them: a position counts unless its own token is in `ignoreTokens` (CE at position s, which
 * predicts token s + 1, is dropped when token s is ignored, and at the last position); contexts
 * from `n` on are padding and count nowhere.
 */
export function evalMasks(spec: LmEvalSpec, tokens: ArrayLike<number>, n: number): EvalMasks {
  const { batch, context: C } = spec, T = batch * C;
  const ignored = new Set(spec.ignoreTokens);
  const keep = new Uint32Array(T), kl = new Uint32Array(T), ce = new Uint32Array(T);
  const targets = new Uint32Array(T);
  for (let t = 0; t < T; t++) {
    const s = t % C, special = ignored.has(tokens[t]);
    keep[t] = spec.excludeSpecial && special ? 0 : 1;
    if (Math.floor(t / C) >= n || special) continue;
    kl[t] = 1;
    if (s < C - 1) {
      ce[t] = 1;
      targets[t] = tokens[t + 1];
    }
  }
  return { keep, kl, ce, targets };
}

/** One batch's results, per token [batch·context] (0 where the mask drops the token). */
export interface LmBatchResult {
  masks: EvalMasks;
  ceClean: Float32Array;
  ceSae: Float32Array;
  ceZero: Float32Array;
  klSae: Float32Array;
  klZero: Float32Array;
  /** The hook's activations [T, d_in], raw units. */
  x: Float32Array;
  /** The SAE's reconstruction [T, d_in], raw units (computed on every row, used where `keep`). */
  xhat: Float32Array;
  /** The latents [T, d_sae]. */
  f: Float32Array;
}

/** What {@link LmEvaluator.create} builds. */
interface EvaluatorParts {
  fwd: LmForward;
  sae: SaeForward;
  /** The dispatches of each pass, its scoring included. */
  passes: { clean: Dispatch[]; cleanScore: Dispatch[]; sae: Dispatch[]; zero: Dispatch[] };
  /** [T, vocab] f32: the clean pass's logits, kept for the KL of the two others. */
  cleanLogits: GPUBuffer;
  /** [T] u32 each: the masks and next-token targets of {@link evalMasks}. */
  io: Record<"keep" | "kl" | "ce" | "targets", GPUBuffer>;
  /** [T] f32 each: per-token CE of the three passes, KL of the spliced and ablated ones. */
  out: Record<"ceClean" | "ceSae" | "ceZero" | "klSae" | "klZero", GPUBuffer>;
  owned: GPUBuffer[];
}

/**
 * The three passes on the GPU for batches of `spec.batch` contexts: one {@link LmForward} with
 * the SAE spliced in at `spec.hook`, whose splice dispatches are dropped for the clean pass and
 * replaced by a zeroing kernel for the ablated one; per-token CE and KL by src/kernels/logits.ts.
 */
export class LmEvaluator {
  readonly spec: LmEvalSpec;
  private readonly gpu: Gpu;
  private readonly parts: EvaluatorParts;

  private constructor(gpu: Gpu, spec: LmEvalSpec, parts: EvaluatorParts) {
    this.gpu = gpu;
    this.spec = spec;
    this.parts = parts;
  }

  /** Builds the passes (pipelines, bind groups and buffers, once) for `sae` on `lm`. */
  static async create(lm: GpuLm, sae: LoadedSae, spec: LmEvalSpec): Promise<LmEvaluator> {
    const gpu = lm.gpu, cfg = lm.config;
    parseHook(spec.hook, cfg);
    const d = cfg.dModel, V = cfg.vocabSize, T = spec.batch * spec.context;
    if (sae.cfg.d_in !== d) {
      throw new UserError(
        `the SAE has d_in ${sae.cfg.d_in} but ${spec.hook} of ${cfg.source} is ${d} wide: ` +
          `pass the model and hook the SAE was trained on`,
      );
    }
    if (T > 65535) {
      throw new UserError(
        `${spec.batch} contexts of ${spec.context} tokens are ${T} rows, over the 65535 one ` +
          `SAE forward takes: pass a smaller --batch`,
      );
    }
    const owned: GPUBuffer[] = [];
    const buf = (label: string, bytes: number) => {
      const b = gpu.buffer(label, bytes);
      owned.push(b);
      return b;
    };
    const io = {
      keep: buf("eval keep", T * 4),
      kl: buf("eval kl mask", T * 4),
      ce: buf("eval ce mask", T * 4),
      targets: buf("eval targets", T * 4),
    };
    const out = {
      ceClean: buf("ce clean", T * 4),
      ceSae: buf("ce sae", T * 4),
      ceZero: buf("ce zero", T * 4),
      klSae: buf("kl sae", T * 4),
      klZero: buf("kl zero", T * 4),
    };
    const cleanLogits = buf("clean logits", T * V * 4);
    const cleanStats = buf("clean logit stats", T * 8);
    const stats = buf("logit stats", T * 8);
    const saeFwd = await SaeForward.create(gpu, sae, T);
    const rows = { batch: spec.batch, seq: spec.context, dim: d };
    let fwd: LmForward | null = null;
    try {
      fwd = await LmForward.build(lm, {
        batch: spec.batch,
        seq: spec.context,
        hooks: [spec.hook],
        splice: {
          hook: spec.hook,
          build: async (act) => [
            ...await copyRowsDispatches(gpu, rows, { x: act, out: saeFwd.x }),
            ...saeFwd.dispatches,
            ...await spliceOutDispatches(gpu, { rows: T, dim: d, scale: sae.scale }, {
              act,
              xhat: saeFwd.xhat,
              keep: io.keep,
            }),
          ],
        },
      });
      const point = fwd.splicePoint!;
      const logits = fwd.logits!;
      const ls = { rows: T, vocab: V };
      // Per pass: statistics of its logits, CE, and (spliced and zero-ablated) KL to the clean.
      const scored = async (ce: GPUBuffer, kl: GPUBuffer) => [
        ...await logitStatsDispatches(gpu, ls, { logits, stats }),
        ...await crossEntropyDispatches(gpu, ls, {
          logits,
          stats,
          targets: io.targets,
          mask: io.ce,
          ce,
        }),
        ...await klDispatches(gpu, ls, {
          clean: cleanLogits,
          cleanStats,
          logits,
          stats,
          mask: io.kl,
          kl,
        }),
      ];
      const passes = {
        clean: fwd.passWith([]),
        cleanScore: [
          ...await logitStatsDispatches(gpu, ls, { logits: cleanLogits, stats: cleanStats }),
          ...await crossEntropyDispatches(gpu, ls, {
            logits: cleanLogits,
            stats: cleanStats,
            targets: io.targets,
            mask: io.ce,
            ce: out.ceClean,
          }),
        ],
        sae: [...fwd.dispatches, ...await scored(out.ceSae, out.klSae)],
        zero: [
          ...fwd.passWith(await zeroDispatches(gpu, { rows: T, dim: d }, { act: point.act })),
          ...await scored(out.ceZero, out.klZero),
        ],
      };
      return new LmEvaluator(gpu, spec, {
        fwd,
        sae: saeFwd,
        passes,
        cleanLogits,
        io,
        out,
        owned,
      });
    } catch (err) {
      fwd?.destroy();
      saeFwd.destroy();
      for (const b of owned) gpu.destroyBuffer(b);
      throw err;
    }
  }

  /**
   * Runs the three passes on `tokens` [batch, context] (contexts from `n` on are padding, counted
   * nowhere) and reads back the per-token losses and the core metrics' rows.
   */
  async run(tokens: ArrayLike<number>, n: number): Promise<LmBatchResult> {
    const gpu = this.gpu, { fwd, io, out, passes, sae } = this.parts;
    const masks = evalMasks(this.spec, tokens, n);
    gpu.write(io.keep, masks.keep);
    gpu.write(io.kl, masks.kl);
    gpu.write(io.ce, masks.ce);
    gpu.write(io.targets, masks.targets);
    const ids = Uint32Array.from(tokens);
    const V = fwd.lm.config.vocabSize;
    const bad = ids.findIndex((t) => t >= V);
    if (bad >= 0) throw new Error(`evaluation: token id ${ids[bad]} at ${bad} is not below ${V}`);
    gpu.write(fwd.tokens, ids);
    const enc = gpu.device.createCommandEncoder();
    // The clean pass runs first: its logits are copied aside for the KL of the two others,
    // which overwrite fwd.logits.
    encodeDispatches(enc, passes.clean);
    const cleanLogits = this.parts.cleanLogits;
    enc.copyBufferToBuffer(fwd.logits!, 0, cleanLogits, 0, cleanLogits.size);
    encodeDispatches(enc, passes.cleanScore);
    encodeDispatches(enc, passes.sae);
    encodeDispatches(enc, passes.zero);
    gpu.submit([enc.finish()]);
    const T = masks.keep.length, d = fwd.lm.config.dModel, m = sae.sae.cfg.d_sae;
    const got = await gpu.readMany([
      { buf: out.ceClean, bytes: T * 4 },
      { buf: out.ceSae, bytes: T * 4 },
      { buf: out.ceZero, bytes: T * 4 },
      { buf: out.klSae, bytes: T * 4 },
      { buf: out.klZero, bytes: T * 4 },
      { buf: fwd.hooks[this.spec.hook], bytes: T * d * 4 },
      { buf: sae.xhat, bytes: T * d * 4 },
      { buf: sae.f, bytes: T * m * 4 },
    ]);
    const xhat = got[6];
    const scale = sae.sae.scale;
    if (scale !== 1) { for (let i = 0; i < xhat.length; i++) xhat[i] /= scale; }
    return {
      masks,
      ceClean: got[0],
      ceSae: got[1],
      ceZero: got[2],
      klSae: got[3],
      klZero: got[4],
      x: got[5],
      xhat,
      f: got[7],
    };
  }

  /** Frees the buffers (the model's weights stay with the GpuLm). */
  destroy(): void {
    this.parts.fwd.destroy();
    this.parts.sae.destroy();
    for (const b of this.parts.owned) this.gpu.destroyBuffer(b);
    this.parts.owned.length = 0;
  }
}

/**
 * The three passes in plain TypeScript (src/lm/reference.ts, src/sae/encode.ts, the logits
 * references): what {@link LmEvaluator.run} computes, in f64 sums.
 */
export function lmEvalReference(
  model: Pick<LmModel, "config" | "weights">,
  sae: LoadedSae,
  spec: LmEvalSpec,
  tokens: ArrayLike<number>,
  n: number,
): Omit<LmBatchResult, "x" | "xhat" | "f"> {
  const { batch, context: C, hook } = spec;
  const T = batch * C, V = model.config.vocabSize;
  const { d_in: d, d_sae: m } = sae.cfg;
  const masks = evalMasks(spec, tokens, n);
  const reconstruct = (act: Float32Array) => {
    const f = new Float64Array(T * m);
    encodeInto(
      {
        dIn: d,
        dSae: m,
        applyBDec: sae.cfg.apply_b_dec_to_input,
        scale: sae.scale,
        tau: sae.threshold,
      },
      sae.weights,
      act,
      f,
    );
    const w = sae.weights;
    for (let t = 0; t < T; t++) {
      if (!masks.keep[t]) continue;
      for (let k = 0; k < d; k++) {
        let v = w.bDec[k];
        for (let i = 0; i < m; i++) v += f[t * m + i] * w.wDec[i * d + k];
        act[t * d + k] = v / sae.scale;
      }
    }
  };
  const logitsOf = (apply?: (act: Float32Array) => void) =>
    referenceForward(model, tokens, batch, C, apply ? { splice: { hook, apply } } : {}).logits!;
  const clean = logitsOf();
  const spliced = logitsOf(reconstruct);
  const zero = logitsOf((act) => act.fill(0));
  const ls = { rows: T, vocab: V };
  const ce = (l: Float32Array) =>
    Float32Array.from(crossEntropyReference(ls, l, masks.targets, masks.ce));
  const kl = (l: Float32Array) => Float32Array.from(klReference(ls, clean, l, masks.kl));
  return {
    masks,
    ceClean: ce(clean),
    ceSae: ce(spliced),
    ceZero: ce(zero),
    klSae: kl(spliced),
    klZero: kl(zero),
  };
}

/**
 * Sums over batches (f64) of the per-token losses where their masks keep them, and the core
 * metrics of the kept tokens' rows; {@link LmAccumulator.result} forms the means and scores.
 */
export class LmAccumulator {
  readonly core: CoreAccumulator;
  private klTokens = 0;
  private ceTokens = 0;
  private sums = { ceClean: 0, ceSae: 0, ceZero: 0, klSae: 0, klZero: 0 };

  constructor(dIn: number, dSae: number) {
    this.core = new CoreAccumulator(dIn, dSae);
  }

  /** Adds one batch. */
  add(r: LmBatchResult): void {
    const { kl, ce } = r.masks;
    const d = this.core.dIn, m = this.core.dSae;
    const rows: number[] = [];
    for (let t = 0; t < kl.length; t++) {
      if (ce[t]) {
        this.ceTokens++;
        this.sums.ceClean += r.ceClean[t];
        this.sums.ceSae += r.ceSae[t];
        this.sums.ceZero += r.ceZero[t];
      }
      if (!kl[t]) continue;
      this.klTokens++;
      this.sums.klSae += r.klSae[t];
      this.sums.klZero += r.klZero[t];
      rows.push(t);
    }
    const pick = (a: Float32Array, w: number) => {
      const out = new Float32Array(rows.length * w);
      rows.forEach((t, i) => out.set(a.subarray(t * w, (t + 1) * w), i * w));
      return out;
    };
    this.core.addRecon(pick(r.x, d), pick(r.xhat, d));
    this.core.addSparsity(pick(r.f, m));
  }

  /**
   * Means over every kept token, and SAEBench's scores from them:
   * KL-div score = (KL_zero − KL_sae) / KL_zero, CE-loss score = (CE_zero − CE_sae) /
   * (CE_zero − CE_clean) (0 where a denominator is 0, so eval.json holds only numbers).
   */
  result(): Pick<
    LmMetrics,
    | "kl_tokens"
    | "ce_tokens"
    | "kl_div_score"
    | "kl_div_with_sae"
    | "kl_div_with_ablation"
    | "ce_loss_score"
    | "ce_loss_with_sae"
    | "ce_loss_without_sae"
    | "ce_loss_with_ablation"
  > {
    const mean = (s: number, n: number) => (n > 0 ? s / n : 0);
    // + 0 turns −0 (0 over a negative denominator) into 0.
    const q = (a: number, b: number) => (b !== 0 && Number.isFinite(a / b) ? a / b + 0 : 0);
    const klSae = mean(this.sums.klSae, this.klTokens);
    const klZero = mean(this.sums.klZero, this.klTokens);
    const ceClean = mean(this.sums.ceClean, this.ceTokens);
    const ceSae = mean(this.sums.ceSae, this.ceTokens);
    const ceZero = mean(this.sums.ceZero, this.ceTokens);
    return {
      kl_tokens: this.klTokens,
      ce_tokens: this.ceTokens,
      kl_div_score: q(klZero - klSae, klZero),
      kl_div_with_sae: klSae,
      kl_div_with_ablation: klZero,
      ce_loss_score: q(ceZero - ceSae, ceZero - ceClean),
      ce_loss_with_sae: ceSae,
      ce_loss_without_sae: ceClean,
      ce_loss_with_ablation: ceZero,
    };
  }
}

/** Options of {@link evaluateLmRun}. */
export interface LmEvalOptions {
  /** The model: a Hugging Face directory, a llama2.c `.bin`, or a repo id. */
  model: string;
  /** Evaluation text: .txt, .jsonl or .parquet files (src/lm/text.ts). */
  text: string[];
  /** Tokenizer file (default: the one beside the model). */
  tokenizer?: string;
  /** The hook to splice at (default: the run's hook_name). */
  hook?: string;
  /** Batches (default {@link LM_EVAL_DEFAULTS}.batches). */
  batches?: number;
  /** Contexts per batch (default 16). */
  batch?: number;
  /** Tokens per context (default 128). */
  context?: number;
  /** Reconstruct BOS/EOS positions too instead of keeping their activation (default false). */
  reconstructSpecialTokens?: boolean;
  /** Evaluate although the run records another model_name. */
  allowModelMismatch?: boolean;
  /** Where to write eval.json (atomically); nothing is written when absent. */
  out?: string;
  /** The device (default: the process-wide one). */
  gpu?: Gpu;
  /** Called after each batch (progress). */
  onBatch?: (done: number, of: number) => void;
}

/** The model and hook a run records: its config keys, else its harvest's manifest.json. */
async function recordedSource(
  sae: LoadedSae,
): Promise<{ model: string; hook: string; from: string }> {
  const cfg = sae.cfg;
  if (cfg.model_name || cfg.hook_name) {
    return { model: cfg.model_name, hook: cfg.hook_name, from: "config.yaml" };
  }
  if (cfg.data === "synthetic") return { model: "", hook: "", from: "" };
  const path = join(cfg.data, "manifest.json");
  let m: { format?: unknown; model?: Record<string, unknown>; hook?: unknown };
  try {
    m = JSON.parse(await Deno.readTextFile(path));
  } catch {
    return { model: "", hook: "", from: "" };
  }
  if (m?.format !== "sae-harvest") return { model: "", hook: "", from: "" };
  const name = m.model?.name, p = m.model?.path;
  return {
    model: typeof name === "string" ? name : typeof p === "string" ? basename(p) : "",
    hook: typeof m.hook === "string" ? m.hook : "",
    from: path,
  };
}

/** A model name compared loosely: its base name without a trailing `.bin`. */
function nameKey(s: string): string {
  return basename(s.replace(/\/+$/, "")).replace(/\.bin$/, "");
}

function positive(v: number, flag: string): number {
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new UserError(`${flag} must be a positive integer (got ${v})`);
  }
  return v;
}

/**
 * Evaluates the run in `dir` with the language model: {@link LmEvaluator} over up to `batches`
 * batches of contexts packed from `text` as SAELens packs them (src/lm/contexts.ts), the core
 * metrics on the same tokens; writes eval.json with `out`.
 */
export async function evaluateLmRun(dir: string, opts: LmEvalOptions): Promise<EvalReport> {
  const R = positive(opts.batches ?? LM_EVAL_DEFAULTS.batches, "--recon-batches");
  const B = positive(opts.batch ?? LM_EVAL_DEFAULTS.batch, "--batch");
  const C = opts.context ?? LM_EVAL_DEFAULTS.context;
  if (!Number.isSafeInteger(C) || C < 2) {
    throw new UserError(`--context must be an integer of at least 2 (got ${C})`);
  }
  if (opts.text.length === 0) throw new UserError("--text is required with --model");
  const sae = await loadSae(dir);
  const recorded = await recordedSource(sae);
  const model = await loadModel(opts.model, { tokenizer: opts.tokenizer });
  const hook = opts.hook ?? recorded.hook;
  if (!hook) {
    throw new UserError(
      `${dir} does not record the hook its SAE was trained on (hook_name): pass --hook`,
    );
  }
  parseHook(hook, model.config);
  if (recorded.hook && hook !== recorded.hook) {
    throw new UserError(
      `${dir} was trained on ${recorded.hook} (${recorded.from}) but --hook is ${hook}: ` +
        `leave --hook out or pass ${recorded.hook}`,
    );
  }
  const name = modelName(model.source);
  if (
    recorded.model && !opts.allowModelMismatch &&
    nameKey(recorded.model) !== nameKey(name) && nameKey(recorded.model) !== nameKey(opts.model)
  ) {
    throw new UserError(
      `${dir} was trained on model '${recorded.model}' (${recorded.from}) but --model is ` +
        `'${name}': pass that model, or --allow-model-mismatch if it is the same one by another name`,
    );
  }
  const tok = model.tokenizer;
  if (!tok) {
    throw new UserError(
      `${model.source.path} has no tokenizer beside it: pass --tokenizer (tokenizer.json or tok.bin)`,
    );
  }
  if (sae.cfg.d_in !== model.config.dModel) {
    throw new UserError(
      `${dir}: the SAE has d_in ${sae.cfg.d_in} but ${hook} of ${model.config.source} is ` +
        `${model.config.dModel} wide: pass the model and hook the SAE was trained on`,
    );
  }
  const sources = await inspectText(opts.text, { markers: endOfTextMarkers(tok) });
  const stream = ContextStream.open({ sources, tokenizer: tok, context: C });
  const first = await stream.next(B);
  if (!first || first.n === 0) {
    throw new UserError(
      `the evaluation text (${opts.text.join(", ")}) holds fewer than ${C} tokens, one ` +
        `context: pass more text or a shorter --context`,
    );
  }
  const ignoreTokens = [...new Set([tok.bos, tok.eos].filter((t): t is number => t !== null))];
  const spec: LmEvalSpec = {
    hook,
    batch: B,
    context: C,
    ignoreTokens,
    excludeSpecial: !opts.reconstructSpecialTokens,
  };
  const gpu = opts.gpu ?? await getGpu();
  const lm = GpuLm.upload(gpu, model);
  let ev: LmEvaluator | null = null;
  try {
    ev = await LmEvaluator.create(lm, sae, spec);
    const acc = new LmAccumulator(sae.cfg.d_in, sae.cfg.d_sae);
    let batch: { tokens: Int32Array; n: number } | null = first;
    let done = 0;
    const tokens = new Int32Array(B * C);
    while (batch && batch.n > 0 && done < R) {
      tokens.set(batch.tokens);
      // Padding contexts (past the text's end) repeat BOS and count nowhere.
      tokens.fill(tok.bos!, batch.n * C);
      acc.add(await ev.run(tokens, batch.n));
      done++;
      opts.onBatch?.(done, R);
      batch = done < R ? await stream.next(B) : null;
    }
    const lmm: LmMetrics = {
      model: opts.model,
      hook,
      text: opts.text,
      context_size: C,
      batch_size_prompts: B,
      batches: done,
      ignored_token_ids: ignoreTokens,
      exclude_special_tokens_from_reconstruction: spec.excludeSpecial,
      ...acc.result(),
    };
    const report: EvalReport = {
      sae: dir,
      data: `${opts.text.join(", ")} through ${name} at ${hook} (${done} batches of ${B} ` +
        `contexts of ${C} tokens, packed as SAELens does)`,
      core: acc.core.result(lmm.kl_div_score, lmm.ce_loss_score),
      lm: lmm,
    };
    if (opts.out !== undefined) await writeEvalReport(opts.out, report);
    return report;
  } finally {
    ev?.destroy();
    lm.destroy();
  }
}
