/** AdamW (wgsl/adamw.wgsl). */
import adamwSrc from "../../wgsl/adamw.wgsl" with { type: "text" };
import type { CoreConfig } from "../config_core.ts";
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { ranges, view, viewElems } from "../gpu/split.ts";
import { type StepState, WG, withCommon } from "./common.ts";

/** Optimizer hyperparameters, fixed for a run. */
export interface AdamSpec {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** The spec from a config. */
export function adamSpec(
  cfg: Pick<CoreConfig, "beta1" | "beta2" | "adam_eps" | "weight_decay">,
): AdamSpec {
  return { beta1: cfg.beta1, beta2: cfg.beta2, eps: cfg.adam_eps, weightDecay: cfg.weight_decay };
}

/** One parameter tensor with its gradient and moments. */
export interface AdamBuffers {
  p: GPUBuffer;
  g: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
}

/**
 * Builds the AdamW update of one parameter of `n` elements: one dispatch, or one per range of
 * elements when the parameter exceeds the storage-binding limit; four elements per invocation
 * where the lengths allow (`opts.scalar` forces one, for tests).
 */
export async function adamwKernel(
  gpu: Gpu,
  label: string,
  n: number,
  s: AdamSpec,
  b: AdamBuffers,
  state: GPUBuffer,
  lrScale?: { buf: GPUBuffer; rowLen: number },
  opts: { scalar?: boolean } = {},
): Promise<Dispatch[]> {
  const whole = n * 4 <= gpu.maxBinding;
  const parts = whole ? [[0, n]] : ranges(n, viewElems(gpu), 4);
  const out: Dispatch[] = [];
  for (const [i0, i1] of parts) {
    const v = (buf: GPUBuffer) => whole ? { binding: buf, off: 0 } : view(gpu, buf, i0, i1 - i0);
    const [p, g, m, vv] = [b.p, b.g, b.m, b.v].map(v);
    // Four elements per invocation where the part allows (every SAE weight with d_in % 4 == 0).
    const v4 = (i1 - i0) % 4 === 0 && p.off % 4 === 0 && i0 % 4 === 0 && !opts.scalar;
    const len = i1 - i0;
    out.push(
      await kernel(gpu, {
        label: `adamw ${label}`,
        code: withCommon(adamwSrc),
        entry: v4 ? "main4" : "main",
        constants: {
          N: i1 - i0,
          BETA1: s.beta1,
          BETA2: s.beta2,
          EPS: s.eps,
          WEIGHT_DECAY: s.weightDecay,
          ROW_LEN: lrScale?.rowLen ?? 0,
          OFF: p.off,
          I0: i0,
        },
        buffers: [p.binding, g.binding, m.binding, vv.binding, state, lrScale?.buf ?? gpu.dummy()],
        groups: groupsFor(v4 ? (i1 - i0) / 4 : i1 - i0, WG),
        // Per element: the two moments (7 FLOPs), bias corrections (4), decay (3), the step (5:
        // sqrt, add, div, mul, sub) and the latent's lr factor (1); reads p, g, m, v, writes p, m,
        // v (and reads one factor per latent row).
        cost: {
          flops: (lrScale ? 20 : 19) * len,
          bytes: 4 * (7 * len + (lrScale ? Math.ceil(len / lrScale.rowLen) : 0)),
        },
      }),
    );
  }
  return out;
}

/**
 * Reference AdamW step (in place), torch.optim.AdamW's formula; with `lrScale`, element i uses
 * lr · lrScale[floor(i / rowLen)].
 */
export function adamwReference(
  s: AdamSpec,
  st: Pick<StepState, "lr" | "b1t" | "b2t">,
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  lrScale?: { values: ArrayLike<number>; rowLen: number },
): void {
  for (let i = 0; i < p.length; i++) {
    m[i] = s.beta1 * m[i] + (1 - s.beta1) * g[i];
    v[i] = s.beta2 * v[i] + (1 - s.beta2) * g[i] * g[i];
    const mhat = m[i] / (1 - st.b1t);
    const vhat = v[i] / (1 - st.b2t);
    const lr = lrScale ? st.lr * lrScale.values[Math.floor(i / lrScale.rowLen)] : st.lr;
    p[i] = p[i] * (1 - lr * s.weightDecay) - lr * mhat / (Math.sqrt(vhat) + s.eps);
  }
}
