/**
 * `evaluateRun`: the SAE's forward pass on the GPU over fresh rows, core metrics (SAEBench's
 * definitions, docs/metrics.md) and, on synthetic data, ground-truth recovery, accumulated on the
 * host in f64. Further evaluations (absorption, SCR) plug in as {@link ExtraEvaluator}s.
 *
 * @example
 * ```ts
 * import { evaluateRun, formatEvalReport } from "./evaluate.ts";
 * const report = await evaluateRun("runs/demo", { out: "runs/demo/eval.json" });
 * console.log(formatEvalReport(report));
 * ```
 */
import { join } from "node:path";
import type { TrainConfig } from "../config.ts";
import { openSource } from "../data/open.ts";
import type { ActivationSource } from "../data/source.ts";
import { type BatchTruth, SyntheticSource, type SyntheticTruth } from "../data/synthetic.ts";
import { UserError } from "../errors.ts";
import { getGpu, type Gpu } from "../gpu/device.ts";
import { type Dispatch, run } from "../gpu/dispatch.ts";
import { atomicWrite, type Writer } from "../run/atomic.ts";
import { checkOutputFile, writingTo } from "../run/output.ts";
import { Rng } from "../rng.ts";
import { forwardPass, rowTopKActivation } from "../sae/forward.ts";
import { type LoadedSae, loadSae } from "../sae/load.ts";
import { CoreAccumulator, DENSE_FREQUENCY, GroundTruthAccumulator, unavailable } from "./core.ts";
import { groundTruthRecovery } from "./groundtruth.ts";
import type { EvalReport } from "./schema.ts";

/** Default batch counts (SAEBench uses 200 reconstruction and 2000 sparsity batches). */
export const DEFAULT_RECON_BATCHES = 8;
/** See {@link DEFAULT_RECON_BATCHES}. */
export const DEFAULT_SPARSITY_BATCHES = 32;
/** Added to the synthetic seed to derive the evaluation's sample streams (same ground truth). */
export const EVAL_SEED_OFFSET = 1_000_003;

/**
 * The SAE's forward pass on the GPU (src/sae/forward.ts, the training step's) for up to `batch`
 * rows at a time, with the SAE's own weights, input scale and thresholds: x ← scale·x,
 * pre = (x − b_dec)·W_encᵀ + b_enc, f = ReLU(pre), with τ pre·1[pre > max(τ, 0)] (SAELens'
 * JumpReLU) or with k ReLU(TopK_k(pre)) per row (SAELens' TopK), x̂ = f·W_dec + b_dec; the GEMMs
 * in f32 whatever the run's gemm_f16. Buffers and dispatches are built once;
 * {@link SaeForward.destroy} frees them. The evaluation with a language model (src/eval/lm.ts)
 * splices the same dispatches into the model's forward pass.
 */
export class SaeForward {
  readonly gpu: Gpu;
  readonly sae: LoadedSae;
  readonly batch: number;
  private readonly bufs: GPUBuffer[];
  /** The input, [batch, d_in] f32: raw rows in, scaled by the input scale in place. */
  readonly x: GPUBuffer;
  /** The latents, [batch, d_sae] f32. */
  readonly f: GPUBuffer;
  /** The reconstruction, [batch, d_in] f32, in scaled units. */
  readonly xhat: GPUBuffer;
  /** The whole forward pass from x to x̂, in order. */
  readonly dispatches: Dispatch[];
  private readonly pad: Float32Array;

  private constructor(
    gpu: Gpu,
    sae: LoadedSae,
    batch: number,
    b: { x: GPUBuffer; f: GPUBuffer; xhat: GPUBuffer; all: GPUBuffer[] },
    dispatches: Dispatch[],
  ) {
    this.gpu = gpu;
    this.sae = sae;
    this.batch = batch;
    this.x = b.x;
    this.f = b.f;
    this.xhat = b.xhat;
    this.bufs = b.all;
    this.dispatches = dispatches;
    this.pad = new Float32Array(batch * sae.cfg.d_in);
  }

