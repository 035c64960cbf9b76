/**
 * The training loop: data → GPU step → (every log_every steps) one batched readback of the logged
 * scalars → (every checkpoint_every steps) a checkpoint; then the final evaluation and the files.
 * The pieces it calls live next to what they are about: the step (session.ts, step.ts), the
 * checkpoint's contents (snapshot.ts), fault messages (faults.ts), what the user sees
 * (progress.ts), the final metrics (src/eval/final.ts), signals (src/run/signals.ts).
 */
import { join } from "node:path";
import { type TrainConfig, validateConfig } from "../config.ts";
import { openSource } from "../data/open.ts";
import { type ActivationSource, isDeviceSource } from "../data/source.ts";
import { resumeCommand, TrainingInterrupted, UserError } from "../errors.ts";
import { finalMetrics, formatReport, reusedRowsNote } from "../eval/final.ts";
import { getGpu, type Gpu } from "../gpu/device.ts";
import { Profiler } from "../gpu/profile.ts";
import {
  atomicWrite,
  removeStaleTemps as removeStaleFileTemps,
  type Writer,
} from "../run/atomic.ts";
import {
  type Checkpoint,
  checkpointName,
  listCheckpoints,
  removeStaleTemps,
  saveCheckpoint,
} from "../run/checkpoint.ts";
import { DirLock, LOCK_FILE } from "../run/lock.ts";
import {
  CONFIG_FILE,
  createRunDir,
  MetricsLog,
  planRunDir,
  readRunConfig,
  replaceRun,
  type RunDirPlan,
  writeConfig,
  writeJson,
} from "../run/rundir.ts";
import { listenForSignals, type SignalState } from "../run/signals.ts";
import { RunFaults, writing } from "./faults.ts";
import { SAE_FILE, saeFileBytes } from "./load.ts";
import { METRIC_WORDS } from "../kernels/metrics.ts";
import { health, isBad } from "../kernels/health.ts";
import { checkStepSizes, initialise } from "./model.ts";
import { Progress, reportProfile } from "./progress.ts";
import { Session } from "./session.ts";
import { checkpointConfig, resumeChanges, resumePoint } from "./resume.ts";
import { type Snapshot, snapshotFromTensors, snapshotTensors } from "./snapshot.ts";
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
  const sources: ActivationSource[] = [];
  try {
    return await trainRun(cfg, opts, signals?.state ?? { received: null }, sources);
  } finally {
    for (const src of sources) await src.close?.();
    signals?.remove();
  }
}

async function trainRun(
  cfg: TrainConfig,
  opts: TrainOptions,
  signal: SignalState,
  sources: ActivationSource[],
): Promise<TrainResult> {
  const plan = await planRunDir(opts.outDir, { resume: opts.resume, overwrite: opts.overwrite });
  const outDir = plan.dir;
  const fix = plan.resume
    ? `make ${outDir} writable, then resume with: ${resumeCommand(outDir)}`
    : "choose a writable --out";
  const locks = await writing(`run directory ${plan.target}`, fix, () => lockRun(plan));
  const replacing = plan.dir !== plan.target && !plan.resume;
  let opened = false;
  let finished = false;
  try {
    // Everything that can refuse the run (data, sizes, the checkpoint, the config's changes, the
    // initialisation sample) is checked before the directory is touched.
    const { src, ckpt, session, run } = await openRun(cfg, opts, plan, sources);
    await writing(`run directory ${outDir}`, fix, async () => {
      await createRunDir(plan);
      if (replacing) locks.push(await lockDir(plan.dir));
      if (plan.resume) await removeRunTemps(outDir);
      await writeConfig(outDir, cfg);
    });
    opened = true;
    if (replacing) {
      console.error(
        `replacing ${plan.target}: training into ${outDir}, which takes its place when the run ` +
          `finishes (${plan.target} is kept until then)`,
      );
    }
    const heldOut = reusedRowsNote(src, cfg);
    if (heldOut !== null) console.error(`note: ${heldOut}`);
    const profiler = await trainSteps(cfg, opts, signal, plan, { src, ckpt, session, run });
    const result = await finish(
      cfg,
      opts,
      { session, src, run, profiler },
      heldOut === null,
      plan,
      locks,
    );
    finished = true;
    return result;
  } finally {
    for (const lock of locks) await lock.release();
    // A directory made for a run that was refused before its first write is removed (if empty).
    if (!opened && plan.create && plan.dir === plan.target) {
      await Deno.remove(outDir).catch(() => {});
    }
    // A replacement that failed before its first checkpoint has nothing to resume: it goes, so
    // that the next --overwrite is not blocked by it.
    if (replacing && !finished && (await listCheckpoints(outDir)).length === 0) {
      await Deno.remove(outDir, { recursive: true }).catch(() => {});
    }
  }
}

