import type { Gpu } from "./device.ts";

/** One compute dispatch with its pipeline and bind group created ahead of time. */
export interface Dispatch {
  /** Kernel name, used in profiles and error messages. */
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  /** Workgroup counts (x, y, z). */
  groups: [number, number, number];
}

/** Records dispatches, in order, into one compute pass of `enc`. */
export function encodeDispatches(enc: GPUCommandEncoder, list: readonly Dispatch[]): void {
  const pass = enc.beginComputePass();
  for (const d of list) {
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(d.groups[0], d.groups[1], d.groups[2]);
  }
  pass.end();
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
