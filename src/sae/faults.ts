/**
 * Where a run stands (last good step, last checkpoint, what it was doing), so that every fault that
 * ends it becomes one line saying what happened, what is kept and how to go on: a NaN or infinite
 * value ({@link TrainingDiverged}), a failed device ({@link TrainingDeviceFailure}), a failed write
 * ({@link OutputWriteError}).
 */
import {
  OutputWriteError,
  resumeCommand,
  TrainingDeviceFailure,
  TrainingDiverged,
  UserError,
} from "../errors.ts";
import { type Gpu, GpuFailure } from "../gpu/device.ts";
import { checkpointName } from "../run/checkpoint.ts";
import type { Health } from "../kernels/health.ts";
import type { Session } from "./session.ts";

/** Runs `fn`, turning an I/O failure into a one-line OutputWriteError that names `what`. */
export async function writing<T>(what: string, then: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UserError) throw err;
    const msg = err instanceof Error ? err.message : String(err);
    throw new OutputWriteError(`cannot write ${what}: ${msg}; ${then}`);
  }
}

const stem = (ckpt: string) => ckpt.replace(/\.safetensors$/, "");

/** The state of a run that its fault messages report. */
export class RunFaults {
  /** Last step whose log window was read and found finite. */
  lastGood: number;
  /** Last step submitted. */
  done: number;
  /** File name of the last checkpoint written, or null. */
  lastCkpt: string | null;
  /** What the run is doing ("setup", "steps 51–100", "the final checkpoint", ...). */
  phase = "setup";
  /** The session, once created (to name the kernel of a validation error). */
  session: Session | null = null;
  /** "resume with: deno task sae train --resume DIR". */
  readonly resumeHint: string;
  private readonly gpu: Gpu;

  /** `resumedFrom`: the step of the checkpoint the run resumes from, or null for a fresh run. */
  constructor(gpu: Gpu, outDir: string, resumedFrom: number | null) {
    this.gpu = gpu;
    this.lastGood = resumedFrom ?? 0;
    this.done = resumedFrom ?? 0;
    this.lastCkpt = resumedFrom === null ? null : checkpointName(resumedFrom);
    this.resumeHint = `resume with: ${resumeCommand(outDir)}`;
  }

  /** Runs `fn`; a device failure it throws becomes a TrainingDeviceFailure. */
  async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw (await this.deviceFailure(err)) ?? err;
    }
  }

  /** The one-line error for a device failure (`err`, or one the device reported), else null. */
  async deviceFailure(err: unknown): Promise<TrainingDeviceFailure | null> {
    const f = this.gpu.failureError ?? (err instanceof GpuFailure ? err : null);
    if (!f) return null;
    let kernel = f.kernel;
    let message = f.message;
    if (kernel === null && f.kind === "validation" && this.session !== null) {
      kernel = await this.session.findFailingKernel().catch(() => null);
      if (kernel !== null) {
        message = message.replace(
          /^GPU validation error/,
          `GPU validation error in kernel '${kernel}'`,
        );
      }
    }
    const kept = this.lastCkpt === null
      ? "no checkpoint had been written"
      : `the last checkpoint ${stem(this.lastCkpt)} is kept: ${this.resumeHint}`;
    return new TrainingDeviceFailure(
      `${message} (during ${this.phase}); nothing is saved from a failed device; ${kept}`,
      kernel,
    );
  }

  /** A failed checkpoint write of `path` as a one-line error (UserErrors and device faults as is). */
  checkpointWriteError(err: unknown, path: string): unknown {
    if (err instanceof UserError || this.gpu.failureError || err instanceof GpuFailure) return err;
    const msg = err instanceof Error ? err.message : String(err);
    return new OutputWriteError(
      `cannot write checkpoint ${path}: ${msg}; no partial file is left and ${
        this.lastCkpt === null
          ? "no earlier checkpoint exists"
          : `the previous checkpoint ${
            stem(this.lastCkpt)
          } is intact: free space or fix permissions, then ${this.resumeHint}`
      }`,
    );
  }

  /** The error for non-finite values flagged in the window that ends at `to`. */
  diverged(h: Health, to: number): TrainingDiverged {
    const from = this.lastGood;
    const word = (b: number) => (b === 2 ? "NaN" : "infinite");
    const kept = this.lastCkpt === null
      ? "no checkpoint had been written"
      : `the last good checkpoint ${stem(this.lastCkpt)} is kept`;
    const window = `between steps ${from} and ${to}`;
    const first = h.firstStep > 0 ? `first at step ${h.firstStep}; ` : "";
    if (h.input === 2) {
      return new TrainingDiverged(
        `the training data became NaN ${window} (${first}input batch); ${kept}: check the data`,
        from,
        to,
        ["input"],
      );
    }
    if (h.input > 0) {
      // Activation files refuse rows holding Inf, so this is (nearly always) finite values whose
      // squares overflow f32 in the batch's sums.
      return new TrainingDiverged(
        `the training data's squared norms overflowed f32 ${window} (${first}input batch: ` +
          `values above about 1e19, or rows and batches whose sums of squares pass 3.4e38, ` +
          `are finite but their squares are not); ${kept}: set normalize_activations: ` +
          `expected_average_only_in in a new run, or rescale the data`,
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
}