/** The training loop, from the checkpoint's step (or 0) to cfg.steps, and its last checkpoint. */
async function trainSteps(
  cfg: TrainConfig,
  opts: TrainOptions,
  signal: SignalState,
  plan: RunDirPlan,
  { src, ckpt, session, run }: {
    src: ActivationSource;
    ckpt: Checkpoint | null;
    session: Session;
    run: RunFaults;
  },
): Promise<Profiler | null> {
  const { writer } = opts;
  const outDir = plan.dir;
  const gpu = session.gpu;
  const start = ckpt ? ckpt.step : 0;
  const log = await writing(
    `${outDir}/metrics.jsonl`,
    plan.resume ? `make it writable, then ${run.resumeHint}` : "choose a writable --out",
    () => MetricsLog.open(outDir, ckpt ? ckpt.step : null, writer),
  );
  const save = (step: number) => saveRunCheckpoint(session, src, outDir, step, run, writer);

  const progress = new Progress(cfg, start, opts.progress);
  const profiler = opts.profile ? new Profiler(gpu, session.dispatchCount) : null;
  const profileFrom = cfg.steps - (opts.profile ?? 0) + 1;
  const batch = new Float32Array(cfg.batch * cfg.d_in); // x: [batch, d_in] f32, raw rows
  // A source on the device writes each batch straight into the step's x.
  const device = isDeviceSource(src) ? src : null;
  const rows = device ? null : batch;
  try {
    for (let step = start + 1; step <= cfg.steps && signal.received === null; step++) {
      run.phase = `steps ${run.lastGood + 1}–${step}`;
      if (step === cfg.recon_only_steps + 1 && cfg.recon_only_steps > 0) {
        progress.note(step, `step ${step}: recon-only phase over, full loss from here on`);
      }
      if (device) await device.nextBatchOnDevice(session.bufs.x, cfg.batch);
      else await src.nextBatch(batch);
      if (profiler && step >= profileFrom) await session.stepProfiled(rows, profiler);
      else await session.step(rows);
      await session.resample(step);
      run.done = step;
      progress.stepped();
      await opts.onStep?.(step, session);
      if (step % cfg.log_every === 0 || step === cfg.steps) {
        const { metrics, state, health: h } = await session.readMetrics();
        const sps = progress.rate();
        const phase = state.main_phase ? 2 : 1;
        const own = device?.report() ?? null;
        await writing(
          log.path,
          `the last checkpoint is kept: ${run.resumeHint}`,
          () =>
            log.append({ step, ...metrics, lr: state.lr, phase, steps_per_s: sps, ...own?.fields }),
        );
        if (isBad(h)) throw run.diverged(h, step);
        run.lastGood = step;
        progress.logged(step, sps, metrics, own?.line);
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
  return profiler;
}

/**
 * The final evaluation, sae.safetensors, metrics.json and the profile; then a replacement takes
 * the place of the run it replaces.
 */
async function finish(
  cfg: TrainConfig,
  opts: TrainOptions,
  { session, src, run, profiler }: {
    session: Session;
    src: ActivationSource;
    run: RunFaults;
    profiler: Profiler | null;
  },
  heldOut: boolean,
  plan: RunDirPlan,
  locks: DirLock[],
): Promise<TrainResult> {
  const { writer } = opts;
  const outDir = plan.dir;
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
  if (plan.target !== plan.dir) {
    await writing(`${plan.target} (replacing it with ${outDir})`, then, () => replaceRun(plan));
    locks.find((l) => l.path === join(outDir, LOCK_FILE))?.movedTo(plan.target);
  }
  if (opts.report !== false) console.log(formatReport(metrics, plan.target, heldOut));
  return { metrics, outDir: plan.target };
}

/** Locks the run's directories that exist: the target, and the run's own when it differs. */
async function lockRun(plan: RunDirPlan): Promise<DirLock[]> {
  const locks: DirLock[] = [];
  try {
    if (plan.create && plan.dir === plan.target) await Deno.mkdir(plan.dir, { recursive: true });
    for (const dir of new Set([plan.dir, plan.target])) {
      const info = await Deno.stat(dir).catch(() => null);
      if (info?.isDirectory) locks.push(await lockDir(dir));
    }
  } catch (err) {
    for (const l of locks) await l.release();
    throw err;
  }
  return locks;
}

function lockDir(dir: string): Promise<DirLock> {
  return DirLock.acquire(dir, "sae train");
}

/** Temporary files of writes into the run directory that a kill cut short (under its lock). */
async function removeRunTemps(outDir: string): Promise<void> {
  const stale = [
    ...await removeStaleTemps(outDir),
    ...await removeStaleFileTemps(
      [CONFIG_FILE, "metrics.jsonl", "metrics.json", SAE_FILE, "profile.json"].map((f) =>
        join(outDir, f)
      ),
    ),
  ];
  if (stale.length) console.error(`removed ${stale.length} unfinished write(s) of ${outDir}`);
}

/**
 * Opens the data, the device and (when resuming) the checkpoint, checks everything the run
 * depends on, and builds the session; writes nothing.
 */
async function openRun(
  cfg: TrainConfig,
  opts: TrainOptions,
  plan: RunDirPlan,
  sources: ActivationSource[],
): Promise<
  { src: ActivationSource; gpu: Gpu; ckpt: Checkpoint | null; session: Session; run: RunFaults }
> {
  const outDir = plan.dir;
  let src = await openSource(cfg);
  sources.push(src);
  if (src.dIn !== cfg.d_in) {
    throw new UserError(
      `data rows have width ${src.dIn} but d_in is ${cfg.d_in}; set --d-in ${src.dIn}`,
    );
  }
  const gpu = opts.gpu ?? await getGpu({ announce: true });
  if (isDeviceSource(src)) await src.attach(gpu);
  if (opts.wrapSource) src = opts.wrapSource(src);
  checkStepSizes(gpu, cfg);
  let ckpt: Checkpoint | null = null;
  let snap: Snapshot | null = null;
  let scale = 1;
  if (plan.resume) {
    ckpt = await resumePoint(outDir);
    if (ckpt === null) {
      console.error(
        `no checkpoint in ${outDir} (the run stopped before its first one): starting from step 0`,
      );
    } else {
      const before = checkpointConfig(ckpt) ??
        validateConfig(await readRunConfig(outDir), join(outDir, CONFIG_FILE));
      const changes = resumeChanges(before, cfg, ckpt.step, outDir);
      snap = snapshotFromTensors(cfg, ckpt.tensors, variantOf(cfg.variant).state, ckpt.path);
      scale = Number(ckpt.meta.scale ?? 1);
      if (!(scale > 0) || !Number.isFinite(scale)) {
        throw new UserError(`${ckpt.path}: its input scale ${ckpt.meta.scale} is not a number > 0`);
      }
      src.restore(ckpt.meta.source, ckpt.tensors);
      if (changes.length > 0) {
        console.error(`resume changes ${changes.join(", ")} from step ${ckpt.step + 1}`);
      }
    }
  }
  const run = new RunFaults(gpu, outDir, ckpt ? ckpt.step : null);
  const session = await run.guard(async () => {
    if (!snap) {
      const init = await initialise(cfg, src);
      return await Session.create(gpu, cfg, init.weights, init.scale);
    }
    const s = await Session.create(gpu, cfg, snap.weights, scale);
    s.restore(snap);
    console.error(`resuming ${outDir} from step ${ckpt!.step}`);
    return s;
  });
  run.session = session;
  return { src, gpu, ckpt, session, run };
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
    const own = isDeviceSource(src) ? await src.checkpointTensors() : {};
    await saveCheckpoint(
      outDir,
      step,
      { ...snapshotTensors(session.cfg, snap), ...own },
      // The config the run was trained with up to here: a resume checks what it changes.
      { scale: session.scale, source: src.state(), config: session.cfg },
      { writer },
    );
  } catch (err) {
    throw run.checkpointWriteError(err, `${outDir}/checkpoints/${checkpointName(step)}`);
  }
  run.lastCkpt = checkpointName(step);
}
