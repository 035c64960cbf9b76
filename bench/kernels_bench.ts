/**
 * Every kernel of the training step against the adapter's measured limits, in one run:
 * `deno bench -A bench/kernels_bench.ts` (also part of `deno task bench`).
 *
 * 1. Peaks, measured here: FMA kernels (3 independent vec4 FMA chains per invocation, no memory
 *    traffic; in a loop and as straight code, the faster counts) for GFLOP/s and a vec4 copy
 *    kernel (32 MiB) for GB/s (wgsl/peak.wgsl), timed at the
 *    start and again after every profiled step: each table is against the median of the peaks
 *    timed between its own steps, since other load on the machine moves both. A kernel whose data
 *    fits the CPU caches can beat the 32 MiB copy (over 100%).
 * 2. For each shape (B, d_in, d_sae) and variant (baseline, the paper's method), a real training
 *    session, and at the large shape also the baseline at 0.5% density (b_enc set as bench:peer
 *    --density does), where the sparse-latent kernels run (kernels of the path the plan never
 *    took are left out). Each kernel of a step is timed per dispatch (GPU timestamp queries where
 *    the adapter has them and they can be trusted, else host clocks around each submission less
 *    an empty one's: src/gpu/profile.ts), median over KERNELS_BENCH_REPS profiled steps (default
 *    15 at the small shape, 5 at the large one) after a warm-up step. Each line: time per step,
 *    the work from its dispatches' `cost` (set where each dispatch is built: FLOPs with a
 *    multiply-add as 2, and the bytes it must read and write once; the sparse kernels' work per
 *    active latent times the step's measured L0·B; "-" for a dispatch without a cost), the rates,
 *    and the fraction of the roofline: the time the work needs at the FMA peak or the copy
 *    bandwidth, whichever is longer, over the time taken; "< clock" where the host clock cannot
 *    resolve the time. A new kernel shows up here with its rates without any change to this file.
 * 3. The whole step: median wall time of plain (one-pass) steps, each run right after a profiled
 *    one (host clock around submit → done, batch upload included), and the sum of its kernels'
 *    times.
 *
 * Env: KERNELS_BENCH_SMALL=1 runs the small shape only; KERNELS_BENCH_REPS overrides the reps.
 */
import { DEFAULT_CONFIG, mergeConfig } from "../src/config.ts";
import { getGpu } from "../src/gpu/device.ts";
import type { Dispatch } from "../src/gpu/dispatch.ts";
import {
  dispatchWork,
  kernelName,
  Profiler,
  ranInStep,
  rates,
  sumWork,
} from "../src/gpu/profile.ts";
import { copyKernel, fmaPeakKernel, fmaPeakShape, PEAK_WG } from "../src/kernels/peak.ts";
import { initWeights } from "../src/sae/model.ts";
import { Session } from "../src/sae/session.ts";
import { densityBias } from "./peer.ts";

const gpu = await getGpu();
const REPS_ENV = Deno.env.get("KERNELS_BENCH_REPS");
/** Profiled steps per shape and variant: 15 at the small shape, 5 at the large one by default. */
const repsFor = (m: number) => REPS_ENV ? Number(REPS_ENV) : m <= 1024 ? 15 : 5;
const SMALL_ONLY = Deno.env.get("KERNELS_BENCH_SMALL") === "1";
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