  /** Uploads the weights and builds the dispatches for `batch` rows per call. */
  static async create(gpu: Gpu, sae: LoadedSae, batch: number): Promise<SaeForward> {
    if (!Number.isInteger(batch) || batch < 1 || batch > 65535) {
      throw new UserError(`evaluation batch must be an integer in [1, 65535] (got ${batch})`);
    }
    const { d_in: d, d_sae: m, apply_b_dec_to_input } = sae.cfg;
    const w = sae.weights;
    const wEnc = gpu.upload("eval W_enc", w.wEnc);
    const bEnc = gpu.upload("eval b_enc", w.bEnc);
    const wDec = gpu.upload("eval W_dec", w.wDec);
    const bDec = gpu.upload("eval b_dec", w.bDec);
    const x = gpu.buffer("eval x", batch * d * 4);
    const xc = gpu.buffer("eval xc", batch * d * 4);
    const f = gpu.buffer("eval f", batch * m * 4);
    const xhat = gpu.buffer("eval xhat", batch * d * 4);
    const all = [wEnc, bEnc, wDec, bDec, x, xc, f, xhat];
    // τ clamped at 0 on upload, so every GEMM path computes pre·1[pre > max(τ, 0)].
    const tau = sae.threshold
      ? gpu.upload("eval tau", sae.threshold.map((t) => Math.max(t, 0)))
      : undefined;
    if (tau) all.push(tau);
    try {
      const activation = sae.k
        ? await rowTopKActivation(gpu, { B: batch, m, k: sae.k }, f)
        : undefined;
      if (activation) {
        all.push(activation.pre, ...Object.values(activation.rows!.lists));
      }
      const none = gpu.dummy();
      const { prepare, encode, decode } = await forwardPass(gpu, {
        batch,
        dIn: d,
        dSae: m,
        scale: sae.scale,
        applyBDec: apply_b_dec_to_input,
        squared: true,
        f16: false,
        label: "eval ",
      }, {
        x,
        xc,
        f,
        xhat,
        wEnc,
        bEnc,
        wDec,
        bDec,
        thresholds: tau,
        activation,
        dxhat: none,
        xmean: none,
        rowstats: none,
      });
      const dispatches = [prepare, ...encode, ...decode];
      return new SaeForward(gpu, sae, batch, { x, f, xhat, all }, dispatches);
    } catch (err) {
      for (const b of all) gpu.destroyBuffer(b);
      throw err;
    }
  }

  /**
   * Runs up to `batch` raw rows ([rows, d_in]) and returns f [rows, d_sae] and x̂ [rows, d_in]
   * (x̂ in raw activation units, i.e. divided by the input scale); `xhat: false` skips its readback.
   */
  async forward(
    rows: Float32Array,
    want: { xhat?: boolean } = {},
  ): Promise<{ f: Float32Array; xhat: Float32Array | null }> {
    const { d_in: d, d_sae: m } = this.sae.cfg;
    const n = rows.length / d;
    if (!Number.isInteger(n) || n > this.batch) {
      throw new Error(`SaeForward: ${rows.length} values are not ≤ ${this.batch} rows of ${d}`);
    }
    if (n === 0) return { f: new Float32Array(0), xhat: want.xhat === false ? null : rows.slice() };
    // Rows past n keep zeros so stale data never reaches the kernels (their outputs are dropped).
    if (n < this.batch) {
      this.pad.set(rows);
      this.pad.fill(0, rows.length);
      this.gpu.write(this.x, this.pad);
    } else {
      this.gpu.write(this.x, rows);
    }
    run(this.gpu, this.dispatches);
    const withX = want.xhat !== false;
    const got = await this.gpu.readMany([
      { buf: this.f, bytes: n * m * 4 },
      ...(withX ? [{ buf: this.xhat, bytes: n * d * 4 }] : []),
    ]);
    const f = got[0].slice(0, n * m);
    let xhat: Float32Array | null = null;
    if (withX) {
      xhat = got[1].slice(0, n * d);
      if (this.sae.scale !== 1) { for (let i = 0; i < xhat.length; i++) xhat[i] /= this.sae.scale; }
    }
    return { f, xhat };
  }

  /** Latents of any number of raw rows ([n, d_in] → [n, d_sae]), `batch` rows per dispatch. */
  async encode(rows: Float32Array): Promise<Float32Array> {
    const { d_in: d, d_sae: m } = this.sae.cfg;
    const n = rows.length / d;
    if (!Number.isInteger(n)) {
      throw new Error(`encode: ${rows.length} values are not whole rows of d_in=${d}`);
    }
    const out = new Float32Array(n * m);
    for (let r = 0; r < n; r += this.batch) {
      const k = Math.min(this.batch, n - r);
      const { f } = await this.forward(rows.subarray(r * d, (r + k) * d), { xhat: false });
      out.set(f, r * m);
    }
    return out;
  }

