/**
 * The errors a user sees. A {@link UserError} (and every subclass) is printed by the CLI as one
 * line, with no stack trace, and exits with status 2; {@link TrainingInterrupted} exits with the
 * signal's status. Anything else is a bug and keeps its stack.
 */

/**
 * An error caused by the user's input or environment (bad flag, bad file, missing adapter). The CLI
 * prints its message as one line, with no stack trace, and exits with status 2.
 */
export class UserError extends Error {
  /** @param message one line naming the problem and the fix */
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}

/** The command that continues a run. */
export function resumeCommand(outDir: string): string {
  return `deno task sae train --resume ${outDir}`;
}

/**
 * A command stopped on SIGINT or SIGTERM after leaving its outputs consistent. The CLI prints the
 * message as one line and exits with {@link Interrupted.exitCode}.
 */
export class Interrupted extends Error {
  /** The signal received. */
  readonly signal: "SIGINT" | "SIGTERM";
  /** 130 for SIGINT, 143 for SIGTERM (128 + the signal's number). */
  readonly exitCode: number;
  constructor(signal: "SIGINT" | "SIGTERM", message: string) {
    super(message);
    this.name = "Interrupted";
    this.signal = signal;
    this.exitCode = signal === "SIGINT" ? 130 : 143;
  }
}

/**
 * Training stopped on SIGINT or SIGTERM after writing a checkpoint of the last finished step.
 */
export class TrainingInterrupted extends Interrupted {
  /** Steps finished (and checkpointed, when `checkpoint` is set). */
  readonly step: number;
  /** The checkpoint to resume from, or null when nothing had been trained. */
  readonly checkpoint: string | null;
  constructor(signal: "SIGINT" | "SIGTERM", step: number, outDir: string, ckpt: string | null) {
    super(
      signal,
      ckpt === null
        ? `interrupted before the first step; nothing was saved`
        : `interrupted at step ${step}; resume with: ${resumeCommand(outDir)}`,
    );
    this.name = "TrainingInterrupted";
    this.step = step;
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
