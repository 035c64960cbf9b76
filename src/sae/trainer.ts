/**
 * The training loop: data → GPU step → (every log_every steps) one batched readback of the logged
 * scalars → (every checkpoint_every steps) a checkpoint. Initialisation and the final evaluation
 * happen outside the loop.
 */
import cliProgress from "cli-progress";
import type { TrainConfig } from "../config.ts";
import type { ActivationSource } from "../data/source.ts";
import { SyntheticSource } from "../data/synthetic.ts";
import { openSource } from "../data/open.ts";
import { UserError } from "../errors.ts";
import { groundTruthRecovery } from "../eval/groundtruth.ts";
import { getGpu, type Gpu, GpuFailure } from "../gpu/device.ts";
import { encodeDispatches } from "../gpu/dispatch.ts";
import {
  checkpointName,
  loadLatestCheckpoint,
  removeStaleTemps,
  saveCheckpoint,
} from "../run/checkpoint.ts";
import { MetricsLog, prepareRunDir, writeConfig, writeJson } from "../run/rundir.ts";
import { f32Tensor, type Tensor, tensorToF32 } from "../run/safetensors.ts";
import { atomicWrite, type Writer } from "../run/atomic.ts";
import { encodeSafetensors } from "../run/safetensors.ts";
import { type Health, health, isBad } from "../kernels/health.ts";
import { METRIC_WORDS, type StepMetrics, summarize } from "../kernels/metrics.ts";
import {
  geometricMedian,
  initWeights,
  normScale,
  PARAM_NAMES,
  paramShapes,
  rowMean,
  type SaeWeights,
} from "./model.ts";
import { Session, type SessionState } from "./session.ts";
import { formatProfile, Profiler } from "../gpu/profile.ts";

/** How a training run is driven (not part of the run's config). */
export interface TrainOptions {
  /** Run directory (runs/<name>). */
  outDir: string;
  /** Continue from the last checkpoint in outDir. */
  resume: boolean;
  /** Replace an existing run directory. */
  overwrite: boolean;
  /** Show a progress bar (off when stdout is not a terminal or in tests). */
  progress: boolean;
  /** Print the final report to stdout (default true). */
  report?: boolean;
  /** Checkpoint and stop on SIGINT/SIGTERM (default true; listeners removed when train returns). */
  signals?: boolean;
  /** The device to train on (default: the process-wide one from getGpu). */
  gpu?: Gpu;
  /** Byte writer for every output file (tests inject failing writers; see src/run/atomic.ts). */
  writer?: Writer;
  /** Called after each step is submitted (tests inject faults with it). */
  onStep?: (step: number, session: Session) => void | Promise<void>;
  /** Wraps the data source (tests inject bad batches with it). */
  wrapSource?: (src: ActivationSource) => ActivationSource;
  /**
   * Time every kernel of the run's last `profile` steps (timestamp queries where the adapter has
   * them), print the shares and write profile.json; the steps and their results are unchanged.
   */
  profile?: number;
}

/** What a finished run reports (also saved as metrics.json). */
export interface TrainResult {
  metrics: Record<string, number>;
  outDir: string;
}

/** Batches used for the final evaluation (fresh rows, never trained on). */
const EVAL_BATCHES = 8;

/** Draws `rows` rows from `src` in batches of at most `batch` rows. */
async function drawRows(src: ActivationSource, rows: number, batch: number) {
  const out = new Float32Array(rows * src.dIn);
  for (let r = 0; r < rows; r += batch) {
    const n = Math.min(batch, rows - r);
    await src.nextBatch(out.subarray(r * src.dIn, (r + n) * src.dIn));
  }
  return out;
}

/** Fresh weights and input scale from an initial data sample (taken from the stream). */
async function initialise(cfg: TrainConfig, src: ActivationSource) {
  const sample = await drawRows(src, cfg.init_rows, cfg.batch);
  const scale = cfg.normalize_activations === "expected_average_only_in"
    ? normScale(sample, cfg.d_in)
    : 1;
  if (scale !== 1) { for (let i = 0; i < sample.length; i++) sample[i] *= scale; }
  const bDec = cfg.b_dec_init === "zeros"
    ? new Float32Array(cfg.d_in)
    : cfg.b_dec_init === "mean"
    ? rowMean(sample, cfg.d_in)
    : geometricMedian(sample, cfg.d_in);
  return { weights: initWeights(cfg.d_in, cfg.d_sae, cfg.seed, bDec), scale };
}

