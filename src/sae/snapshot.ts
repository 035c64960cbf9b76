/**
 * A snapshot of a training session: everything a checkpoint holds to continue the run bit for bit,
 * and its encoding as named tensors (src/run/checkpoint.ts writes and verifies the file):
 *
 * | tensor                     | shape              | field          |
 * | -------------------------- | ------------------ | -------------- |
 * | `wEnc` `bEnc` `wDec` `bDec`| the parameters'    | `weights`      |
 * | `adam_m.<param>`           | the parameter's    | `adamM`        |
 * | `adam_v.<param>`           | the parameter's    | `adamV`        |
 * | `last_fired`               | [d_sae] u32        | `lastFired`    |
 * | `step_state`               | [STATE_WORDS] u32  | `state`        |
 * | `metrics_acc`              | [METRIC_WORDS] f32 | `metricsAcc`   |
 * | `extra.<name>`             | [d_sae] f32        | `extra[name]`  |
 *
 * Tensors are written in this order (the checkpoint's SHA-256 covers the bytes in that order).
 */
import type { TrainConfig } from "../config.ts";
import { UserError } from "../errors.ts";
import { f32Tensor, type Tensor, tensorToF32 } from "../run/safetensors.ts";
import { METRIC_WORDS } from "../kernels/metrics.ts";
import { type SaeWeights, weightsFromTensors, weightTensors } from "./model.ts";

/** The state of a session between two steps. */
export interface Snapshot {
  weights: SaeWeights;
  /** AdamW's first and second moments, per parameter. */
  adamM: SaeWeights;
  adamV: SaeWeights;
  /** lastFired: [d_sae] u32, the step each latent last fired. */
  lastFired: Uint32Array;
  /** state: [STATE_WORDS] u32, the step state (src/kernels/common.ts). */
  state: Uint32Array;
  /** The variant's per-latent state ([d_sae] f32 each), by name. */
  extra: Record<string, Float32Array>;
  /**
   * The metric accumulators of the log window in progress ([METRIC_WORDS] f32), so that a run
   * resumed between log steps logs the same values; checkpoints without them resume with zeros.
   */
  metricsAcc?: Float32Array;
}

const NAMES = {
  adamM: "adam_m.",
  adamV: "adam_v.",
  lastFired: "last_fired",
  state: "step_state",
  metricsAcc: "metrics_acc",
  extra: "extra.",
} as const;

function u32Tensor(values: Uint32Array): Tensor {
  return { dtype: "U32", shape: [values.length], data: new Uint8Array(values.slice().buffer) };
}

/** The snapshot as checkpoint tensors, in the order of the table above. */
export function snapshotTensors(cfg: TrainConfig, s: Snapshot): Record<string, Tensor> {
  const { d_in: d, d_sae: m } = cfg;
  const tensors: Record<string, Tensor> = {
    ...weightTensors(s.weights, d, m),
    ...weightTensors(s.adamM, d, m, NAMES.adamM),
    ...weightTensors(s.adamV, d, m, NAMES.adamV),
    [NAMES.lastFired]: u32Tensor(s.lastFired),
    [NAMES.state]: u32Tensor(s.state),
    [NAMES.metricsAcc]: f32Tensor([METRIC_WORDS], s.metricsAcc ?? new Float32Array(METRIC_WORDS)),
  };
  for (const [name, v] of Object.entries(s.extra)) {
    tensors[NAMES.extra + name] = f32Tensor([v.length], v);
  }
  return tensors;
}

/**
 * The snapshot a checkpoint holds; `extraNames` are the variant's state buffers, each of which
 * must be there. A missing tensor is a UserError naming it.
 */
export function snapshotFromTensors(
  cfg: TrainConfig,
  t: Record<string, Tensor>,
  extraNames: readonly string[],
  where: string,
): Snapshot {
  const { d_in: d, d_sae: m } = cfg;
  const u32 = (name: string) => {
    const tensor = t[name];
    if (!tensor) throw new UserError(`${where} lacks tensor '${name}': it is not a run checkpoint`);
    return new Uint32Array(tensor.data.slice().buffer);
  };
  const extra: Record<string, Float32Array> = {};
  for (const name of extraNames) {
    const tensor = t[NAMES.extra + name];
    if (!tensor) {
      throw new UserError(
        `${where} lacks '${NAMES.extra}${name}': was it written by another variant?`,
      );
    }
    extra[name] = tensorToF32(tensor);
  }
  const acc = t[NAMES.metricsAcc];
  return {
    weights: weightsFromTensors(t, d, m, where),
    adamM: weightsFromTensors(t, d, m, where, NAMES.adamM),
    adamV: weightsFromTensors(t, d, m, where, NAMES.adamV),
    lastFired: u32(NAMES.lastFired),
    state: u32(NAMES.state),
    extra,
    metricsAcc: acc ? tensorToF32(acc) : undefined,
  };
}

/** The variant's state named `name` in a checkpoint's tensors, or null. */
export function extraTensor(t: Record<string, Tensor>, name: string): Float32Array | null {
  const tensor = t[NAMES.extra + name];
  return tensor ? tensorToF32(tensor) : null;
}
