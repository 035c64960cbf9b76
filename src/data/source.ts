/**
 * The interface every activation source implements (the synthetic generator, activation files,
 * the live language model), and the extra methods of a source that makes its batches on the
 * device ({@link DeviceSource}). The trainer uploads each host batch to the GPU exactly once; a
 * device source's batches never pass through the host.
 */
import type { Gpu } from "../gpu/device.ts";
import type { Tensor } from "../run/safetensors.ts";

/** A stream of activation rows. */
export interface ActivationSource {
  /** Width of each activation row. */
  readonly dIn: number;
  /** Human-readable description for logs ("synthetic(n=256, d=64, seed=1)", "acts/*.npy"). */
  readonly description: string;
  /**
   * Rows the source holds before it serves them again (activation files), or undefined for a
   * generator that never repeats: whether a run's final metrics can be on rows it did not train
   * on.
   */
  readonly totalRows?: number;
  /**
   * Fills `out` (row-major [rows, dIn] f32, rows = out.length / dIn) with the next rows.
   * Deterministic given the source's construction arguments and state.
   */
  nextBatch(out: Float32Array): Promise<void>;
  /** JSON-serialisable state; `restore(state())` later continues the exact same stream. */
  state(): unknown;
  /**
   * Restores a state produced by {@link ActivationSource.state} (with the tensors of
   * {@link DeviceSource.checkpointTensors}, for a source that has them).
   */
  restore(state: unknown, tensors?: Record<string, Tensor>): void;
  /** Waits for work the source started on its own and frees what it holds (when it has any). */
  close?(): Promise<void>;
}

/**
 * What the training log shows about a source's own work (the live model): fields added to the
 * metrics.jsonl record and a few words for the progress line.
 */
export interface SourceReport {
  fields: Record<string, number | string>;
  line: string;
}

/**
 * A source whose batches are computed on the device the SAE trains on (the live language
 * model): `nextBatchOnDevice` leaves the next batch in the step's input buffer; `nextBatch`
 * still works (a readback), for the initial sample and the final evaluation.
 */
export interface DeviceSource extends ActivationSource {
  /** Puts the source on `gpu` (weights, buffers, kernels); before any batch is asked for. */
  attach(gpu: Gpu): Promise<void>;
  /** Submits the work that leaves the next `rows` rows in `x` ([rows, dIn] f32, raw units). */
  nextBatchOnDevice(x: GPUBuffer, rows: number): Promise<void>;
  /** Tensors a checkpoint holds beside {@link ActivationSource.state} (read from the device). */
  checkpointTensors(): Promise<Record<string, Tensor>>;
  /** The source's rates so far, for the log. */
  report(): SourceReport | null;
}

/** Whether `src` makes its batches on the device. */
export function isDeviceSource(src: ActivationSource): src is DeviceSource {
  return typeof (src as Partial<DeviceSource>).nextBatchOnDevice === "function";
}