function weightTensors(cfg: TrainConfig, w: SaeWeights, prefix = ""): Record<string, Tensor> {
  const shapes = paramShapes(cfg.d_in, cfg.d_sae);
  return Object.fromEntries(PARAM_NAMES.map((n) => [prefix + n, f32Tensor(shapes[n], w[n])]));
}

function u32Tensor(values: Uint32Array): Tensor {
  return { dtype: "U32", shape: [values.length], data: new Uint8Array(values.slice().buffer) };
}

function pickWeights(t: Record<string, Tensor>, prefix: string): SaeWeights {
  const out = {} as SaeWeights;
  for (const n of PARAM_NAMES) {
    const tensor = t[prefix + n];
    if (!tensor) {
      throw new UserError(`checkpoint lacks tensor '${prefix + n}': it is not a run checkpoint`);
    }
    out[n] = tensorToF32(tensor);
  }
  return out;
}

function u32Of(t: Tensor | undefined, name: string): Uint32Array {
  if (!t) throw new UserError(`checkpoint lacks tensor '${name}': it is not a run checkpoint`);
  return new Uint32Array(t.data.slice().buffer);
}

/** Writes a checkpoint of everything needed to continue bit for bit. */
async function checkpoint(
  session: Session,
  src: ActivationSource,
  outDir: string,
  step: number,
  opts: { writer?: Writer; beforeWrite?: (st: SessionState) => void } = {},
) {
  const [w, st] = [await session.readWeights(), await session.readState()];
  opts.beforeWrite?.(st);
  const tensors: Record<string, Tensor> = {
    ...weightTensors(session.cfg, w),
    ...weightTensors(session.cfg, st.adamM, "adam_m."),
    ...weightTensors(session.cfg, st.adamV, "adam_v."),
    last_fired: u32Tensor(st.lastFired),
    step_state: u32Tensor(st.state),
    metrics_acc: f32Tensor([METRIC_WORDS], st.metricsAcc ?? new Float32Array(METRIC_WORDS)),
  };
  for (const [name, v] of Object.entries(st.extra)) {
    tensors[`extra.${name}`] = f32Tensor([v.length], v);
  }
  await saveCheckpoint(outDir, step, tensors, { scale: session.scale, source: src.state() }, {
    writer: opts.writer,
  });
}

/** A one-line summary of logged metrics. */
function fmtLine(step: number, total: number, sps: number, m: StepMetrics): string {
  return `step ${step}/${total} | ${sps.toFixed(1)} steps/s | loss ${m.loss.toFixed(4)} | ` +
    `L0 ${m.l0.toFixed(2)} | EV ${m.explained_variance.toFixed(4)} | dead ${
      (100 * m.dead_fraction).toFixed(1)
    }%` + (m.sparse_fraction > 0 ? ` | sparse ${(100 * m.sparse_fraction).toFixed(0)}%` : "");
}

/** The command that continues a run. */
export function resumeCommand(outDir: string): string {
  return `deno task sae train --resume ${outDir}`;
}

/**
 * Training stopped on SIGINT or SIGTERM after writing a checkpoint of the last finished step. The
 * CLI prints the message as one line and exits with {@link TrainingInterrupted.exitCode}.
 */
export class TrainingInterrupted extends Error {
  /** The signal received. */
  readonly signal: "SIGINT" | "SIGTERM";
  /** Steps finished (and checkpointed, when `checkpoint` is set). */
  readonly step: number;
  /** 130 for SIGINT, 143 for SIGTERM (128 + the signal's number). */
  readonly exitCode: number;
  /** The checkpoint to resume from, or null when nothing had been trained. */
  readonly checkpoint: string | null;
  constructor(signal: "SIGINT" | "SIGTERM", step: number, outDir: string, ckpt: string | null) {
    super(
      ckpt === null
        ? `interrupted before the first step; nothing was saved`
        : `interrupted at step ${step}; resume with: ${resumeCommand(outDir)}`,
    );
    this.name = "TrainingInterrupted";
    this.signal = signal;
    this.step = step;
    this.exitCode = signal === "SIGINT" ? 130 : 143;
    this.checkpoint = ckpt;
  }
}

/** The loss, the batch or a parameter became NaN or infinite; the last good checkpoint is kept. */
export class TrainingDiverged extends UserError {
  /** Last step known good (the previous log step) and the step where it was detected. */
  readonly from: number;
  readonly to: number;
  /** What went bad: "reconstruction", "L1", "input", "parameters". */
  readonly terms: string[];
  constructor(message: string, from: number, to: number, terms: string[]) {
    super(message);
    this.name = "TrainingDiverged";
    this.from = from;
    this.to = to;
    this.terms = terms;
  }
}