// --- 1. Peaks ------------------------------------------------------------------------------------
const loop = fmaPeakShape(gpu, "loop");
const fma = await fmaPeakKernel(
  gpu,
  loop.groups,
  loop.iters,
  gpu.buffer("peak out", loop.groups * PEAK_WG * 16),
);
// Straight code: 64 trips unrolled (its code grows with them), more workgroups: the same work.
const straight = fmaPeakShape(gpu, "straight");
const fmaStraight = await fmaPeakKernel(
  gpu,
  straight.groups,
  straight.iters,
  gpu.buffer("peak out straight", straight.groups * PEAK_WG * 16),
  "straight",
);
const COPY_N4 = (32 << 20) / 16;
const copySrc = gpu.buffer("copy src", COPY_N4 * 16);
const copyDst = gpu.buffer("copy dst", COPY_N4 * 16);
const copy = await copyKernel(gpu, COPY_N4, copySrc, copyDst);
const peakProf = new Profiler(gpu, 3);
/** One timing of each peak kernel: [GFLOP/s (the faster FMA form), GB/s]. */
async function peakSample(): Promise<[number, number]> {
  const [fmaMs, straightMs, copyMs] = await peakProf.run([
    fma.dispatch,
    fmaStraight.dispatch,
    copy.dispatch,
  ]);
  const flops = (d: Dispatch, ms: number) => rates(dispatchWork(d)!, ms).gflops!;
  return [
    Math.max(flops(fma.dispatch, fmaMs), flops(fmaStraight.dispatch, straightMs)),
    rates(dispatchWork(copy.dispatch)!, copyMs).gbps!,
  ];
}
await peakSample();
const startPeaks: [number, number][] = [];
for (let i = 0; i < 5; i++) startPeaks.push(await peakSample());
console.log(
  `adapter: ${gpu.adapterName}; timing: ${peakProf.method}; reps: ${
    REPS_ENV ?? "15 small / 5 large"
  }; load average ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`,
);
console.log(
  `measured peak at the start: FMA ${median(startPeaks.map((p) => p[0])).toFixed(1)} GFLOP/s, ` +
    `copy ${median(startPeaks.map((p) => p[1])).toFixed(2)} GB/s (32 MiB vec4 copy, read + ` +
    `write); each table below is against the peaks re-measured between its steps (load varies)`,
);

// --- 2. Kernels of the step ----------------------------------------------------------------------
const fmt = (v: number, w: number, p = 2) => v.toFixed(p).padStart(w);
const shapes: [number, number, number][] = SMALL_ONLY
  ? [[256, 64, 512]]
  : [[256, 64, 512], [1024, 512, 4096]];
