/**
 * JumpReLU (wgsl/jumprelu.wgsl): the thresholded activation f = ReLU(pre)·1[pre > θ] with
 * per-latent or global thresholds, and SAELens' JumpReLU training: the straight-through
 * gradients of its `JumpReLU` and `Step` autograd functions (rectangle kernel of bandwidth ε) to
 * log θ, and the L0 loss. Definitions and sources: docs/architectures.md.
 */
import jumpreluSrc from "../../wgsl/jumprelu.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type ComputeDispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { rowParts } from "../gpu/split.ts";
import { useSubgroups, withCollectives } from "./collectives.ts";
import { WG } from "./common.ts";

/** Options shared by the builders. */
export interface JumpReluOptions {
  /** Workgroup collectives with subgroup operations (default: where the device has them). */
  subgroups?: boolean;
}

function code(gpu: Gpu, opts: JumpReluOptions): string {
  return withCollectives(jumpreluSrc, useSubgroups(gpu, opts.subgroups));
}

/** A scalar in a buffer (f32 word `index`). */
export interface Scalar {
  buf: GPUBuffer;
  index: number;
}

/**
 * Where the thresholds come from: per latent as stored ("raw": an imported JumpReLU SAE's
 * `threshold`), per latent as log θ ("log": SAELens' trained `log_threshold`), or one θ for all
 * latents ("global": BatchTopK's running threshold at inference).
 */
export type ThetaSource =
  | { kind: "raw" | "log"; buf: GPUBuffer }
  | { kind: "global"; buf: GPUBuffer; index: number };

const THETA_MODE = { raw: 0, log: 1, global: 2 } as const;

/**
 * f [B, m] = ReLU(pre)·1[pre > θ] and l0Row [B] u32 = #{i : pre > θ_i} per row: SAELens'
 * `JumpReLU.forward` in training (θ = exp(log θ) > 0, so the ReLU changes nothing) and
 * `JumpReLUSAE.encode` at inference. One workgroup per row, one dispatch per range of rows where
 * pre and f exceed a binding.
 */
export async function thresholdActKernel(
  gpu: Gpu,
  s: { B: number; m: number },
  b: { pre: GPUBuffer; f: GPUBuffer; l0Row: GPUBuffer; theta: ThetaSource },
  opts: JumpReluOptions = {},
): Promise<ComputeDispatch[]> {
  const src = code(gpu, opts);
  const out: ComputeDispatch[] = [];
  for (const { r0, r1, views: [pv, fv] } of rowParts(gpu, s.B, s.m, [b.pre, b.f])) {
    out.push(
      await kernel(gpu, {
        label: "jumprelu forward",
        code: src,
        entry: "threshold_act",
        constants: {
          R: r1 - r0,
          M: s.m,
          ROW0: r0,
          PRE_OFF: pv.off,
          F_OFF: fv.off,
          THETA_MODE: THETA_MODE[b.theta.kind],
          THETA_IDX: b.theta.kind === "global" ? b.theta.index : 0,
        },
        buffers: [pv.binding, fv.binding, b.theta.buf, b.l0Row],
        groups: groupsFor(r1 - r0),
        cost: { flops: 0, bytes: 4 * (r1 - r0) * (2 * s.m + 1) + 4 * s.m },
      }),
    );
  }
  return out;
}

/**
 * The backward pass of SAELens' JumpReLU training for log θ, given dL/df in `dpre` (the dF GEMM
 * with no mask): dpre ← dL/df·1[pre > θ] in place, and gLogTheta [m] = dL/dlog θ, the sum over the
 * batch of `JumpReLU.backward`'s threshold gradient for the reconstruction and `Step.backward`'s
 * for the L0 loss λ·mean_b Σ_i H(pre − θ) (λ = l0Coef, read on the GPU so a warm-up can scale it),
 * times θ (θ = exp(log θ)). One invocation per latent; parts over row ranges add up.
 */
export async function jumpReluBackwardKernel(
  gpu: Gpu,
  s: { B: number; m: number; bandwidth: number },
  b: {
    pre: GPUBuffer;
    dpre: GPUBuffer;
    logTheta: GPUBuffer;
    gLogTheta: GPUBuffer;
    l0Coef: Scalar;
  },
  opts: JumpReluOptions = {},
): Promise<ComputeDispatch[]> {
  const src = code(gpu, opts);
  const out: ComputeDispatch[] = [];
  for (const { r0, r1, views: [pv, dv] } of rowParts(gpu, s.B, s.m, [b.pre, b.dpre])) {
    out.push(
      await kernel(gpu, {
        label: "jumprelu backward",
        code: src,
        entry: "jumprelu_backward",
        constants: {
          R: r1 - r0,
          M: s.m,
          PRE_OFF: pv.off,
          DP_OFF: dv.off,
          B_ROWS: s.B,
          THETA_MODE: THETA_MODE.log,
          BANDWIDTH: s.bandwidth,
          COEF_IDX: b.l0Coef.index,
          ACCUM: r0 > 0 ? 1 : 0,
        },
        buffers: [pv.binding, null, b.logTheta, null, dv.binding, b.gLogTheta, b.l0Coef.buf],
        groups: groupsFor(s.m, WG),
        cost: { flops: 6 * (r1 - r0) * s.m, bytes: 4 * (3 * (r1 - r0) * s.m + 2 * s.m) },
      }),
    );
  }
  return out;
}

