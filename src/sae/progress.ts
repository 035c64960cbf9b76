/**
 * What a run shows while it trains, on stderr: a progress bar on a terminal, else one line about
 * every tenth of the run; the end of the recon-only phase; the kernel profile at the end.
 */
import cliProgress from "cli-progress";
import type { TrainConfig } from "../config.ts";
import type { Gpu } from "../gpu/device.ts";
import { formatProfile, type Profiler } from "../gpu/profile.ts";
import type { StepMetrics } from "../kernels/metrics.ts";

/** A one-line summary of logged metrics. */
function fmtLine(step: number, total: number, sps: number, m: StepMetrics, extra?: string) {
  return `step ${step}/${total} | ${sps.toFixed(1)} steps/s | loss ${m.loss.toFixed(4)} | ` +
    (m.ortho !== 0 ? `ortho ${m.ortho.toPrecision(3)} | ` : "") +
    `L0 ${m.l0.toFixed(2)} | EV ${m.explained_variance.toFixed(4)} | dead ${
      (100 * m.dead_fraction).toFixed(1)
    }%` + (m.sparse_fraction > 0 ? ` | sparse ${(100 * m.sparse_fraction).toFixed(0)}%` : "") +
    (extra ? ` | ${extra}` : "");
}

/** The bar or the lines of one run, and the steps/s between log steps. */
export class Progress {
  private readonly bar: cliProgress.SingleBar | null;
  private readonly total: number;
  private readonly printEvery: number;
  private t0 = performance.now();
  private stepsSince = 0;

  /** `start`: the step the run starts after (0, or the checkpoint's when resuming). */
  constructor(cfg: TrainConfig, start: number, bar: boolean) {
    this.total = cfg.steps;
    this.bar = bar
      ? new cliProgress.SingleBar({
        format:
          "train |{bar}| {value}/{total} | {sps} steps/s | loss {loss} | L0 {l0} | EV {ev}{extra}",
        stream: process.stderr,
        hideCursor: true,
      }, cliProgress.Presets.shades_classic)
      : null;
    this.bar?.start(cfg.steps, start, { sps: "-", loss: "-", l0: "-", ev: "-", extra: "" });
    this.printEvery = Math.max(
      cfg.log_every,
      Math.ceil(cfg.steps / 10 / cfg.log_every) * cfg.log_every,
    );
  }

  /** A line of news before `step` (the bar is moved to the step before it first). */
  note(step: number, line: string): void {
    this.bar?.update(step - 1, {});
    console.error(line);
  }

  /** Counts one submitted step. */
  stepped(): void {
    this.stepsSince++;
  }

  /** Steps per second since the last call (or the start). */
  rate(): number {
    const now = performance.now();
    const sps = this.stepsSince / ((now - this.t0) / 1000);
    this.t0 = now;
    this.stepsSince = 0;
    return sps;
  }

  /** Shows the metrics logged at `step` (and `extra`, the data source's own words). */
  logged(step: number, sps: number, metrics: StepMetrics, extra?: string): void {
    if (this.bar) {
      this.bar.update(step, {
        sps: sps.toFixed(1),
        loss: metrics.loss.toFixed(4),
        l0: metrics.l0.toFixed(2),
        ev: metrics.explained_variance.toFixed(4),
        extra: extra ? ` | ${extra}` : "",
      });
    } else if (step % this.printEvery === 0 || step === this.total) {
      console.error(fmtLine(step, this.total, sps, metrics, extra));
    }
  }

  /** Stops the bar. */
  stop(): void {
    this.bar?.stop();
  }
}

/** Prints the profiler's per-kernel table and returns profile.json's content. */
export function reportProfile(profiler: Profiler, gpu: Gpu): Record<string, unknown> {
  const kernels = profiler.totalsInOrder();
  const steps = profiler.runs;
  const total = kernels.reduce((a, k) => a + k.ms, 0);
  console.error(
    `\nper-kernel GPU time over the last ${steps} steps (${profiler.method}; ` +
      `${(total / Math.max(steps, 1)).toFixed(2)} ms/step on ${gpu.adapterName}):\n` +
      formatProfile(kernels),
  );
  return {
    adapter: gpu.adapterName,
    method: profiler.method,
    steps,
    ms_per_step: total / Math.max(steps, 1),
    kernels: kernels.map((k) => ({ ...k, share: k.ms / Math.max(total, 1e-12) })),
  };
}
