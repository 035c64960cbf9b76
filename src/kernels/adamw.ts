/** AdamW (wgsl/adamw.wgsl). */
import adamwSrc from "../../wgsl/adamw.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { STATE_WGSL, type StepState } from "../sae/state.ts";

/** Optimizer hyperparameters, fixed for a run. */
export interface AdamSpec {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** One parameter tensor with its gradient and moments. */
export interface AdamBuffers {
  p: GPUBuffer;
  g: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
}

/** Builds the AdamW update of one parameter of `n` elements. */
export function adamwKernel(
  gpu: Gpu,
  label: string,
  n: number,
  s: AdamSpec,
  b: AdamBuffers,
  state: GPUBuffer,
): Promise<Dispatch> {
  return kernel(gpu, {
    label: `adamw ${label}`,
    code: STATE_WGSL + adamwSrc,
    constants: {
      N: n,
      BETA1: s.beta1,
      BETA2: s.beta2,
      EPS: s.eps,
      WEIGHT_DECAY: s.weightDecay,
    },
    buffers: [b.p, b.g, b.m, b.v, state],
    groups: groupsFor(n, 64),
  });
}

/** Reference AdamW step (in place), torch.optim.AdamW's formula. */
export function adamwReference(
  s: AdamSpec,
  st: StepState,
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
) {
  for (let i = 0; i < p.length; i++) {
    m[i] = s.beta1 * m[i] + (1 - s.beta1) * g[i];
    v[i] = s.beta2 * v[i] + (1 - s.beta2) * g[i] * g[i];
    const mhat = m[i] / (1 - st.b1t);
    const vhat = v[i] / (1 - st.b2t);
    p[i] = p[i] * (1 - st.lr * s.weightDecay) - st.lr * mhat / (Math.sqrt(vhat) + s.eps);
  }
}