  /** Frees the GPU buffers. */
  destroy(): void {
    for (const b of this.bufs) this.gpu.destroyBuffer(b);
    this.bufs.length = 0;
  }
}

/** What an extra evaluator (absorption, SCR, ...) gets. */
export interface EvalContext {
  gpu: Gpu;
  sae: LoadedSae;
  /** The evaluation source, positioned after the rows the core metrics used. */
  source: ActivationSource;
  /** The generator's ground truth when the data is synthetic. */
  truth?: SyntheticTruth;
  /** Latents of raw rows via the GPU: any row count ([n, d_in] → [n, d_sae]), batched. */
  encode: (rows: Float32Array) => Promise<Float32Array>;
  /** Rows per GPU batch. */
  batch: number;
}

/**
 * `rows` fresh rows of a synthetic evaluation source with their truth and their latents (the run's
 * encoder), for the evaluations that need the generator's labels; null on other data.
 */
export async function labelledRows(ctx: EvalContext, rows: number): Promise<
  { src: SyntheticSource; x: Float32Array; truth: BatchTruth; latents: Float32Array } | null
> {
  const src = ctx.source;
  if (!(src instanceof SyntheticSource)) return null;
  const x = new Float32Array(rows * src.dIn); // x: [rows, d_in] f32
  const truth = await src.nextBatchWithTruth(x);
  return { src, x, truth, latents: await ctx.encode(x) };
}

/** An evaluation whose result is merged into eval.json (e.g. `{ absorption: ... }`). */
export type ExtraEvaluator = (ctx: EvalContext) => Promise<Partial<EvalReport>>;

/** Options of {@link evaluateSae} and {@link evaluateRun}. */
export interface EvaluateOptions {
  /** Batches for the reconstruction metrics (default {@link DEFAULT_RECON_BATCHES}). */
  reconBatches?: number;
  /** Batches for the sparsity metrics (default {@link DEFAULT_SPARSITY_BATCHES}). */
  sparsityBatches?: number;
  /** Rows per batch (default: the run's batch). */
  batch?: number;
  /** Evaluations run after the core metrics; their results are merged into the report. */
  extra?: ExtraEvaluator[];
  /** The device (default: the process-wide one). */
  gpu?: Gpu;
}

/** Options of {@link evaluateRun}. */
export interface EvaluateRunOptions extends EvaluateOptions {
  /** Activation data instead of the run's `data` ("synthetic" or files). */
  data?: string;
  /** Where to write eval.json (atomically); nothing is written when absent. */
  out?: string;
  /** Byte writer for the output (tests; see src/run/atomic.ts). */
  writer?: Writer;
}

function positiveInt(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 1) {
    throw new UserError(`${what} must be a positive integer (got ${v})`);
  }
  return v;
}

/**
 * A source of rows the run did not train on. Synthetic: the same generator (same ground truth,
 * which depends only on seed and d_in) with its event and noise streams drawn from
 * seed + {@link EVAL_SEED_OFFSET} instead of seed. Files: the configured (or `data`) files,
 * shuffled with seed + EVAL_SEED_OFFSET; they are the training rows unless `data` names other
 * files, which `heldOut` reports.
 */
export async function openEvalSource(
  cfg: TrainConfig,
  data: string = cfg.data,
): Promise<{ source: ActivationSource; description: string; heldOut: boolean }> {
  if (data === "synthetic") {
    const src = new SyntheticSource(cfg.synthetic, cfg.d_in);
    const master = new Rng((cfg.synthetic.seed + EVAL_SEED_OFFSET) >>> 0);
    const events = new Rng(master.nextU32()), noise = new Rng(master.nextU32());
    src.restore({
      ...src.state(),
      events: events.getState(),
      noise: noise.getState(),
      rows: 0,
    });
    return {
      source: src,
      description: `${src.description}, evaluation stream (seed + ${EVAL_SEED_OFFSET})`,
      heldOut: cfg.data === "synthetic",
    };
  }
  const source = await openSource({ ...cfg, data, seed: cfg.seed + EVAL_SEED_OFFSET });
  return { source, description: source.description, heldOut: data !== cfg.data };
}

