/**
 * Peak kernels (wgsl/peak.wgsl): compute-bound FMA kernels (a loop, and the same FMAs as straight
 * code) and a copy kernel, whose rates are the "measured peak" every kernel in
 * bench/kernels_bench.ts is compared with (the FMA peak: the faster form).
 */
import peakSrc from "../../wgsl/peak.wgsl" with { type: "text" };
import { adapterClass } from "../gpu/adapter.ts";
import type { Gpu } from "../gpu/device.ts";
import { type ComputeDispatch, groupsFor, kernel } from "../gpu/dispatch.ts";
import { WG, withCommon } from "./common.ts";

/** Invocations per workgroup of both kernels. */
export const PEAK_WG: number = WG;
/** FLOPs per invocation per loop trip of the FMA kernel (3 chains × 8 vec4 FMAs × 8). */
const FMA_FLOPS_PER_TRIP = 3 * 8 * 4 * 2;

/** How the FMA kernel runs its trips: a loop, or unrolled into straight code. */
export type FmaForm = "loop" | "straight";

/**
 * Workgroups and trips of an FMA kernel that keep the adapter's FMA units busy: on a CPU adapter
 * 512 workgroups of 2048 trips (the loop), or 32x the workgroups of 64 unrolled trips (the same
 * work); a GPU (src/gpu/adapter.ts) needs 16x the invocations to fill its cores (an H100 holds
 * 270k resident invocations), the straight form capped at 65535 workgroups (one dimension).
 */
export function fmaPeakShape(gpu: Gpu, form: FmaForm): { groups: number; iters: number } {
  const scale = adapterClass(gpu) === "cpu" ? 1 : 16;
  return form === "loop"
    ? { groups: 512 * scale, iters: 2048 }
    : { groups: Math.min(512 * 32 * scale, 65535), iters: 64 };
}

/**
 * The `fma_peak_straight` entry point: `iters` trips of `fma_peak`'s loop body, unrolled (a
 * specialization step: WGSL cannot unroll by itself).
 */
function fmaStraightEntry(iters: number): string {
  const trip = "  a0 = fma(a0, x, y); a1 = fma(a1, x, y); a2 = fma(a2, x, y);\n".repeat(8);
  return [
    "@compute @workgroup_size(WG)",
    "fn fma_peak_straight(",
    "  @builtin(global_invocation_id) gid: vec3<u32>,",
    "  @builtin(local_invocation_index) lid: u32,",
    ") {",
    "  let x = vec4<f32>(0.999);",
    "  let y = vec4<f32>(1e-4);",
    "  var a0 = vec4<f32>(f32(lid) * 1e-3);",
    "  var a1 = a0 + vec4<f32>(1e-3);",
    "  var a2 = a0 + vec4<f32>(2e-3);",
    trip.repeat(iters).trimEnd(),
    "  out[gid.x] = a0 + a1 + a2;",
    "}",
    "",
  ].join("\n");
}

/**
 * The FMA kernel over `groups` workgroups, `iters` trips each; writes out [groups·PEAK_WG] vec4.
 * `form` "straight" unrolls the trips (keep `iters` to a few dozen: its code grows with them).
 */
export async function fmaPeakKernel(
  gpu: Gpu,
  groups: number,
  iters: number,
  out: GPUBuffer,
  form: FmaForm = "loop",
): Promise<{ dispatch: ComputeDispatch; flops: number }> {
  const straight = form === "straight";
  const flops = groups * PEAK_WG * iters * FMA_FLOPS_PER_TRIP;
  const dispatch = await kernel(gpu, {
    label: straight ? "fma peak straight" : "fma peak",
    code: withCommon(straight ? peakSrc + fmaStraightEntry(iters) : peakSrc),
    entry: straight ? "fma_peak_straight" : "fma_peak",
    constants: straight ? {} : { ITERS: iters },
    buffers: [out],
    groups: [groups, 1, 1],
    cost: { flops, bytes: 16 * groups * PEAK_WG },
  });
  return { dispatch, flops };
}

/** Copies `n4` vec4s from `src` to `out`. */
export async function copyKernel(
  gpu: Gpu,
  n4: number,
  src: GPUBuffer,
  out: GPUBuffer,
): Promise<{ dispatch: ComputeDispatch; bytes: number }> {
  const bytes = 2 * 16 * n4;
  const dispatch = await kernel(gpu, {
    label: "copy",
    code: withCommon(peakSrc),
    entry: "copy",
    constants: { N4: n4 },
    buffers: [out, src],
    groups: groupsFor(n4, PEAK_WG),
    cost: { flops: 0, bytes },
  });
  return { dispatch, bytes };
}

/** Reference of one invocation of the FMA kernel (f32 rounding after each FMA). */
export function fmaPeakReference(lid: number, iters: number): number {
  const f = Math.fround;
  const x = f(0.999), y = f(1e-4);
  const a0 = f(lid * f(1e-3));
  const chains = [a0, f(a0 + f(1e-3)), f(a0 + f(2e-3))];
  for (let i = 0; i < iters * 8; i++) {
    for (let c = 0; c < 3; c++) chains[c] = f(chains[c] * x + y);
  }
  return f(f(chains[0] + chains[1]) + chains[2]);
}