/** The GPU device was lost or rejected a command mid-run. */
export class TrainingDeviceFailure extends UserError {
  /** The kernel named by the driver, when known. */
  readonly kernel: string | null;
  constructor(message: string, kernel: string | null) {
    super(message);
    this.name = "TrainingDeviceFailure";
    this.kernel = kernel;
  }
}

/** Writing an output file failed (disk full, read-only directory, ...). */
export class OutputWriteError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = "OutputWriteError";
  }
}

function divergedError(
  h: Health,
  from: number,
  to: number,
  lastCkpt: string | null,
): TrainingDiverged {
  const word = (b: number) => (b === 2 ? "NaN" : "infinite");
  const kept = lastCkpt === null
    ? "no checkpoint had been written"
    : `the last good checkpoint ${lastCkpt.replace(/\.safetensors$/, "")} is kept`;
  const window = `between steps ${from} and ${to}`;
  const first = h.firstStep > 0 ? `first at step ${h.firstStep}; ` : "";
  if (h.input > 0) {
    return new TrainingDiverged(
      `the training data became ${word(h.input)} ${window} (${first}input batch); ${kept}: ` +
        `check the data`,
      from,
      to,
      ["input"],
    );
  }
  const terms: string[] = [];
  if (h.recon > 0) terms.push("reconstruction");
  if (h.l1 > 0) terms.push("L1");
  if (terms.length > 0) {
    const worst = Math.max(h.recon, h.l1);
    return new TrainingDiverged(
      `loss became ${word(worst)} ${window} (${first}${terms.join(" and ")} term${
        terms.length > 1 ? "s" : ""
      }); ${kept}: lower --lr or check the data`,
      from,
      to,
      h.params > 0 ? [...terms, "parameters"] : terms,
    );
  }
  return new TrainingDiverged(
    `parameters became ${word(h.params)} ${window} (an update overflowed); ${kept}: ` +
      `lower --lr or check the data`,
    from,
    to,
    ["parameters"],
  );
}

/** SIGINT/SIGTERM listeners for the duration of a run; a second signal exits at once. */
function listenForSignals() {
  const state: { received: "SIGINT" | "SIGTERM" | null } = { received: null };
  const installed: [Deno.Signal, () => void][] = [];
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    const handler = () => {
      if (state.received !== null) {
        // Checkpoint writes are atomic, so leaving now cannot corrupt one.
        console.error(`${sig} again: exiting without waiting for the checkpoint`);
        Deno.exit(sig === "SIGINT" ? 130 : 143);
      }
      state.received = sig;
    };
    try {
      Deno.addSignalListener(sig, handler);
      installed.push([sig, handler]);
    } catch {
      // Not available on this platform (SIGTERM on Windows): the default action stays.
    }
  }
  return {
    state,
    remove() {
      for (const [sig, handler] of installed) Deno.removeSignalListener(sig, handler);
    },
  };
}

/** Runs `fn`, turning an I/O failure into a one-line OutputWriteError that names `what`. */
async function writing<T>(what: string, then: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UserError) throw err;
    const msg = err instanceof Error ? err.message : String(err);
    throw new OutputWriteError(`cannot write ${what}: ${msg}; ${then}`);
  }
}

/**
 * Trains an SAE as configured, writing the run directory; returns the final metrics.
 *
 * Faults end the run with a one-line error and never a corrupt or poisoned checkpoint:
 * SIGINT/SIGTERM checkpoint the last finished step and reject with {@link TrainingInterrupted};
 * a NaN or infinite loss term, batch or parameter (flagged on the GPU, read at log steps and
 * before every checkpoint) rejects with {@link TrainingDiverged}; a lost device or invalid command
 * with {@link TrainingDeviceFailure}; a failed write with {@link OutputWriteError}.
 *
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, train } from "./mod.ts";
 * await train({ ...DEFAULT_CONFIG, steps: 100 }, {
 *   outDir: "runs/demo", resume: false, overwrite: true, progress: false,
 * });
 * ```
 */
export async function train(cfg: TrainConfig, opts: TrainOptions): Promise<TrainResult> {
  const signals = opts.signals === false ? null : listenForSignals();
  try {
    return await trainRun(cfg, opts, signals?.state ?? { received: null });
  } finally {
    signals?.remove();
  }
}