/**
 * out.buf[out.index] = the L0 loss λ·mean_b Σ_i 1[pre > θ_i] (SAELens' `l0_loss`, mode "step")
 * and out.buf[out.index + 1] = the mean L0, from {@link thresholdActKernel}'s row counts.
 */
export function l0LossKernel(
  gpu: Gpu,
  B: number,
  b: { l0Row: GPUBuffer; l0Coef: Scalar; out: Scalar },
  opts: JumpReluOptions = {},
): Promise<ComputeDispatch> {
  return kernel(gpu, {
    label: "jumprelu l0 loss",
    code: code(gpu, opts),
    entry: "l0_loss",
    constants: { R: B, COEF_IDX: b.l0Coef.index, OUT_IDX: b.out.index },
    buffers: [null, null, null, b.l0Row, null, null, b.l0Coef.buf, b.out.buf],
    groups: [1, 1, 1],
    cost: { flops: B, bytes: 4 * (B + 3) },
  });
}

/** theta [m] = exp(logTheta): the per-latent thresholds of the inference encoder from log θ. */
export function thetaExpKernel(
  gpu: Gpu,
  m: number,
  b: { logTheta: GPUBuffer; theta: GPUBuffer },
  opts: JumpReluOptions = {},
): Promise<ComputeDispatch> {
  return kernel(gpu, {
    label: "jumprelu threshold",
    code: code(gpu, opts),
    entry: "theta_exp",
    constants: { M: m },
    buffers: [null, null, b.logTheta, ...Array(4).fill(null), b.theta],
    groups: groupsFor(m, WG),
    cost: { flops: m, bytes: 8 * m },
  });
}

// --- Plain-TypeScript references: SAELens' autograd functions, transcribed -----------------------

/** SAELens `rectangle(x)`: 1 on the open interval (−1/2, 1/2). */
export function rectangle(z: number): number {
  return z > -0.5 && z < 0.5 ? 1 : 0;
}

/**
 * SAELens `JumpReLU.backward` for a batch of one latent's pre-activations x [B] with threshold θ
 * and upstream gradients g [B]: (x_grad [B], threshold_grad).
 */
function jumpReluBackward(
  x: ArrayLike<number>,
  theta: number,
  bandwidth: number,
  g: ArrayLike<number>,
): { xGrad: number[]; thetaGrad: number } {
  let thetaGrad = 0;
  const xGrad: number[] = [];
  for (let b = 0; b < x.length; b++) {
    xGrad.push(x[b] > theta ? g[b] : 0);
    thetaGrad += -(theta / bandwidth) * rectangle((x[b] - theta) / bandwidth) * g[b];
  }
  return { xGrad, thetaGrad };
}

/** SAELens `Step.backward` (no gradient to x): the threshold's gradient. */
function stepBackward(
  x: ArrayLike<number>,
  theta: number,
  bandwidth: number,
  g: ArrayLike<number>,
): number {
  let thetaGrad = 0;
  for (let b = 0; b < x.length; b++) {
    thetaGrad += -(1 / bandwidth) * rectangle((x[b] - theta) / bandwidth) * g[b];
  }
  return thetaGrad;
}

/**
 * One JumpReLU training step's activation pieces as SAELens computes them (f64): θ = exp(log θ),
 * f = JumpReLU.forward, l0 = Σ_i Step.forward per row, l0_loss = mean_b(λ·l0), and, from dL/df,
 * dL/dpre (JumpReLU.backward's x_grad) and dL/dlog θ = θ·(JumpReLU.backward's + Step.backward's
 * threshold gradients, the latter with upstream λ/B per entry).
 */
export function jumpReluTrainingReference(
  pre: Float32Array,
  logTheta: Float32Array,
  s: { B: number; m: number; bandwidth: number },
  l0Coef: number,
  dLdf: Float32Array,
): {
  f: Float32Array;
  l0Row: Uint32Array;
  l0Loss: number;
  dpre: Float32Array;
  gLogTheta: Float64Array;
} {
  const { B, m, bandwidth } = s;
  const f = new Float32Array(B * m), dpre = new Float32Array(B * m);
  const l0Row = new Uint32Array(B), gLogTheta = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const theta = Math.exp(logTheta[i]);
    const x = Array.from({ length: B }, (_, b) => pre[b * m + i]);
    const g = Array.from({ length: B }, (_, b) => dLdf[b * m + i]);
    x.forEach((v, b) => {
      f[b * m + i] = v > theta ? v : 0;
      l0Row[b] += v > theta ? 1 : 0;
    });
    const jr = jumpReluBackward(x, theta, bandwidth, g);
    jr.xGrad.forEach((v, b) => dpre[b * m + i] = v);
    const step = stepBackward(x, theta, bandwidth, x.map(() => l0Coef / B));
    gLogTheta[i] = theta * (jr.thetaGrad + step);
  }
  const l0Loss = l0Row.reduce((a, n) => a + l0Coef * n, 0) / B;
  return { f, l0Row, l0Loss, dpre, gLogTheta };
}

/** Reference of {@link thresholdActKernel}: f and the row counts (θ of each latent given). */
export function thresholdActReference(
  pre: Float32Array,
  theta: ArrayLike<number>,
  B: number,
  m: number,
): { f: Float32Array; l0Row: Uint32Array } {
  const f = new Float32Array(B * m), l0Row = new Uint32Array(B);
  for (let r = 0; r < B; r++) {
    for (let i = 0; i < m; i++) {
      const x = pre[r * m + i];
      if (x > theta[i]) {
        f[r * m + i] = Math.max(x, 0);
        l0Row[r]++;
      }
    }
  }
  return { f, l0Row };
}
