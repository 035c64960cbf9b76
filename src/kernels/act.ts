/**
 * MLP activations and the residual add (wgsl/act.wgsl): SwiGLU (Llama), GeGLU with tanh-GELU
 * (Gemma), gelu_new in place (GPT-2), x += y. The LM forward applies GPT-2's gelu_new in its MLP-in
 * GEMM's `bias_gelu` epilogue and adds an unobserved branch to the residual stream in its GEMM's
 * `accumulate` / `bias_accumulate` epilogue; these kernels serve the rest (a hooked, spliced or
 * post-normed branch kept apart, `fuse: false`).
 */
import actSrc from "../../wgsl/act.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { WG, withCommon } from "./common.ts";

/** - `"swiglu"`: SiLU(gate)·up. - `"geglu"`: tanh-GELU(gate)·up. */
export type GluKind = "swiglu" | "geglu";

/** Shapes of a gated MLP activation. */
export interface GluSpec {
  rows: number;
  /** Hidden width (columns of gate, up and out). */
  width: number;
  kind: GluKind;
  /**
   * Row strides and start columns of gate and up (default: each [rows, width], tightly packed);
   * a fused gate-up projection [rows, 2·width] is bound as both with ldGate = ldUp = 2·width and
   * offUp = width.
   */
  layout?: { ldGate?: number; offGate?: number; ldUp?: number; offUp?: number };
}

/** Buffers of a gated MLP activation. */
export interface GluBuffers {
  /** [rows, ldGate] f32. */
  gate: GPUBuffer;
  /** [rows, ldUp] f32 (may be gate's buffer). */
  up: GPUBuffer;
  /** [rows, width] f32. */
  out: GPUBuffer;
}

/** Whether every size and offset lets the vec4 entry points (…4) run. */
function vec4Ok(...v: number[]): boolean {
  return v.every((x) => x % 4 === 0);
}

/** out = act(gate)·up, one dispatch (a vec4 at a time where width and layout allow). */
export async function gluDispatches(
  gpu: Gpu,
  spec: GluSpec,
  bufs: GluBuffers,
): Promise<Dispatch[]> {
  const n = spec.rows * spec.width, l = spec.layout ?? {};
  const layout = {
    LDG: l.ldGate ?? spec.width,
    OFFG: l.offGate ?? 0,
    LDU: l.ldUp ?? spec.width,
    OFFU: l.offUp ?? 0,
  };
  const v4 = vec4Ok(spec.width, ...Object.values(layout));
  return [
    await kernel(gpu, {
      label: spec.kind,
      code: withCommon(actSrc),
      entry: v4 ? "glu4" : "glu",
      constants: { N: n, W: spec.width, GELU: spec.kind === "geglu" ? 1 : 0, ...layout },
      buffers: [bufs.gate, bufs.up, bufs.out],
      groups: groupsFor(v4 ? n / 4 : n, WG),
      cost: { flops: n * (spec.kind === "geglu" ? 9 : 4), bytes: n * 12 },
    }),
  ];
}

/** x ← gelu_new(x) in place over its first n elements ([rows, width] f32, n = rows·width). */
export async function geluDispatches(
  gpu: Gpu,
  spec: { n: number },
  bufs: { x: GPUBuffer },
): Promise<Dispatch[]> {
  return [
    await kernel(gpu, {
      label: "gelu_new",
      code: withCommon(actSrc),
      entry: vec4Ok(spec.n) ? "gelu4" : "gelu",
      constants: { N: spec.n },
      buffers: [bufs.x],
      groups: groupsFor(vec4Ok(spec.n) ? spec.n / 4 : spec.n, WG),
      cost: { flops: spec.n * 8, bytes: spec.n * 8 },
    }),
  ];
}

/** x ← x + y over the first n elements (both [rows, d_model] f32, distinct buffers). */
export async function addDispatches(
  gpu: Gpu,
  spec: { n: number },
  bufs: { x: GPUBuffer; y: GPUBuffer },
): Promise<Dispatch[]> {
  return [
    await kernel(gpu, {
      label: "residual add",
      code: withCommon(actSrc),
      entry: vec4Ok(spec.n) ? "add4" : "add",
      constants: { N: spec.n },
      buffers: [bufs.x, bufs.y],
      groups: groupsFor(vec4Ok(spec.n) ? spec.n / 4 : spec.n, WG),
      cost: { flops: spec.n, bytes: spec.n * 12 },
    }),
  ];
}

/** SiLU(x) = x / (1 + e^−x). */
export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** gelu_new = gelu_pytorch_tanh: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

/** Reference of {@link gluDispatches} on tightly packed gate and up [rows, width]. */
export function gluReference(kind: GluKind, gate: Float32Array, up: Float32Array): Float32Array {
  const f = kind === "geglu" ? geluTanh : silu;
  return gate.map((g, i) => f(g) * up[i]);
}