/** Why KL and CE are not reported for activation-only data. */
function lmReason(synthetic: boolean): string {
  return synthetic
    ? "synthetic activations come from no language model: KL divergence and CE loss recovered " +
      "need its logits with the SAE's reconstruction spliced in"
    : "activation-only data: KL divergence and CE loss recovered need the language model's " +
      "logits with the SAE's reconstruction spliced in, which this toolkit does not run";
}

/**
 * Evaluates a loaded SAE on `source`: max(recon, sparsity) batches go through the GPU forward
 * pass; reconstruction metrics use the first `reconBatches`, sparsity metrics and the
 * ground-truth activation precision/recall the first `sparsityBatches`.
 */
export async function evaluateSae(
  sae: LoadedSae,
  source: ActivationSource,
  opts: EvaluateOptions & { description?: string; saeName?: string } = {},
): Promise<EvalReport> {
  const gpu = opts.gpu ?? await getGpu();
  const R = positiveInt(opts.reconBatches ?? DEFAULT_RECON_BATCHES, "--recon-batches");
  const S = positiveInt(opts.sparsityBatches ?? DEFAULT_SPARSITY_BATCHES, "--sparsity-batches");
  const B = positiveInt(opts.batch ?? sae.cfg.batch, "--batch");
  const { d_in: d, d_sae: m } = sae.cfg;
  if (source.dIn !== d) {
    throw new UserError(`the data has rows of width ${source.dIn} but the SAE has d_in=${d}`);
  }
  const synth = source instanceof SyntheticSource ? source : null;
  if (sae.threshold && sae.threshold.length !== m) {
    throw new Error(`threshold has ${sae.threshold.length} entries, not d_sae=${m}`);
  }
  const fwd = await SaeForward.create(gpu, sae, B);
  try {
    const core = new CoreAccumulator(d, m);
    let gt: GroundTruthAccumulator | null = null;
    let rec: Awaited<ReturnType<typeof groundTruthRecovery>> | null = null;
    if (synth) {
      rec = await groundTruthRecovery(gpu, synth.truth.dictionary, sae.weights.wDec, d);
      gt = new GroundTruthAccumulator(rec.bestLatent, m);
    }
    const x = new Float32Array(B * d);
    for (let b = 0; b < Math.max(R, S); b++) {
      const truth = synth ? await synth.nextBatchWithTruth(x) : null;
      if (!synth) await source.nextBatch(x);
      const { f, xhat } = await fwd.forward(x, { xhat: b < R });
      if (b < R) core.addRecon(x, xhat!);
      if (b < S) {
        core.addSparsity(f);
        if (gt && truth) gt.add(f, truth);
      }
    }
    const report: EvalReport = {
      sae: opts.saeName ?? "",
      data: opts.description ?? source.description,
      core: core.result(unavailable(lmReason(synth !== null))),
    };
    if (gt && rec) report.ground_truth = gt.result(rec);
    const ctx: EvalContext = {
      gpu,
      sae,
      source,
      truth: synth?.truth,
      encode: (rows) => fwd.encode(rows),
      batch: B,
    };
    for (const ev of opts.extra ?? []) Object.assign(report, await ev(ctx));
    return report;
  } finally {
    fwd.destroy();
  }
}

/**
 * Loads the run in `dir` ({@link loadSae}: config.yaml, sae.safetensors and the thresholds its
 * encoder applies), evaluates it on rows it did not train on (see {@link openEvalSource}) and,
 * with `out`, writes the report there atomically.
 */
export async function evaluateRun(dir: string, opts: EvaluateRunOptions = {}): Promise<EvalReport> {
  let info: Deno.FileInfo | null = null;
  try {
    info = await Deno.stat(join(dir, "config.yaml"));
  } catch {
    // reported below
  }
  if (!info?.isFile) {
    throw new UserError(
      `${dir} is not a run directory (no config.yaml there): pass a directory written by 'sae train'`,
    );
  }
  const sae = await loadSae(dir);
  // Before the evaluation: a path that cannot be written is refused now, not after it.
  if (opts.out !== undefined) await checkOutputFile(opts.out, "--out");
  const { source, description, heldOut } = await openEvalSource(sae.cfg, opts.data);
  const report = await evaluateSae(sae, source, {
    ...opts,
    description: heldOut ? description : `${description} (files the run trained on)`,
    saeName: dir,
  });
  if (opts.out !== undefined) await writeEvalReport(opts.out, report, opts.writer);
  return report;
}

