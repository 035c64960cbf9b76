/**
 * Per-kernel GPU times of a dispatch list.
 *
 * With the "timestamp-query" feature each dispatch is encoded in its own compute pass whose
 * beginning and end write timestamps (one query set, resolve and readback buffers made once per
 * profiler); without it, each dispatch is submitted alone and timed on the host around
 * onSubmittedWorkDone, less the median time of an empty submission (measured once). Either way
 * the kernels and their order are the ones of the unprofiled list, so results are unchanged.
 *
 * On CPU adapters (llvmpipe/lavapipe) it uses host clocks even where timestamps exist: Mesa 22.3's lavapipe, once
 * any pass has bound a storage texture (the GEMM texture path), stamps passes at the wrong
 * instants: a 60 ms kernel read 0.01 ms, and within a step time moved between neighbouring
 * passes (bench/RESULTS.md). SAE_CLOCK=host forces host clocks anywhere; SAE_CLOCK=timestamps
 * forces timestamps where the adapter has them.
 *
 * Rates come from each dispatch's `cost` (set where it is built): a dispatch without one, or
 * whose work depends on how many latents fire, leaves its kernel's rates unknown (null, "-"). An
 * indirect dispatch whose arguments were zero workgroups in a run (the sparse plan's path not
 * taken) adds no work.
 */
import { isCpuAdapterName } from "./adapter.ts";
import type { Gpu } from "./device.ts";
import {
  copyInto,
  type Dispatch,
  dispatchInto,
  encodeDispatches,
  type KernelCost,
} from "./dispatch.ts";

/** Time and work of one kernel label, summed over its dispatches and the profiled runs. */
export interface KernelTime {
  label: string;
  /** Dispatches with this label, over all runs. */
  calls: number;
  /** Total milliseconds. */
  ms: number;
  /** Total FLOPs, from the dispatches' costs (null: unknown for one of them). */
  flops: number | null;
  /** Total bytes of global memory read and written at least (null: unknown). */
  bytes: number | null;
  /** GFLOP/s over the total time (null: unknown work, or no measurable time). */
  gflops: number | null;
  /** GB/s over the total time (null: unknown work, or no measurable time). */
  gbps: number | null;
}

/**
 * The work of one run of `d` from its cost, with `active` nonzero latents where the work depends
 * on them; null where `d` has no cost, or its work depends on a count not given.
 */
export function dispatchWork(d: Dispatch, active?: number): KernelCost | null {
  const c = d.cost;
  if (!c) return null;
  if (!c.perActive) return { flops: c.flops, bytes: c.bytes };
  if (active === undefined) return null;
  return {
    flops: c.flops + active * c.perActive.flops,
    bytes: c.bytes + active * c.perActive.bytes,
  };
}

/** The sum of `works`; a field is null once one of them is unknown. */
export function sumWork(
  works: Iterable<KernelCost | null>,
): { flops: number | null; bytes: number | null } {
  let flops: number | null = 0, bytes: number | null = 0;
  for (const w of works) {
    flops = w && flops !== null ? flops + w.flops : null;
    bytes = w && bytes !== null ? bytes + w.bytes : null;
  }
  return { flops, bytes };
}

/**
 * Which dispatches of `list` ran in the step just submitted and finished: all but the indirect
 * ones whose arguments (written on the GPU, e.g. by the sparse plan) were zero workgroups.
 */
export async function ranInStep(gpu: Gpu, list: readonly Dispatch[]): Promise<boolean[]> {
  const args = new Map<GPUBuffer, Uint32Array>();
  for (const d of list) {
    if (!d.copy && d.indirect && !args.has(d.indirect.buffer)) {
      args.set(d.indirect.buffer, await gpu.readU32(d.indirect.buffer));
    }
  }
  return list.map((d) => {
    if (d.copy || !d.indirect) return true;
    const a = args.get(d.indirect.buffer)!, i = d.indirect.offset / 4;
    return a[i] * a[i + 1] * a[i + 2] > 0;
  });
}

/** GFLOP/s and GB/s of `work` done in `ms` milliseconds (null where unknown or not timed). */
export function rates(
  work: { flops: number | null; bytes: number | null },
  ms: number,
): { gflops: number | null; gbps: number | null } {
  const per = (v: number | null) => (v === null || !(ms > 0) ? null : v / (ms / 1e3) / 1e9);
  return { gflops: per(work.flops), gbps: per(work.bytes) };
}