async function trainRun(
  cfg: TrainConfig,
  opts: TrainOptions,
  signal: { received: "SIGINT" | "SIGTERM" | null },
): Promise<TrainResult> {
  const { outDir, writer } = opts;
  const resumeHint = `resume with: ${resumeCommand(outDir)}`;
  await writing(
    `run directory ${outDir}`,
    "choose a writable --out",
    () => prepareRunDir(outDir, { resume: opts.resume, overwrite: opts.overwrite }),
  );
  let src = await openSource(cfg);
  if (src.dIn !== cfg.d_in) {
    throw new UserError(
      `data rows have width ${src.dIn} but d_in is ${cfg.d_in}; set --d-in ${src.dIn}`,
    );
  }
  if (opts.wrapSource) src = opts.wrapSource(src);
  const gpu = opts.gpu ?? await getGpu({ announce: true });
  if (opts.resume) {
    const stale = await removeStaleTemps(outDir);
    if (stale.length) console.error(`removed ${stale.length} unfinished checkpoint write(s)`);
  }
  const ckpt = opts.resume ? await loadLatestCheckpoint(outDir) : null;
  if (opts.resume && !ckpt) {
    console.error(`no usable checkpoint in ${outDir}: starting from step 0`);
  }
  await writing(`${outDir}/config.yaml`, "choose a writable --out", () => writeConfig(outDir, cfg));

  // Where the run stands, for the messages of the faults below.
  let lastGood = ckpt ? ckpt.step : 0; // last step whose window was read and found finite
  let done = ckpt ? ckpt.step : 0; // last step submitted
  let lastCkpt: string | null = ckpt ? checkpointName(ckpt.step) : null;
  let phase = "setup";
  const keptNote = () =>
    lastCkpt === null
      ? "no checkpoint had been written"
      : `the last checkpoint ${lastCkpt.replace(/\.safetensors$/, "")} is kept: ${resumeHint}`;
  let session: Session | null = null;
  const deviceFailure = async (err: unknown): Promise<TrainingDeviceFailure | null> => {
    const f = gpu.failureError ?? (err instanceof GpuFailure ? err : null);
    if (!f) return null;
    let kernel = f.kernel;
    let message = f.message;
    if (kernel === null && f.kind === "validation" && session !== null) {
      kernel = await session.findFailingKernel().catch(() => null);
      if (kernel !== null) {
        message = message.replace(
          /^GPU validation error/,
          `GPU validation error in kernel '${kernel}'`,
        );
      }
    }
    return new TrainingDeviceFailure(
      `${message} (during ${phase}); nothing is saved from a failed device; ${keptNote()}`,
      kernel,
    );
  };

  let start = 0;
  try {
    if (ckpt) {
      const scale = Number(ckpt.meta.scale ?? 1);
      session = await Session.create(gpu, cfg, pickWeights(ckpt.tensors, ""), scale);
      const st: SessionState = {
        adamM: pickWeights(ckpt.tensors, "adam_m."),
        adamV: pickWeights(ckpt.tensors, "adam_v."),
        lastFired: u32Of(ckpt.tensors.last_fired, "last_fired"),
        state: u32Of(ckpt.tensors.step_state, "step_state"),
        extra: {},
        // Checkpoints from before the accumulators were saved resume with an empty window.
        metricsAcc: ckpt.tensors.metrics_acc ? tensorToF32(ckpt.tensors.metrics_acc) : undefined,
      };
      for (const name of session.extraNames()) {
        const t = ckpt.tensors[`extra.${name}`];
        if (!t) {
          throw new UserError(
            `checkpoint lacks 'extra.${name}': was it written by another variant?`,
          );
        }
        st.extra[name] = tensorToF32(t);
      }
      session.restoreState(st);
      src.restore(ckpt.meta.source);
      start = ckpt.step;
      console.error(`resuming ${outDir} from step ${start}`);
    } else {
      const { weights, scale } = await initialise(cfg, src);
      session = await Session.create(gpu, cfg, weights, scale);
    }
  } catch (err) {
    throw (await deviceFailure(err)) ?? err;
  }
  const log = await writing(
    `${outDir}/metrics.jsonl`,
    "choose a writable --out",
    () => MetricsLog.open(outDir, ckpt ? ckpt.step : null, writer),
  );

  const save = async (step: number) => {
    const path = `${outDir}/checkpoints/${checkpointName(step)}`;
    await checkpoint(session, src, outDir, step, {
      writer,
      // Never checkpoint a poisoned state: the flags of the window so far are in the accumulators.
      beforeWrite: (st) => {
        const h = health(st.metricsAcc ?? new Float32Array(METRIC_WORDS));
        if (isBad(h)) throw divergedError(h, lastGood, step, lastCkpt);
      },
    }).catch((err) => {
      if (err instanceof UserError || gpu.failureError || err instanceof GpuFailure) throw err;
      const msg = err instanceof Error ? err.message : String(err);
      throw new OutputWriteError(
        `cannot write checkpoint ${path}: ${msg}; no partial file is left and ${
          lastCkpt === null
            ? "no earlier checkpoint exists"
            : `the previous checkpoint ${
              lastCkpt.replace(/\.safetensors$/, "")
            } is intact: free space or fix permissions, then ${resumeHint}`
        }`,
      );
    });
    lastCkpt = checkpointName(step);
  };

  const bar = opts.progress
    ? new cliProgress.SingleBar({
      format: "train |{bar}| {value}/{total} | {sps} steps/s | loss {loss} | L0 {l0} | EV {ev}",
      stream: process.stderr,
      hideCursor: true,
    }, cliProgress.Presets.shades_classic)
    : null;
  bar?.start(cfg.steps, start, { sps: "-", loss: "-", l0: "-", ev: "-" });
  const printEvery = Math.max(
    cfg.log_every,
    Math.ceil(cfg.steps / 10 / cfg.log_every) * cfg.log_every,
  );

  const batch = new Float32Array(cfg.batch * cfg.d_in);
  const profiler = opts.profile ? new Profiler(gpu, session.dispatchCount) : null;
  const profileFrom = cfg.steps - (opts.profile ?? 0) + 1;
  let t0 = performance.now(), stepsSince = 0;
  try {
    for (let step = start + 1; step <= cfg.steps && signal.received === null; step++) {
      phase = `steps ${lastGood + 1}–${step}`;
      if (step === cfg.recon_only_steps + 1 && cfg.recon_only_steps > 0) {
        const line = `step ${step}: recon-only phase over, full loss from here on`;
        if (bar) bar.update(step - 1, {});
        console.error(line);
      }
      await src.nextBatch(batch);
      if (profiler && step >= profileFrom) await session.stepProfiled(batch, profiler);
      else await session.step(batch);
      done = step;
      stepsSince++;
      await opts.onStep?.(step, session);
      if (step % cfg.log_every === 0 || step === cfg.steps) {
        const { metrics, state, health: h } = await session.readMetrics();
        const now = performance.now();
        const sps = stepsSince / ((now - t0) / 1000);
        t0 = now;
        stepsSince = 0;
        await writing(
          `${log.path}`,
          `the last checkpoint is kept: ${resumeHint}`,
          () =>
            log.append({
              step,
              ...metrics,
              lr: state.lr,
              phase: state.main_phase ? 2 : 1,
              steps_per_s: sps,
            }),
        );
        if (isBad(h)) throw divergedError(h, lastGood, step, lastCkpt);
        lastGood = step;
        if (bar) {
          bar.update(step, {
            sps: sps.toFixed(1),
            loss: metrics.loss.toFixed(4),
            l0: metrics.l0.toFixed(2),
            ev: metrics.explained_variance.toFixed(4),
          });
        } else if (step % printEvery === 0 || step === cfg.steps) {
          console.error(fmtLine(step, cfg.steps, sps, metrics));
        }
      }
      if (cfg.checkpoint_every > 0 && step % cfg.checkpoint_every === 0 && step !== cfg.steps) {
        await save(step);
      }
    }
    if (signal.received !== null) {
      phase = `the checkpoint after ${signal.received}`;
      if (done > start) await save(done);
      throw new TrainingInterrupted(signal.received, done, outDir, lastCkpt);
    }
    phase = "the final checkpoint";
    await session.sync();
    if (start < cfg.steps) await save(cfg.steps);
    if (signal.received !== null) {
      throw new TrainingInterrupted(signal.received, cfg.steps, outDir, lastCkpt);
    }
  } catch (err) {
    profiler?.destroy();
    if (err instanceof TrainingInterrupted || err instanceof UserError) throw err;
    throw (await deviceFailure(err)) ?? err;
  } finally {
    bar?.stop();
    log.close();
  }

  phase = "the final evaluation";
  let metrics: Record<string, number>, weights: SaeWeights;
  try {
    metrics = await evaluate(session, src);
    weights = await session.readWeights();
  } catch (err) {
    throw (await deviceFailure(err)) ?? err;
  }
  const finalNote = `the final checkpoint is kept: ${resumeHint}`;
  await writing(`${outDir}/sae.safetensors`, finalNote, () =>
    atomicWrite(
      `${outDir}/sae.safetensors`,
      encodeSafetensors(weightTensors(cfg, weights), {
        format: "sae-webgpu",
        d_in: String(cfg.d_in),
        d_sae: String(cfg.d_sae),
        scale: String(session.scale),
      }),
      { writer },
    ));
  await writing(
    `${outDir}/metrics.json`,
    finalNote,
    () => writeJson(outDir, "metrics.json", metrics, writer),
  );
  if (profiler) {
    const kernels = profiler.totalsInOrder();
    const steps = profiler.runs;
    const total = kernels.reduce((a, k) => a + k.ms, 0);
    console.error(
      `\nper-kernel GPU time over the last ${steps} steps (${profiler.method}; ` +
        `${(total / Math.max(steps, 1)).toFixed(2)} ms/step on ${gpu.adapterName}):\n` +
        formatProfile(kernels),
    );
    await writing(`${outDir}/profile.json`, finalNote, () =>
      writeJson(outDir, "profile.json", {
        adapter: gpu.adapterName,
        method: profiler.method,
        steps,
        ms_per_step: total / Math.max(steps, 1),
        kernels: kernels.map((k) => ({ ...k, share: k.ms / Math.max(total, 1e-12) })),
      }, writer));
    profiler.destroy();
  }
  if (opts.report !== false) console.log(formatReport(metrics, outDir));
  return { metrics, outDir };
}

