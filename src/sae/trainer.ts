/**
 * The training loop: data → GPU step → (every log_every steps) one batched readback of the logged
 * scalars → (every checkpoint_every steps) a checkpoint; then the final evaluation and the files.
 * The pieces it calls live next to what they are about: the step (session.ts, step.ts), the
 * checkpoint's contents (snapshot.ts), fault messages (faults.ts), what the user sees
 * (progress.ts), the final metrics (src/eval/final.ts), signals (src/run/signals.ts).
 */
import type { TrainConfig } from "../config.ts";
import { openSource } from "../data/open.ts";
import type { ActivationSource } from "../data/source.ts";
import { TrainingInterrupted, UserError } from "../errors.ts";
import { finalMetrics, formatReport } from "../eval/final.ts";
import { getGpu, type Gpu } from "../gpu/device.ts";
import { Profiler } from "../gpu/profile.ts";
import { atomicWrite, type Writer } from "../run/atomic.ts";
import {
  type Checkpoint,
  checkpointName,
  loadLatestCheckpoint,
  removeStaleTemps,
  saveCheckpoint,
} from "../run/checkpoint.ts";
import { MetricsLog, prepareRunDir, writeConfig, writeJson } from "../run/rundir.ts";
import { listenForSignals, type SignalState } from "../run/signals.ts";
import { RunFaults, writing } from "./faults.ts";
import { SAE_FILE, saeFileBytes } from "./load.ts";
import { METRIC_WORDS } from "../kernels/metrics.ts";
import { health, isBad } from "../kernels/health.ts";
import { initialise } from "./model.ts";
import { Progress, reportProfile } from "./progress.ts";
import { Session } from "./session.ts";
import { snapshotFromTensors, snapshotTensors } from "./snapshot.ts";
import { variantOf } from "./variants.ts";

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

/**
 * Trains an SAE as configured, writing the run directory; returns the final metrics.
 *
 * Faults end the run with a one-line error and never a corrupt or poisoned checkpoint:
 * SIGINT/SIGTERM checkpoint the last finished step and reject with {@link TrainingInterrupted};
 * a NaN or infinite loss term, batch or parameter (flagged on the GPU, read at log steps and
 * before every checkpoint) rejects with TrainingDiverged; a lost device or invalid command with
 * TrainingDeviceFailure; a failed write with OutputWriteError (all in src/errors.ts).
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
  signal: SignalState,
): Promise<TrainResult> {
  const { outDir, writer } = opts;
  const { src, gpu, ckpt } = await openRun(cfg, opts);
  const run = new RunFaults(gpu, outDir, ckpt ? ckpt.step : null);
  const session = await run.guard(() => startSession(gpu, cfg, src, ckpt, outDir));
  run.session = session;
  const start = ckpt ? ckpt.step : 0;
  const log = await writing(
    `${outDir}/metrics.jsonl`,
    "choose a writable --out",
    () => MetricsLog.open(outDir, ckpt ? ckpt.step : null, writer),
  );
  const save = (step: number) => saveRunCheckpoint(session, src, outDir, step, run, writer);

  const progress = new Progress(cfg, start, opts.progress);
  const profiler = opts.profile ? new Profiler(gpu, session.dispatchCount) : null;
  const profileFrom = cfg.steps - (opts.profile ?? 0) + 1;
  const batch = new Float32Array(cfg.batch * cfg.d_in); // x: [batch, d_in] f32, raw rows
  try {
    for (let step = start + 1; step <= cfg.steps && signal.received === null; step++) {
      run.phase = `steps ${run.lastGood + 1}–${step}`;
      if (step === cfg.recon_only_steps + 1 && cfg.recon_only_steps > 0) {
        progress.note(step, `step ${step}: recon-only phase over, full loss from here on`);
      }
      await src.nextBatch(batch);
      if (profiler && step >= profileFrom) await session.stepProfiled(batch, profiler);
      else await session.step(batch);
      await session.resample(step);
      run.done = step;
      progress.stepped();
      await opts.onStep?.(step, session);
      if (step % cfg.log_every === 0 || step === cfg.steps) {
        const { metrics, state, health: h } = await session.readMetrics();
        const sps = progress.rate();
        const phase = state.main_phase ? 2 : 1;
        await writing(
          log.path,
          `the last checkpoint is kept: ${run.resumeHint}`,
          () => log.append({ step, ...metrics, lr: state.lr, phase, steps_per_s: sps }),
        );
        if (isBad(h)) throw run.diverged(h, step);
        run.lastGood = step;
        progress.logged(step, sps, metrics);
      }
      if (cfg.checkpoint_every > 0 && step % cfg.checkpoint_every === 0 && step !== cfg.steps) {
        await save(step);
      }
    }
    if (signal.received !== null) {
      run.phase = `the checkpoint after ${signal.received}`;
      if (run.done > start) await save(run.done);
      throw new TrainingInterrupted(signal.received, run.done, outDir, run.lastCkpt);
    }
    run.phase = "the final checkpoint";
    await session.sync();
    if (start < cfg.steps) await save(cfg.steps);
    if (signal.received !== null) {
      throw new TrainingInterrupted(signal.received, cfg.steps, outDir, run.lastCkpt);
    }
  } catch (err) {
    profiler?.destroy();
    if (err instanceof TrainingInterrupted || err instanceof UserError) throw err;
    throw (await run.deviceFailure(err)) ?? err;
  } finally {
    progress.stop();
    log.close();
  }

  return await finish(cfg, opts, session, src, run, profiler);
}

/** The final evaluation, sae.safetensors, metrics.json and the profile. */
async function finish(
  cfg: TrainConfig,
  opts: TrainOptions,
  session: Session,
  src: ActivationSource,
  run: RunFaults,
  profiler: Profiler | null,
): Promise<TrainResult> {
  const { outDir, writer } = opts;
  run.phase = "the final evaluation";
  const metrics = await run.guard(() => finalMetrics(session, src));
  const weights = await run.guard(() => session.readWeights());
  const then = `the final checkpoint is kept: ${run.resumeHint}`;
  const file = `${outDir}/${SAE_FILE}`;
  await writing(
    file,
    then,
    () => atomicWrite(file, saeFileBytes(cfg, weights, session.scale), { writer }),
  );
  await writing(
    `${outDir}/metrics.json`,
    then,
    () => writeJson(outDir, "metrics.json", metrics, writer),
  );
  if (profiler) {
    const profile = reportProfile(profiler, session.gpu);
    await writing(
      `${outDir}/profile.json`,
      then,
      () => writeJson(outDir, "profile.json", profile, writer),
    );
    profiler.destroy();
  }
  if (opts.report !== false) console.log(formatReport(metrics, outDir));
  return { metrics, outDir };
}

