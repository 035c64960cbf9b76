/**
 * Splicing an SAE into a language model (wgsl/splice.wgsl): the kernels that write a hook's
 * replacement into its activations in place, where the forward pass reaches the hook (the splice
 * point of src/lm/forward.ts). The SAE's own forward pass (src/sae/forward.ts) computes x̂ between
 * them; SAEBench's core evaluation needs the reconstruction and zero ablation.
 */
import spliceSrc from "../../wgsl/splice.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { WG, withCommon } from "./common.ts";

/** Shape of a hook's activations: [rows, dim]. */
export interface SpliceSpec {
  rows: number;
  dim: number;
}

const code = withCommon(spliceSrc);

/**
 * act[t] ← x̂[t] / scale where keep[t] ≠ 0; rows with keep[t] = 0 keep their activation (SAELens'
 * `torch.where(mask, unscale(sae_out), activations)` in get_recons_loss).
 */
export async function spliceOutDispatches(
  gpu: Gpu,
  spec: SpliceSpec & {
    /** The SAE's input scale: x̂ is in scaled units, act in raw ones. */
    scale: number;
  },
  bufs: {
    /** [rows, dim] f32, replaced in place. */
    act: GPUBuffer;
    /** [rows, dim] f32: the SAE's reconstruction of scale·act. */
    xhat: GPUBuffer;
    /** [rows] u32: 0 leaves the row as it is. */
    keep: GPUBuffer;
  },
): Promise<Dispatch[]> {
  const n = spec.rows * spec.dim;
  return [
    await kernel(gpu, {
      label: "splice out",
      code,
      entry: "splice_out",
      constants: { ROWS: spec.rows, D: spec.dim, SCALE: spec.scale },
      buffers: [bufs.act, bufs.xhat, bufs.keep],
      groups: groupsFor(n, WG),
      cost: { flops: n, bytes: n * 12 + spec.rows * 4 },
    }),
  ];
}

/** act ← 0 (zero ablation of a hook). */
export async function zeroDispatches(
  gpu: Gpu,
  spec: SpliceSpec,
  bufs: { act: GPUBuffer },
): Promise<Dispatch[]> {
  const n = spec.rows * spec.dim;
  return [
    await kernel(gpu, {
      label: "zero ablation",
      code,
      entry: "zero",
      constants: { ROWS: spec.rows, D: spec.dim },
      buffers: [bufs.act],
      groups: groupsFor(n, WG),
      cost: { flops: 0, bytes: n * 4 },
    }),
  ];
}

/** Reference of {@link spliceOutDispatches}: the spliced activations (a new array). */
export function spliceOutReference(
  spec: SpliceSpec & { scale: number },
  act: Float32Array,
  xhat: Float32Array,
  keep: ArrayLike<number>,
): Float32Array {
  const out = act.slice();
  for (let t = 0; t < spec.rows; t++) {
    if (!keep[t]) continue;
    for (let k = 0; k < spec.dim; k++) {
      out[t * spec.dim + k] = Math.fround(xhat[t * spec.dim + k] / spec.scale);
    }
  }
  return out;
}