/**
 * Label under which a dispatch is reported: chunk indices dropped wherever they stand ("ortho gram
 * 12" and "ortho gram 12 pack A", a GEMM's operand packing on the texture path, become "ortho gram"
 * and "ortho gram pack A").
 */
export function kernelName(label: string): string {
  return label.replace(/ \d+(?= |$)/g, "");
}

/** Times dispatch lists, per dispatch. */
export class Profiler {
  readonly gpu: Gpu;
  /** "timestamps" (GPU clock) or "host" (host clock per submission). */
  readonly method: "timestamps" | "host";
  /** Profiled runs summed in the totals. */
  runs = 0;
  /** Host mode: the median time of an empty submission, subtracted from each kernel's time. */
  private overheadMs: number | null = null;
  private readonly capacity: number;
  private readonly querySet: GPUQuerySet | null = null;
  private readonly resolveBuf: GPUBuffer | null = null;
  private readonly readBuf: GPUBuffer | null = null;
  private readonly totals = new Map<string, Omit<KernelTime, "gflops" | "gbps">>();
  private order: string[] = [];
  private last: readonly Dispatch[] = [];

  /** `capacity`: the most dispatches one profiled list may hold. */
  constructor(gpu: Gpu, capacity: number, opts: { host?: boolean } = {}) {
    this.gpu = gpu;
    this.capacity = capacity;
    const clock = Deno.env.get("SAE_CLOCK");
    // The driver, not the class SAE_ADAPTER_CLASS may force: the workaround is for its timestamps.
    const software = isCpuAdapterName(gpu.adapterName);
    const host = opts.host || clock === "host" || (software && clock !== "timestamps");
    this.method = gpu.hasTimestamps && !host ? "timestamps" : "host";
    if (this.method === "timestamps") {
      const count = 2 * capacity;
      this.querySet = gpu.device.createQuerySet({ label: "profile", type: "timestamp", count });
      this.resolveBuf = gpu.createBuffer({
        label: "profile resolve",
        size: count * 8,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
      this.readBuf = gpu.createBuffer({
        label: "profile read",
        size: count * 8,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
    }
  }

  /**
   * Runs `list` once (after `before` is recorded into the same command buffer, e.g. a batch
   * upload's clear) and returns each dispatch's time in milliseconds, also adding them to the
   * totals.
   */
  async run(
    list: readonly Dispatch[],
    before?: (enc: GPUCommandEncoder) => void,
  ): Promise<number[]> {
    if (list.length > this.capacity) {
      throw new Error(`profiler holds ${this.capacity} dispatches, the list has ${list.length}`);
    }
    const ms = this.method === "timestamps"
      ? await this.runTimestamps(list, before)
      : await this.runHost(list, before);
    this.runs++;
    this.last = list;
    const ran = list.some((d) => !d.copy && d.indirect) ? await ranInStep(this.gpu, list) : null;
    list.forEach((d, i) => {
      const name = kernelName(d.label);
      let t = this.totals.get(name);
      if (!t) {
        t = { label: name, calls: 0, ms: 0, flops: 0, bytes: 0 };
        this.totals.set(name, t);
        this.order.push(name);
      }
      const w = ran && !ran[i] ? { flops: 0, bytes: 0 } : dispatchWork(d);
      t.calls++;
      t.ms += ms[i];
      t.flops = w && t.flops !== null ? t.flops + w.flops : null;
      t.bytes = w && t.bytes !== null ? t.bytes + w.bytes : null;
    });
    return ms;
  }

  /** The dispatches of the last profiled run, in order (their labels, costs and arguments). */
  get lastDispatches(): readonly Dispatch[] {
    return this.last;
  }

  private async runTimestamps(
    list: readonly Dispatch[],
    before?: (enc: GPUCommandEncoder) => void,
  ): Promise<number[]> {
    const gpu = this.gpu;
    const enc = gpu.device.createCommandEncoder({ label: "profiled step" });
    before?.(enc);
    list.forEach((d, i) => {
      const querySet = this.querySet!;
      if (d.copy) {
        // Copies run outside passes: stamped by an empty pass on either side.
        enc.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i } })
          .end();
        copyInto(enc, d);
        enc.beginComputePass({ timestampWrites: { querySet, endOfPassWriteIndex: 2 * i + 1 } })
          .end();
        return;
      }
      const pass = enc.beginComputePass({
        label: d.label,
        timestampWrites: {
          querySet,
          beginningOfPassWriteIndex: 2 * i,
          endOfPassWriteIndex: 2 * i + 1,
        },
      });
      dispatchInto(pass, d);
      pass.end();
    });
    const n = 2 * list.length;
    enc.resolveQuerySet(this.querySet!, 0, n, this.resolveBuf!, 0);
    enc.copyBufferToBuffer(this.resolveBuf!, 0, this.readBuf!, 0, n * 8);
    gpu.submit([enc.finish()]);
    await gpu.guard(this.readBuf!.mapAsync(GPUMapMode.READ, 0, n * 8));
    gpu.counters.readbacks++;
    const ts = new BigUint64Array(this.readBuf!.getMappedRange(0, n * 8).slice(0));
    this.readBuf!.unmap();
    return list.map((_, i) => Number(ts[2 * i + 1] - ts[2 * i]) / 1e6);
  }

  private async runHost(
    list: readonly Dispatch[],
    before?: (enc: GPUCommandEncoder) => void,
  ): Promise<number[]> {
    const gpu = this.gpu;
    if (this.overheadMs === null) {
      const empty: number[] = [];
      await gpu.guard(gpu.device.queue.onSubmittedWorkDone());
      for (let i = 0; i < 7; i++) {
        const t0 = performance.now();
        gpu.submit([gpu.device.createCommandEncoder({ label: "profile empty" }).finish()]);
        await gpu.guard(gpu.device.queue.onSubmittedWorkDone());
        empty.push(performance.now() - t0);
      }
      this.overheadMs = empty.sort((a, b) => a - b)[3];
    }
    const out: number[] = [];
    for (let i = 0; i < list.length; i++) {
      const enc = gpu.device.createCommandEncoder({ label: list[i].label });
      if (i === 0) before?.(enc);
      encodeDispatches(enc, [list[i]]);
      await gpu.guard(gpu.device.queue.onSubmittedWorkDone());
      const t0 = performance.now();
      gpu.submit([enc.finish()]);
      await gpu.guard(gpu.device.queue.onSubmittedWorkDone());
      out.push(Math.max(0, performance.now() - t0 - this.overheadMs));
    }
    return out;
  }

  /** Totals per kernel name, in first-seen (step) order, with their rates. */
  totalsInOrder(): KernelTime[] {
    return this.order.map((n) => {
      const t = this.totals.get(n)!;
      return { ...t, ...rates(t, t.ms) };
    });
  }

  /** Frees the query set and buffers. */
  destroy(): void {
    this.querySet?.destroy();
    if (this.resolveBuf) this.gpu.destroyBuffer(this.resolveBuf);
    if (this.readBuf) this.gpu.destroyBuffer(this.readBuf);
  }
}

/**
 * A table of kernel times: name, calls, total ms, share of the total, GFLOP/s and GB/s ("-" where
 * unknown); largest first.
 */
export function formatProfile(times: readonly KernelTime[], title = "kernel"): string {
  const total = times.reduce((s, t) => s + t.ms, 0);
  const rows = [...times].sort((a, b) => b.ms - a.ms);
  const w = Math.max(title.length, ...rows.map((t) => t.label.length));
  const rate = (v: number | null) => (v === null ? "-" : v.toFixed(2)).padStart(8);
  const lines = [
    `${title.padEnd(w)}  calls   total ms   mean ms   share   GFLOP/s      GB/s`,
    ...rows.map((t) =>
      `${t.label.padEnd(w)}  ${String(t.calls).padStart(5)}  ${t.ms.toFixed(2).padStart(9)}  ${
        (t.ms / Math.max(t.calls, 1)).toFixed(3).padStart(8)
      }  ${(100 * t.ms / Math.max(total, 1e-12)).toFixed(1).padStart(5)}%  ${rate(t.gflops)}  ${
        rate(t.gbps)
      }`
    ),
    `${"total".padEnd(w)}  ${String(rows.reduce((s, t) => s + t.calls, 0)).padStart(5)}  ${
      total.toFixed(2).padStart(9)
    }`,
  ];
  return lines.join("\n");
}
