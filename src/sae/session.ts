/**
 * A training session on the GPU: the step's buffers and dispatches, built once; `step()` uploads
 * one batch and submits the step with no readback; metrics and weights are read only when asked.
 */
import type { TrainConfig } from "../config.ts";
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, encodeDispatches } from "../gpu/dispatch.ts";
import type { Profiler } from "../gpu/profile.ts";
import { baseline } from "./baseline.ts";
import { paper } from "./paper.ts";
import { type Health, health, healthKernel } from "../kernels/health.ts";
import { METRIC_WORDS, type StepMetrics, summarize } from "../kernels/metrics.ts";
import {
  allocStep,
  PARAM_NAMES,
  type SaeWeights,
  sparseEnabled,
  type StepBuffers,
} from "./model.ts";
import { type StepState, unpackState } from "../kernels/common.ts";
import { buildStep, forwardDispatches, type StepHooks, type Variant } from "./step.ts";

/** The variants the trainer knows, by config name: adding one is a file and a line here. */
export const VARIANTS: Record<TrainConfig["variant"], Variant> = { baseline, paper };

/** Optimizer and statistics state that a checkpoint must hold besides the weights. */
export interface SessionState {
  adamM: SaeWeights;
  adamV: SaeWeights;
  lastFired: Uint32Array;
  state: Uint32Array;
  /** The variant's extra per-latent state, by name. */
  extra: Record<string, Float32Array>;
  /**
   * The metric accumulators of the window in progress ([METRIC_WORDS]), so that a run resumed
   * from a checkpoint between log steps logs the same values; absent in older checkpoints (zeros).
   */
  metricsAcc?: Float32Array;
}

/** One run's GPU state. */
export class Session {
  readonly gpu: Gpu;
  readonly cfg: TrainConfig;
  readonly bufs: StepBuffers;
  readonly scale: number;
  private dispatches: Dispatch[] = [];
  private hooks: StepHooks = {};
  private extra: Record<string, GPUBuffer> = {};
  private clearAcc = false;
  private inflight: Promise<void>[] = [];

  private constructor(gpu: Gpu, cfg: TrainConfig, bufs: StepBuffers, scale: number) {
    this.gpu = gpu;
    this.cfg = cfg;
    this.bufs = bufs;
    this.scale = scale;
  }

  /** Allocates buffers, uploads `weights`, and builds the step of `cfg.variant`. */
  static async create(
    gpu: Gpu,
    cfg: TrainConfig,
    weights: SaeWeights,
    scale: number,
  ): Promise<Session> {
    const bufs = allocStep(
      gpu,
      cfg.d_in,
      cfg.d_sae,
      cfg.batch,
      weights,
      sparseEnabled(gpu, cfg),
    );
    const s = new Session(gpu, cfg, bufs, scale);
    const ctx = { gpu, cfg, bufs, scale };
    const parts = await VARIANTS[cfg.variant](ctx);
    s.hooks = parts.hooks;
    s.extra = parts.extra;
    // The parameter health check ends every step (O(params), no readback: it sets a flag word
    // in the accumulators, read with the logged scalars).
    s.dispatches = [
      ...await buildStep(ctx, parts.hooks),
      ...await healthKernel(gpu, bufs.params, bufs.acc),
    ];
    return s;
  }

  /** The forward pass and metrics into `acc` (no update): for evaluation. */
  forward(acc: GPUBuffer): Promise<Dispatch[]> {
    const ctx = { gpu: this.gpu, cfg: this.cfg, bufs: { ...this.bufs, acc }, scale: this.scale };
    return forwardDispatches(ctx, this.hooks);
  }

  /**
   * Uploads a raw batch ([batch, d_in] f32) and submits one step. At most two steps are queued:
   * the host waits for the step before last, which bounds memory without stalling the GPU.
   */
  async step(batch: Float32Array): Promise<void> {
    this.gpu.throwIfFailed();
    if (this.inflight.length >= 2) await this.gpu.guard(this.inflight.shift()!);
    this.gpu.write(this.bufs.x, batch);
    const enc = this.gpu.device.createCommandEncoder({ label: "train step" });
    if (this.clearAcc) {
      enc.clearBuffer(this.bufs.acc);
      this.clearAcc = false;
    }
    encodeDispatches(enc, this.dispatches);
    this.gpu.submit([enc.finish()]);
    const done = this.gpu.device.queue.onSubmittedWorkDone();
    done.catch(() => {}); // a rejection surfaces through guard() above, never as unhandled
    this.inflight.push(done);
  }

  /** Dispatches in one step (the capacity a {@link Profiler} of the step needs). */
  get dispatchCount(): number {
    return this.dispatches.length;
  }

  /** The step's dispatch labels, in order (several for a kernel split over views or chunks). */
  dispatchLabels(): string[] {
    return this.dispatches.map((d) => d.label);
  }