const stepRows: string[] = [];
for (const [B, d, m] of shapes) {
  // The two variants at their initial density (~50%: dense GEMMs), and at the large shape the
  // baseline at 0.5% density (b_enc set as bench:peer --density does, lr 1e-9 to hold it), where
  // the sparse-latent kernels run.
  const runs: ["baseline" | "paper", number | null][] = [["baseline", null], ["paper", null]];
  if (m >= 4096) runs.push(["baseline", 0.005]);
  for (const [variant, density] of runs) {
    const cfg = mergeConfig(DEFAULT_CONFIG, {
      variant,
      batch: B,
      d_in: d,
      d_sae: m,
      recon_only_steps: 0,
      ...(density !== null ? { lr: 1e-9 } : {}),
    });
    const w = initWeights(d, m, 1, new Float32Array(d));
    const x = new Float32Array(B * d).map((_, i) => Math.sin(i));
    if (density !== null) w.bEnc = densityBias(x, w.wEnc, B, d, m, density);
    const session = await Session.create(gpu, cfg, w, 1);
    await session.step(x);
    await session.sync();
    const prof = new Profiler(gpu, session.dispatchCount);
    const perRep: Map<string, number>[] = [];
    const wall: number[] = [];
    const peaks: [number, number][] = [];
    const ran = new Set<number>(); // dispatches that ran in at least one profiled step
    // Profiled and plain steps alternate, so both see the same machine load.
    for (let r = 0; r < repsFor(m); r++) {
      const ms = await session.stepProfiled(x, prof);
      const byName = new Map<string, number>();
      prof.lastDispatches.forEach((d, i) => {
        const name = kernelName(d.label);
        byName.set(name, (byName.get(name) ?? 0) + ms[i]);
      });
      (await ranInStep(gpu, prof.lastDispatches)).forEach((yes, i) => yes && ran.add(i));
      perRep.push(byName);
      const t0 = performance.now();
      await session.step(x);
      await session.sync();
      wall.push(performance.now() - t0);
      peaks.push(await peakSample());
    }
    const fmaPeak = median(peaks.map((p) => p[0]));
    const copyPeak = median(peaks.map((p) => p[1]));
    const { l0, sparse_fraction } = (await session.readMetrics()).metrics;
    const nnz = l0 * B;
    // Each kernel's work per step, summed over its dispatches that ran (a split or chunked kernel
    // has several); null where a dispatch has no cost. Kernels of the path the sparse plan never
    // took this run are left out.
    const byKernel = Map.groupBy(
      prof.lastDispatches.filter((_, i) => ran.has(i)),
      (d) => kernelName(d.label),
    );
    const work = new Map(
      [...byKernel].map(([name, ds]) => [name, sumWork(ds.map((d) => dispatchWork(d, nnz)))]),
    );
    const tag = density === null
      ? variant
      : `${variant}, L0 ${l0.toFixed(1)} (${(100 * l0 / m).toFixed(1)}%), sparse kernels on ${
        (100 * sparse_fraction).toFixed(0)
      }% of steps`;
    console.log(
      `\n${tag} B=${B} d_in=${d} d_sae=${m} (peaks between its steps: FMA ` +
        `${fmaPeak.toFixed(1)} GFLOP/s, copy ${copyPeak.toFixed(2)} GB/s)`,
    );
    console.log(
      `${"kernel".padEnd(24)} ${"ms/step".padStart(9)} ${"GFLOP".padStart(8)} ${
        "MiB".padStart(8)
      } ${"GFLOP/s".padStart(8)} ${"GB/s".padStart(8)} ${"of roof".padStart(8)}`,
    );
    const cell = (v: number | null, w: number, p: number) =>
      v === null ? "-".padStart(w) : fmt(v, w, p);
    let sum = 0;
    for (const [name, wk] of work) {
      const ms = median(perRep.map((m) => m.get(name)!));
      sum += ms;
      const amount = `${cell(wk.flops && wk.flops / 1e9, 8, 3)} ${
        cell(wk.bytes && wk.bytes / 2 ** 20, 8, 1)
      }`;
      let cols = `${amount} ${cell(null, 8, 2)} ${cell(null, 8, 2)} ${cell(null, 8, 2)}`;
      if (ms < 0.01 && (wk.flops || wk.bytes)) {
        // Below what host clocks resolve on lavapipe (a copy's memcpy, say): no rate.
        cols = `${amount} ${"< clock".padStart(8)}`;
      } else if (wk.flops !== null || wk.bytes !== null) {
        const r = rates(wk, ms);
        // Fraction of the roofline: the time the work needs at the measured peaks (the FMA rate
        // for its FLOPs or the copy bandwidth for its bytes, whichever takes longer) over the
        // time taken.
        const need = Math.max((r.gflops ?? 0) / fmaPeak, (r.gbps ?? 0) / copyPeak);
        cols = `${amount} ${cell(r.gflops, 8, 2)} ${cell(r.gbps, 8, 2)} ${fmt(100 * need, 7, 1)}%`;
      }
      console.log(`${name.padEnd(24)} ${fmt(ms, 9, 3)} ${cols}`);
    }
    const wallMs = median(wall);
    console.log(
      `${"whole step".padEnd(24)} ${fmt(wallMs, 9, 1)} ms wall (kernels sum ${sum.toFixed(1)} ms)`,
    );
    stepRows.push(
      `${variant}${density === null ? "" : ` at ${100 * density}% density`} ${B}/${d}/${m}: ${
        wallMs.toFixed(1)
      } ms`,
    );
    prof.destroy();
    if (B === shapes[0][0]) {
      Deno.bench({ name: `${variant} step B=${B} d=${d} m=${m}`, n: 5, warmup: 1 }, async () => {
        await session.step(x);
        await session.sync();
      });
    }
  }
}
console.log(`\nwhole steps: ${stepRows.join("; ")}`);

Deno.bench({ name: "fma peak + 32 MiB copy", n: 3, warmup: 1 }, async () => {
  await peakSample();
});