/**
 * Final evaluation on fresh batches: core metrics from the GPU forward pass and, for synthetic
 * data, ground-truth recovery.
 */
async function evaluate(session: Session, src: ActivationSource): Promise<Record<string, number>> {
  const { gpu, cfg } = session;
  const acc = gpu.buffer("eval metrics", METRIC_WORDS * 4);
  const forward = await session.forward(acc);
  const batch = new Float32Array(cfg.batch * cfg.d_in);
  for (let i = 0; i < EVAL_BATCHES; i++) {
    await src.nextBatch(batch);
    gpu.write(session.bufs.x, batch);
    const enc = gpu.device.createCommandEncoder();
    encodeDispatches(enc, forward);
    gpu.submit([enc.finish()]);
  }
  const m = summarize(await gpu.read(acc, METRIC_WORDS * 4));
  gpu.destroyBuffer(acc);
  const out: Record<string, number> = {
    mse: m.mse,
    explained_variance: m.explained_variance,
    l0: m.l0,
    l1: m.l1,
    l2: m.l2,
    loss: m.loss,
    dead_fraction: m.dead_fraction,
    dense_fraction: m.dense_fraction,
    eval_rows: EVAL_BATCHES * cfg.batch,
  };
  if (src instanceof SyntheticSource) {
    const w = await session.readWeights();
    const rec = await groundTruthRecovery(gpu, src.truth.dictionary, w.wDec, cfg.d_in);
    out.mmcs = rec.mmcs;
    out.recovered_at_0_9 = rec.recovered;
    out.true_features = src.truth.dictionary.length / cfg.d_in;
  }
  return out;
}

/** The final metrics as an aligned table. */
export function formatReport(metrics: Record<string, number>, outDir: string): string {
  const rows: [string, string][] = [
    ["MSE (per element)", metrics.mse.toPrecision(4)],
    ["explained variance", metrics.explained_variance.toFixed(4)],
    ["L0 (active latents/row)", metrics.l0.toFixed(2)],
    ["L1 (mean ‖f‖₁)", metrics.l1.toPrecision(4)],
    ["dead latents", `${(100 * metrics.dead_fraction).toFixed(1)}%`],
    ["dense latents", `${(100 * metrics.dense_fraction).toFixed(1)}%`],
  ];
  if (metrics.mmcs !== undefined) {
    rows.push(["ground truth: MMCS", metrics.mmcs.toFixed(4)]);
    rows.push([
      "ground truth: recovered (cos > 0.9)",
      `${(100 * metrics.recovered_at_0_9).toFixed(1)}% of ${metrics.true_features}`,
    ]);
  }
  const w = Math.max(...rows.map((r) => r[0].length));
  return [
    `final metrics (${metrics.eval_rows} held-out rows) — ${outDir}`,
    ...rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`),
  ].join("\n");
}