/** Writes eval.json atomically (pretty JSON). */
export async function writeEvalReport(
  path: string,
  report: EvalReport,
  writer?: Writer,
): Promise<void> {
  await writingTo(
    path,
    "--out",
    () => atomicWrite(path, JSON.stringify(report, null, 2) + "\n", { writer }),
  );
}

function pct(v: number): string {
  return `${(100 * v).toFixed(1)}%`;
}

/** The report as an aligned table (what `sae eval` prints). */
export function formatEvalReport(r: EvalReport): string {
  const c = r.core;
  const lm = (v: EvalReport["core"]["kl_div_score"]) =>
    typeof v === "number" ? v.toFixed(4) : "n/a (needs the language model)";
  const rows: [string, string][] = [
    ["MSE (per element)", c.mse.toPrecision(4)],
    ["explained variance", c.explained_variance.toFixed(4)],
    ["cosine similarity (x, x̂)", c.cosine_similarity.toFixed(4)],
    ["L2 ratio ‖x̂‖/‖x‖", c.l2_ratio.toFixed(4)],
    ["relative reconstruction bias", c.relative_reconstruction_bias.toFixed(4)],
    ["L0 (active latents/row)", c.l0.toFixed(2)],
    ["L1 (mean ‖f‖₁)", c.l1.toPrecision(4)],
    ["dead latents (never fired)", pct(c.dead_fraction)],
    [`dense latents (freq > ${DENSE_FREQUENCY})`, pct(c.dense_fraction)],
    ["KL divergence score", lm(c.kl_div_score)],
    ["CE loss score", lm(c.ce_loss_score)],
  ];
  const L = r.lm;
  if (L) {
    const nats = (v: number) => v.toFixed(4);
    rows.push(
      [
        "CE loss clean / spliced / zero-ablated",
        `${nats(L.ce_loss_without_sae)} / ${nats(L.ce_loss_with_sae)} / ` +
        `${nats(L.ce_loss_with_ablation)} nats (${L.ce_tokens} tokens)`,
      ],
      [
        "KL spliced / zero-ablated",
        `${L.kl_div_with_sae.toPrecision(4)} / ${nats(L.kl_div_with_ablation)} nats ` +
        `(${L.kl_tokens} tokens)`,
      ],
    );
  }
  const g = r.ground_truth;
  if (g) {
    rows.push(
      ["ground truth: MMCS", g.mmcs.toFixed(4)],
      ["ground truth: recovered (cos > 0.9)", `${pct(g.recovered_at_0_9)} of ${g.features.length}`],
      ["ground truth: mean precision", g.mean_precision.toFixed(4)],
      ["ground truth: mean recall", g.mean_recall.toFixed(4)],
    );
  }
  if (r.absorption) {
    const top = [...r.absorption.per_letter].sort((x, y) => y.absorption - x.absorption).slice(
      0,
      3,
    );
    rows.push([
      "absorption: mean ± std",
      `${r.absorption.mean.toFixed(4)} ± ${r.absorption.std.toFixed(4)} (highest: ${
        top.map((l) => `${l.letter} ${l.absorption.toFixed(3)}`).join(", ")
      })`,
    ]);
  }
  if (r.scr) {
    rows.push([
      "SCR score by k",
      r.scr.k.map((k, i) => `${k}: ${r.scr!.score[i].toFixed(3)}`).join(", "),
    ]);
  }
  const h = c.density_histogram;
  const hist =
    h.counts.flatMap((n, i) =>
      n > 0 ? [`[${h.edges[i].toFixed(2)}, ${h.edges[i + 1].toFixed(2)}): ${n}`] : []
    ).join(", ") || "none";
  const w = Math.max(...rows.map((row) => row[0].length));
  return [
    `eval — ${r.sae} on ${r.data}`,
    `  (${c.recon_rows} reconstruction rows, ${c.sparsity_rows} sparsity rows)`,
    ...rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`),
    `  log10 firing frequency (non-empty bins): ${hist}; never fired: ${h.never_fired}`,
  ].join("\n");
}