/** Prepares the run directory, the data, the device and (when resuming) the last checkpoint. */
async function openRun(
  cfg: TrainConfig,
  opts: TrainOptions,
): Promise<{ src: ActivationSource; gpu: Gpu; ckpt: Checkpoint | null }> {
  const { outDir } = opts;
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
  return { src, gpu, ckpt };
}

/** The session: fresh weights from the data, or everything `ckpt` holds. */
async function startSession(
  gpu: Gpu,
  cfg: TrainConfig,
  src: ActivationSource,
  ckpt: Checkpoint | null,
  outDir: string,
): Promise<Session> {
  if (!ckpt) {
    const { weights, scale } = await initialise(cfg, src);
    return await Session.create(gpu, cfg, weights, scale);
  }
  const snap = snapshotFromTensors(cfg, ckpt.tensors, variantOf(cfg.variant).state, ckpt.path);
  const session = await Session.create(gpu, cfg, snap.weights, Number(ckpt.meta.scale ?? 1));
  session.restore(snap);
  src.restore(ckpt.meta.source);
  console.error(`resuming ${outDir} from step ${ckpt.step}`);
  return session;
}

/** Writes the checkpoint of `step`: never of a poisoned state, never a half file. */
async function saveRunCheckpoint(
  session: Session,
  src: ActivationSource,
  outDir: string,
  step: number,
  run: RunFaults,
  writer?: Writer,
): Promise<void> {
  try {
    const snap = await session.snapshot();
    // The health flags of the window so far are in the accumulators.
    const h = health(snap.metricsAcc ?? new Float32Array(METRIC_WORDS));
    if (isBad(h)) throw run.diverged(h, step);
    await saveCheckpoint(
      outDir,
      step,
      snapshotTensors(session.cfg, snap),
      { scale: session.scale, source: src.state() },
      { writer },
    );
  } catch (err) {
    throw run.checkpointWriteError(err, `${outDir}/checkpoints/${checkpointName(step)}`);
  }
  run.lastCkpt = checkpointName(step);
}
