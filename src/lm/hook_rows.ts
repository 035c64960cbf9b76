/**
 * A hook's activations for batches of contexts, as `sae harvest` writes them: the forward pass
 * runs on the GPU up to the hook ({@link LmForward} with `stopAtHook`), the `rows` kernel drops
 * the BOS at position 0 of every context, and only those rows come back to the host.
 *
 * @example
 * ```ts
 * import { getGpu } from "../gpu/device.ts";
 * import { GpuLm } from "./forward.ts";
 * import { HookRows } from "./hook_rows.ts";
 * const lm = GpuLm.upload(await getGpu(), model);
 * const rows = await HookRows.build(lm, { hook: "blocks.2.hook_resid_pre", context: 128, batch: 16 });
 * const x = await rows.read(tokens); // tokens: Int32Array [n, 128], n ≤ 16 → x: [n·127, d] f32
 * ```
 * @module
 */
import type { Dispatch } from "../gpu/dispatch.ts";
import { copyRowsDispatches } from "../kernels/rows.ts";
import { type GpuLm, LmForward } from "./forward.ts";
import { parseHook } from "./hooks.ts";

/** Shape of a {@link HookRows}. */
export interface HookRowsSpec {
  /** Hook point, TransformerLens-named. */
  hook: string;
  /** Tokens per context, BOS at position 0 included. */
  context: number;
  /** Contexts per forward pass (a call may pass fewer). */
  batch: number;
}

/** The forward pass up to one hook with the BOS rows dropped on the device; built once. */
export class HookRows {
  readonly forward: LmForward;
  readonly spec: HookRowsSpec;
  /** Width of the hook's activations (d_model). */
  readonly d: number;
  /** The pass and the row copy, in order (for profiles and benches). */
  readonly dispatches: readonly Dispatch[];
  // rows: [batch, context − 1, d] f32, the hook's rows without position 0
  private readonly rows: GPUBuffer;
  private readonly copy: Dispatch[];

  private constructor(forward: LmForward, spec: HookRowsSpec, rows: GPUBuffer, copy: Dispatch[]) {
    this.forward = forward;
    this.spec = spec;
    this.d = forward.lm.config.dModel;
    this.rows = rows;
    this.copy = copy;
    this.dispatches = [...forward.dispatches, ...copy];
  }

  /**
   * Builds the pass on `lm`; an unknown hook or a context longer than the model's stops with a
   * UserError (the valid hooks listed, or the longest context).
   */
  static async build(lm: GpuLm, spec: HookRowsSpec): Promise<HookRows> {
    parseHook(spec.hook, lm.config);
    if (!Number.isInteger(spec.context) || spec.context < 2) {
      throw new Error(`hook rows: a context of ${spec.context} tokens has no row after BOS`);
    }
    const forward = await LmForward.build(lm, {
      batch: spec.batch,
      seq: spec.context,
      hooks: [spec.hook],
      stopAtHook: true,
    });
    const d = lm.config.dModel;
    const rows = lm.gpu.buffer("hook rows", spec.batch * (spec.context - 1) * d * 4);
    const copy = await copyRowsDispatches(
      lm.gpu,
      { batch: spec.batch, seq: spec.context, dim: d, skip: 1 },
      { x: forward.hooks[spec.hook], out: rows },
    );
    return new HookRows(forward, spec, rows, copy);
  }

  /**
   * The hook's activations at positions 1..context−1 of each of the n contexts of `tokens`
   * (Int32Array [n, context], n ≤ batch, each beginning with BOS): [n·(context − 1), d] f32,
   * context-major.
   */
  async read(tokens: Int32Array): Promise<Float32Array> {
    const { batch, context } = this.spec;
    const n = tokens.length / context;
    if (!Number.isInteger(n) || n < 1 || n > batch) {
      throw new Error(`hook rows: ${tokens.length} token ids are not 1..${batch} contexts`);
    }
    // A short batch is padded with copies of its first context; their rows are not read back.
    const ids = new Uint32Array(batch * context);
    ids.set(tokens);
    for (let c = n; c < batch; c++) ids.set(tokens.subarray(0, context), c * context);
    this.forward.run(ids, undefined, this.copy);
    return await this.forward.lm.gpu.read(this.rows, n * (context - 1) * this.d * 4);
  }

  /** Frees the pass's buffers (not the model's weights). */
  destroy(): void {
    this.forward.lm.gpu.destroyBuffer(this.rows);
    this.forward.destroy();
  }
}
