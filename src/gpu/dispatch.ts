import type { Gpu } from "./device.ts";

/** One compute dispatch with its pipeline and bind group created ahead of time. */
export interface ComputeDispatch {
  /** Kernel name, used in profiles and error messages. */
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  /** Workgroup counts (x, y, z): the largest this dispatch runs when `indirect` is set. */
  groups: [number, number, number];
  /**
   * Where the workgroup counts are read from at run time instead (three u32 at `offset` bytes),
   * written by an earlier dispatch of the same step (e.g. zero to skip a kernel this step).
   */
  indirect?: { buffer: GPUBuffer; offset: number };
  /** Work of one run of this dispatch (see {@link KernelCost}), set where it is built. */
  cost?: KernelCost;
  copy?: undefined;
}

/**
 * The work of one dispatch, set by the module that builds it, so profiles and benches compute
 * rates from the dispatch itself: `flops` counts multiply-adds as 2, `bytes` the global memory a
 * kernel must read and write at least (each operand once).
 */
export interface KernelCost {
  flops: number;
  bytes: number;
  /**
   * Work per active (nonzero) entry of the latents f, on top of `flops` and `bytes`: the
   * sparse-latent kernels' work depends on how many latents fire, which only a caller that knows
   * the count (a bench) can add.
   */
  perActive?: { flops: number; bytes: number };
}

/** One region of a buffer-to-texture copy. */
export interface TextureCopy {
  src: GPUTexelCopyBufferInfo;
  dst: GPUTexelCopyTextureInfo;
  size: [number, number];
}

/**
 * Copies from buffers into textures, recorded between compute passes: on lavapipe a copy is a
 * memcpy, 5-12x faster than a kernel that packs the same bytes (bench/RESULTS.md).
 */
export interface CopyDispatch {
  /** Name, used in profiles and error messages. */
  label: string;
  copy: TextureCopy[];
  /** Bytes the copies move (read and written; no FLOPs), set where they are built. */
  cost?: KernelCost;
}

/** One item of a step: a compute dispatch, or copies between passes. */
export type Dispatch = ComputeDispatch | CopyDispatch;

/** Records one compute dispatch into an open compute pass. */
export function dispatchInto(pass: GPUComputePassEncoder, d: ComputeDispatch): void {
  pass.setPipeline(d.pipeline);
  pass.setBindGroup(0, d.bindGroup);
  if (d.indirect) pass.dispatchWorkgroupsIndirect(d.indirect.buffer, d.indirect.offset);
  else pass.dispatchWorkgroups(d.groups[0], d.groups[1], d.groups[2]);
}

/** Records the copies of a {@link CopyDispatch} (outside any pass). */
export function copyInto(enc: GPUCommandEncoder, d: CopyDispatch): void {
  for (const c of d.copy) enc.copyBufferToTexture(c.src, c.dst, c.size);
}

/**
 * Records dispatches, in order, into `enc`: runs of compute dispatches share one compute pass,
 * copies go between passes.
 */
export function encodeDispatches(enc: GPUCommandEncoder, list: readonly Dispatch[]): void {
  let pass: GPUComputePassEncoder | null = null;
  for (const d of list) {
    if (d.copy) {
      pass?.end();
      pass = null;
      copyInto(enc, d);
    } else {
      pass ??= enc.beginComputePass();
      dispatchInto(pass, d);
    }
  }
  pass?.end();
}

/** Encodes and submits dispatches as one command buffer. */
export function run(gpu: Gpu, list: readonly Dispatch[]): void {
  const enc = gpu.device.createCommandEncoder();
  encodeDispatches(enc, list);
  gpu.submit([enc.finish()]);
}

/** ceil(a / b) for positive integers. */
export function cdiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}

/** Largest workgroup count per dimension WebGPU guarantees. */
export const MAX_GROUPS = 65535;

/**
 * Workgroup counts covering `n` items with `perGroup` items per workgroup, folded into 2-D when
 * more than 65535 groups are needed. Kernels index with `g.x + g.y * nw.x * WG` (items) or
 * `w.x + w.y * 65535` (one group per row).
 */
export function groupsFor(n: number, perGroup = 1): [number, number, number] {
  const total = cdiv(Math.max(n, 1), perGroup);
  const x = Math.min(total, MAX_GROUPS);
  return [x, cdiv(total, x), 1];
}

/** Everything needed to build one dispatch of one entry point. */
export interface KernelSpec {
  label: string;
  code: string;
  entry?: string;
  constants?: Record<string, number>;
  /** Slot i gets buffers[i] (a buffer, a range of one or a texture); null skips a slot. */
  buffers: (GPUBuffer | GPUBufferBinding | GPUTexture | null)[];
  groups: [number, number, number];
  cost?: KernelCost;
}

/** Creates the pipeline and bind group of one kernel (at setup, never inside the step). */
export async function kernel(gpu: Gpu, spec: KernelSpec): Promise<ComputeDispatch> {
  const pipeline = await gpu.pipeline(spec.label, spec.code, spec.constants, spec.entry);
  return {
    label: spec.label,
    pipeline,
    bindGroup: gpu.bindGroup(pipeline, spec.buffers, spec.label),
    groups: spec.groups,
    cost: spec.cost,
  };
}
