/**
 * The one interface every activation source implements: the synthetic generator now, activation
 * files later. The trainer uploads each batch to the GPU exactly once.
 */
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
  /** Restores a state produced by {@link ActivationSource.state}. */
  restore(state: unknown): void;
}
