/**
 * A training session on the GPU: the step's buffers and dispatches, built once; `step()` uploads
 * one batch and submits the step with no readback; metrics and weights are read only when asked.
 */
import type { TrainConfig } from "../config.ts";
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, encodeDispatches } from "../gpu/dispatch.ts";
import type { Profiler } from "../gpu/profile.ts";
import { METRIC_WORDS, type StepMetrics, summarize } from "../kernels/metrics.ts";
import { type Health, health, healthKernel } from "../kernels/health.ts";
import {
  allocStep,
  PARAM_NAMES,
  type ParamBuffers,
  type SaeWeights,
  sparseEnabled,
  type StepBuffers,
} from "./model.ts";
import type { Snapshot } from "./snapshot.ts";
import { type StepState, unpackState } from "../kernels/common.ts";
import { buildStep, forwardDispatches, type StepHooks } from "./step.ts";
import { rowTopKActivation } from "./forward.ts";
import { variantOf } from "./variants.ts";
import { buildResampler, resamplePlan, type Resampler } from "./resample.ts";

/** A buffer to read back (`bytes`: a prefix of it; default the whole buffer). */
interface Readback {
  buf: GPUBuffer;
  bytes?: number;
}

/** One run's GPU state. */
export class Session {
  readonly gpu: Gpu;
  readonly cfg: TrainConfig;
  readonly bufs: StepBuffers;
  readonly scale: number;
  private dispatches: Dispatch[] = [];
  private hooks: StepHooks = {};
  /** The encoder the trained SAE applies (the final evaluation's forward pass). */
  private inference: StepHooks = {};
  private extra: Record<string, GPUBuffer> = {};
  private clearAcc = false;
  /** Dead-latent resampling (resample_steps > 0): its buffers and dispatches. */
  private resampler: Resampler | null = null;
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
      METRIC_WORDS,
      sparseEnabled(gpu, cfg),
    );
    const s = new Session(gpu, cfg, bufs, scale);
    const variant = variantOf(cfg.variant);
    const k = variant.topk?.(cfg) ?? null;
    const activation = k === null
      ? undefined
      : await rowTopKActivation(gpu, { B: cfg.batch, m: cfg.d_sae, k }, bufs.f);
    const ctx = { gpu, cfg, bufs, scale, activation };
    const parts = await variant.build(ctx);
    const tau = variant.thresholds(cfg);
    s.inference = { thresholds: tau === null ? undefined : parts.state[tau], activation };
    // Training applies the declared encoder unless the variant replaces the activation.
    s.hooks = { ...parts.hooks, ...(parts.hooks.activation ? {} : s.inference) };
    // In the declared order: the order of the `extra.*` tensors in checkpoints.
    s.extra = Object.fromEntries(variant.state.map((n) => [n, parts.state[n]]));
    // The parameter health check ends every step (O(params), no readback: it sets a flag word
    // in the accumulators, read with the logged scalars).
    s.dispatches = [
      ...await buildStep(ctx, s.hooks),
      ...await healthKernel(gpu, bufs.params, bufs.acc),
    ];
    if (cfg.resample_steps > 0) s.resampler = await buildResampler(gpu, cfg, bufs);
    return s;
  }

  /** The forward pass of the trained SAE's encoder and metrics into `acc` (no update): for evaluation. */
  forward(acc: GPUBuffer): Promise<Dispatch[]> {
    const bufs = { ...this.bufs, acc };
    return forwardDispatches(
      { gpu: this.gpu, cfg: this.cfg, bufs, scale: this.scale },
      this.inference,
    );
  }

  /**
   * Uploads a raw batch ([batch, d_in] f32) and submits one step; `null`: x already holds the
   * batch (a source on the device wrote it). At most two steps are queued: the host waits for
   * the step before last, which bounds memory without stalling the GPU.
   */
  async step(batch: Float32Array | null): Promise<void> {
    this.gpu.throwIfFailed();
    if (this.inflight.length >= 2) await this.gpu.guard(this.inflight.shift()!);
    if (batch) this.gpu.write(this.bufs.x, batch);
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

  /**
   * After the step `step` (its encoder input and row errors still in their buffers), on a resample
   * step (step % resample_steps == 0, the last step excepted: its latents would stay untrained):
   * reads back the row errors and last-fired steps, picks the dead latents and the rows
   * (src/sae/resample.ts) and re-initialises them on the GPU. Returns how many latents were
   * resampled (0 on other steps, which read nothing back).
   */
  async resample(step: number): Promise<number> {
    const r = this.resampler;
    if (!r || step % this.cfg.resample_steps !== 0 || step >= this.cfg.steps) return 0;
    const { rowstats, lastFired } = this.bufs;
    const [rows, fired] = await this.gpu.readMany([
      { buf: rowstats, bytes: this.cfg.batch * 3 * 4 },
      { buf: lastFired, bytes: this.cfg.d_sae * 4 },
    ]);
    const plan = resamplePlan({
      step,
      window: this.cfg.resample_steps,
      lastFired: new Uint32Array(fired.buffer, fired.byteOffset, fired.length),
      rowError: Array.from({ length: this.cfg.batch }, (_, b) => rows[3 * b]),
      power: this.cfg.resample_rule === "anthropic" ? 2 : 1,
      seed: this.cfg.seed,
    });
    if (plan.pairs.length === 0) return 0;
    this.gpu.write(r.pairs, Uint32Array.from([plan.pairs.length, ...plan.pairs.flat()]));
    this.gpu.write(r.dead, plan.dead);
    const enc = this.gpu.device.createCommandEncoder({ label: "resample" });
    encodeDispatches(enc, r.dispatches);
    this.gpu.submit([enc.finish()]);
    return plan.pairs.length;
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
  async stepProfiled(batch: Float32Array | null, profiler: Profiler): Promise<number[]> {
    await this.sync();
    if (batch) this.gpu.write(this.bufs.x, batch);
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
    const [weights] = await this.readGroups([this.params((p) => p.p)]);
    return weights as unknown as SaeWeights;
  }

  /** Reads everything a checkpoint holds, in one readback (see src/sae/snapshot.ts). */
  async snapshot(): Promise<Snapshot> {
    const { lastFired, state, acc } = this.bufs;
    const extra = Object.fromEntries(
      Object.entries(this.extra).map(([n, buf]) => [n, { buf, bytes: this.cfg.d_sae * 4 }]),
    );
    const [weights, adamM, adamV, stats, extraGot] = await this.readGroups([
      this.params((p) => p.p),
      this.params((p) => p.m),
      this.params((p) => p.v),
      {
        lastFired: { buf: lastFired, bytes: this.cfg.d_sae * 4 },
        state: { buf: state },
        acc: { buf: acc, bytes: METRIC_WORDS * 4 },
      },
      extra,
    ]);
    const u32 = (f: Float32Array) => new Uint32Array(f.slice().buffer);
    return {
      weights: weights as unknown as SaeWeights,
      adamM: adamM as unknown as SaeWeights,
      adamV: adamV as unknown as SaeWeights,
      lastFired: u32(stats.lastFired),
      state: u32(stats.state),
      extra: extraGot,
      // Accumulators already read at a log step are cleared before the next step: they hold zeros.
      metricsAcc: this.clearAcc ? new Float32Array(METRIC_WORDS) : stats.acc,
    };
  }

  /** Restores moments, statistics and step state of a snapshot (the weights are set by create). */
  restore(s: Snapshot): void {
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

  /** One buffer of each parameter (`which` picks p, g, m or v), by parameter name. */
  private params(which: (p: ParamBuffers) => GPUBuffer): Record<string, Readback> {
    const P = this.bufs.params;
    return Object.fromEntries(
      PARAM_NAMES.map((n) => [n, { buf: which(P[n]), bytes: P[n].size * 4 }]),
    );
  }

  /** Reads groups of named buffers in one batched readback; each value is a private copy. */
  private async readGroups(
    groups: Record<string, Readback>[],
  ): Promise<Record<string, Float32Array>[]> {
    const got = await this.gpu.readMany(groups.flatMap((g) => Object.values(g)));
    let i = 0;
    return groups.map((g) => Object.fromEntries(Object.keys(g).map((n) => [n, got[i++].slice()])));
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