  /**
   * One step like {@link Session.step}, each kernel timed by `profiler` (same kernels, same
   * order, so the same result); waits for the step to finish. Returns per-dispatch milliseconds.
   */
  async stepProfiled(batch: Float32Array, profiler: Profiler): Promise<number[]> {
    await this.sync();
    this.gpu.write(this.bufs.x, batch);
    const clear = this.clearAcc;
    this.clearAcc = false;
    return await profiler.run(this.dispatches, (enc) => {
      if (clear) enc.clearBuffer(this.bufs.acc);
    });
  }

  /**
   * Reads and resets the metric accumulators; also returns the step state and the window's
   * health flags (non-finite loss terms, batch or parameters).
   */
  async readMetrics(): Promise<{ metrics: StepMetrics; state: StepState; health: Health }> {
    const [acc, st] = await this.gpu.readMany([
      { buf: this.bufs.acc, bytes: METRIC_WORDS * 4 },
      { buf: this.bufs.state },
    ]);
    this.clearAcc = true;
    const words = new Uint32Array(st.buffer, st.byteOffset, st.length);
    return { metrics: summarize(acc), state: unpackState(words), health: health(acc) };
  }

  /** Reads the four parameters. */
  async readWeights(): Promise<SaeWeights> {
    const P = this.bufs.params;
    const got = await this.gpu.readMany(
      PARAM_NAMES.map((n) => ({ buf: P[n].p, bytes: P[n].size * 4 })),
    );
    return Object.fromEntries(
      PARAM_NAMES.map((n, i) => [n, got[i].slice()]),
    ) as unknown as SaeWeights;
  }

  /** Reads the optimizer moments, latent statistics and step state (for checkpoints). */
  async readState(): Promise<SessionState> {
    const P = this.bufs.params;
    const reqs = [
      ...PARAM_NAMES.map((n) => ({ buf: P[n].m, bytes: P[n].size * 4 })),
      ...PARAM_NAMES.map((n) => ({ buf: P[n].v, bytes: P[n].size * 4 })),
      { buf: this.bufs.lastFired, bytes: this.cfg.d_sae * 4 },
      { buf: this.bufs.state },
      ...Object.values(this.extra).map((buf) => ({ buf, bytes: this.cfg.d_sae * 4 })),
      { buf: this.bufs.acc, bytes: METRIC_WORDS * 4 },
    ];
    const got = await this.gpu.readMany(reqs);
    const pick = (o: number) =>
      Object.fromEntries(
        PARAM_NAMES.map((n, i) => [n, got[o + i].slice()]),
      ) as unknown as SaeWeights;
    const u32 = (f: Float32Array) => new Uint32Array(f.slice().buffer);
    const extra = Object.fromEntries(
      Object.keys(this.extra).map((n, i) => [n, got[10 + i].slice()]),
    );
    // Accumulators already read at a log step are cleared before the next step: they hold zeros.
    const acc = this.clearAcc ? new Float32Array(METRIC_WORDS) : got[got.length - 1].slice();
    return {
      adamM: pick(0),
      adamV: pick(4),
      lastFired: u32(got[8]),
      state: u32(got[9]),
      extra,
      metricsAcc: acc,
    };
  }

  /** Names of the variant's extra state buffers. */
  extraNames(): string[] {
    return Object.keys(this.extra);
  }

  /** Restores moments, statistics and step state saved by {@link Session.readState}. */
  restoreState(s: SessionState): void {
    const P = this.bufs.params;
    for (const n of PARAM_NAMES) {
      this.gpu.write(P[n].m, s.adamM[n]);
      this.gpu.write(P[n].v, s.adamV[n]);
    }
    this.gpu.write(this.bufs.lastFired, s.lastFired);
    this.gpu.write(this.bufs.state, s.state);
    for (const [name, buf] of Object.entries(this.extra)) this.gpu.write(buf, s.extra[name]);
    if (s.metricsAcc) {
      this.gpu.write(this.bufs.acc, s.metricsAcc);
      this.clearAcc = false;
    }
  }

  /**
   * After a validation failure whose message names no kernel: replays each dispatch of the step
   * alone inside an error scope and returns the label of the first one the device rejects, or
   * null. It clobbers the GPU state, so it is only for the error report of a run that is over.
   */
  async findFailingKernel(timeoutMs = 5000): Promise<string | null> {
    const device = this.gpu.device;
    const timeout = new Promise<null>((r) => setTimeout(() => r(null), timeoutMs));
    const search = (async () => {
      for (const d of this.dispatches) {
        device.pushErrorScope("validation");
        const enc = device.createCommandEncoder({ label: `diagnose ${d.label}` });
        encodeDispatches(enc, [d]);
        device.queue.submit([enc.finish()]);
        if (await device.popErrorScope()) return d.label;
      }
      return null;
    })();
    return await Promise.race([search, timeout]);
  }

  /** Waits for all queued steps and surfaces any device error. */
  async sync(): Promise<void> {
    this.inflight = [];
    await this.gpu.sync();
  }
}
