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
import { getGpu } from "../gpu/device.ts";
import { encodeDispatches } from "../gpu/dispatch.ts";
import { loadLatestCheckpoint, saveCheckpoint } from "../run/checkpoint.ts";
import { MetricsLog, prepareRunDir, writeConfig, writeJson } from "../run/rundir.ts";
import { f32Tensor, type Tensor, tensorToF32 } from "../run/safetensors.ts";
import { atomicWrite } from "../run/atomic.ts";
import { encodeSafetensors } from "../run/safetensors.ts";
import { METRIC_WORDS, type StepMetrics, summarize } from "./metrics.ts";
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
async function checkpoint(session: Session, src: ActivationSource, outDir: string, step: number) {
  const [w, st] = [await session.readWeights(), await session.readState()];
  const tensors: Record<string, Tensor> = {
    ...weightTensors(session.cfg, w),
    ...weightTensors(session.cfg, st.adamM, "adam_m."),
    ...weightTensors(session.cfg, st.adamV, "adam_v."),
    last_fired: u32Tensor(st.lastFired),
    step_state: u32Tensor(st.state),
  };
  for (const [name, v] of Object.entries(st.extra)) {
    tensors[`extra.${name}`] = f32Tensor([v.length], v);
  }
  await saveCheckpoint(outDir, step, tensors, { scale: session.scale, source: src.state() });
}

/** A one-line summary of logged metrics. */
function fmtLine(step: number, total: number, sps: number, m: StepMetrics): string {
  return `step ${step}/${total} | ${sps.toFixed(1)} steps/s | loss ${m.loss.toFixed(4)} | ` +
    `L0 ${m.l0.toFixed(2)} | EV ${m.explained_variance.toFixed(4)} | dead ${
      (100 * m.dead_fraction).toFixed(1)
    }%`;
}

/**
 * Trains an SAE as configured, writing the run directory; returns the final metrics.
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
  const { outDir } = opts;
  await prepareRunDir(outDir, { resume: opts.resume, overwrite: opts.overwrite });
  const src = await openSource(cfg);
  if (src.dIn !== cfg.d_in) {
    throw new UserError(
      `data rows have width ${src.dIn} but d_in is ${cfg.d_in}; set --d-in ${src.dIn}`,
    );
  }
  const gpu = await getGpu({ announce: true });
  const ckpt = opts.resume ? await loadLatestCheckpoint(outDir) : null;
  if (opts.resume && !ckpt) {
    console.error(`no usable checkpoint in ${outDir}: starting from step 0`);
  }
  await writeConfig(outDir, cfg);

  let session: Session;
  let start = 0;
  if (ckpt) {
    const scale = Number(ckpt.meta.scale ?? 1);
    session = await Session.create(gpu, cfg, pickWeights(ckpt.tensors, ""), scale);
    const st: SessionState = {
      adamM: pickWeights(ckpt.tensors, "adam_m."),
      adamV: pickWeights(ckpt.tensors, "adam_v."),
      lastFired: u32Of(ckpt.tensors.last_fired, "last_fired"),
      state: u32Of(ckpt.tensors.step_state, "step_state"),
      extra: {},
    };
    for (const name of session.extraNames()) {
      const t = ckpt.tensors[`extra.${name}`];
      if (!t) {
        throw new UserError(`checkpoint lacks 'extra.${name}': was it written by another variant?`);
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
  const log = await MetricsLog.open(outDir, ckpt ? ckpt.step : null);

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
  let t0 = performance.now(), stepsSince = 0;
  try {
    for (let step = start + 1; step <= cfg.steps; step++) {
      if (step === cfg.recon_only_steps + 1 && cfg.recon_only_steps > 0) {
        const line = `step ${step}: recon-only phase over, full loss from here on`;
        if (bar) bar.update(step - 1, {});
        console.error(line);
      }
      await src.nextBatch(batch);
      await session.step(batch);
      stepsSince++;
      if (step % cfg.log_every === 0 || step === cfg.steps) {
        const { metrics, state } = await session.readMetrics();
        const now = performance.now();
        const sps = stepsSince / ((now - t0) / 1000);
        t0 = now;
        stepsSince = 0;
        await log.append({
          step,
          ...metrics,
          lr: state.lr,
          phase: state.main_phase ? 2 : 1,
          steps_per_s: sps,
        });
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
        await checkpoint(session, src, outDir, step);
      }
    }
    await session.sync();
    if (start < cfg.steps) await checkpoint(session, src, outDir, cfg.steps);
  } finally {
    bar?.stop();
    log.close();
  }

  const metrics = await evaluate(session, src);
  const weights = await session.readWeights();
  await atomicWrite(
    `${outDir}/sae.safetensors`,
    encodeSafetensors(weightTensors(cfg, weights), {
      format: "sae-webgpu",
      d_in: String(cfg.d_in),
      d_sae: String(cfg.d_sae),
      scale: String(session.scale),
    }),
  );
  await writeJson(outDir, "metrics.json", metrics);
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
  acc.destroy();
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
