/**
 * GEMM throughput on the current adapter: `deno bench -A bench/gemm_bench.ts`.
 *
 * Before the Deno.bench table, prints one line per case with GFLOP/s (GPU timestamp queries,
 * median of 5 after a warm-up, where the adapter has trustworthy ones; else host clocks around
 * onSubmittedWorkDone over several dispatches) and the fraction of the adapter's FMA peak measured
 * in the same run (the faster of two compute-bound kernels of independent vec4 FMA chains, in a
 * loop and as straight code, no memory traffic: wgsl/peak.wgsl). Cases: the SAE step's GEMMs
 * (encoder NT, decoder NN, dF NT, dW_dec TN) at its sizes, on each path and tile of the adapter's
 * class (src/gpu/adapter.ts):
 *   GPUs: the tiled path with its chosen tile ("tiled"), with every candidate tile that fits the
 *     device, with f16 storage where the device has shader-f16, and the vec4 path it replaced;
 *     sizes B=1024 d=512 m=4096, the paper's B=2048 d=2304 m=2304, and m=16384;
 *   CPU adapters: the broadcast, texture and vec4 paths (packing dispatches timed with the
 *     product); sizes B=1024 d=512 m=4096 and B=256 d=128 m=1024;
 * and the scalar fallback at the smallest size. GFLOP/s come from the FLOPs the product
 * dispatches carry (their `cost`; packing and f16 conversions carry none but are timed).
 *
 * Env: GEMM_BENCH_REPS (dispatches per host-clock timing, default 2), GEMM_BENCH_SCALAR=0 skips the
 * fallback rows, =all adds them at every size (slow on CPU adapters: ~6 s per dispatch on 2 cores
 * at the large size); GEMM_BENCH_SMALL=1 runs the smallest size only; GEMM_BENCH_PATHS=bcast,texture
 * picks the paths (default: the class's, above; "tiles" stands for every candidate tile).
 */
import { adapterClass } from "../src/gpu/adapter.ts";
import { getGpu } from "../src/gpu/device.ts";
import { Profiler } from "../src/gpu/profile.ts";
import { fmaPeakKernel, fmaPeakShape, PEAK_WG } from "../src/kernels/peak.ts";
import { type Dispatch, run } from "../src/gpu/dispatch.ts";
import {
  type Epilogue,
  gemmDispatches,
  type GemmOptions,
  type GemmSpec,
  TILED_CANDIDATES,
  tiledTile,
} from "../src/kernels/gemm/mod.ts";
import { tiledTileProblem } from "../src/kernels/gemm/tiled.ts";

const gpu = await getGpu();
{
  const probe = new Profiler(gpu, 1); // its clock: timestamps, or host clocks (lavapipe, none)
  console.log(
    `timing: ${
      !gpu.hasTimestamps
        ? "host clock, best of 3"
        : `profiler (${probe.method}, per dispatch), median of 5`
    }`,
  );
  probe.destroy();
}
const REPS = Number(Deno.env.get("GEMM_BENCH_REPS") ?? 2);
const SCALAR = Deno.env.get("GEMM_BENCH_SCALAR") ?? "small";
const SMALL_ONLY = Deno.env.get("GEMM_BENCH_SMALL") === "1";

/**
 * Seconds per run of `list` (its dispatches' times summed), after a warm-up: the median of 5 runs
 * timed per dispatch by the profiler (GPU timestamps where they can be trusted, host clocks on
 * lavapipe: src/gpu/profile.ts) where the adapter has timestamps, else the best of 3 host-clock
 * timings of `reps` runs each around onSubmittedWorkDone.
 */
async function secondsPer(list: Dispatch[], reps = REPS): Promise<number> {
  if (gpu.hasTimestamps) {
    const prof = new Profiler(gpu, list.length);
    await prof.run(list);
    const runs: number[] = [];
    for (let t = 0; t < 5; t++) runs.push((await prof.run(list)).reduce((a, b) => a + b, 0));
    prof.destroy();
    return runs.sort((a, b) => a - b)[2] / 1000;
  }
  run(gpu, list);
  await gpu.sync();
  let best = Infinity;
  for (let t = 0; t < 3; t++) {
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) run(gpu, list);
    await gpu.sync();
    best = Math.min(best, (performance.now() - t0) / 1000 / reps);
  }
  return best;
}

// --- Peak: the FMA kernels of wgsl/peak.wgsl (3 independent vec4 FMA chains per invocation, in a
// loop and as straight code: the faster counts).
const cpu = adapterClass(gpu) === "cpu";
const fmaRates: Record<string, number> = {};
for (const form of ["loop", "straight"] as const) {
  const { groups, iters } = fmaPeakShape(gpu, form);
  const out = gpu.buffer(`fma out ${form}`, groups * PEAK_WG * 16);
  const fma = await fmaPeakKernel(gpu, groups, iters, out, form);
  fmaRates[form] = fma.flops / await secondsPer([fma.dispatch]) / 1e9;
}
const peak = Math.max(...Object.values(fmaRates));
console.log(`adapter: ${gpu.adapterName}`);
console.log(
  `FMA peak: ${peak.toFixed(2)} GFLOP/s (wgsl/peak.wgsl; loop ${fmaRates.loop.toFixed(2)}, ` +
    `straight ${fmaRates.straight.toFixed(2)})`,
);

// --- GEMM cases: the SAE step's layouts.
interface Case {
  name: string;
  spec: GemmSpec;
  opts: GemmOptions;
}
function stepCases(B: number, d: number, m: number): Omit<GemmSpec, "label">[] {
  const c = (M: number, N: number, K: number, tA: boolean, tB: boolean, ep: Epilogue) => ({
    M,
    N,
    K,
    transA: tA,
    transB: tB,
    epilogue: ep,
    scalarIdx: 0,
  });
  return [
    c(B, m, d, false, true, "bias_relu"), // pre = x·W_encᵀ + b
    c(B, d, m, false, false, "bias"), // x̂ = f·W_dec + b
    c(B, m, d, false, true, "relu_grad"), // dF = dX̂·W_decᵀ
    c(m, d, B, true, false, "none"), // dW_dec = fᵀ·dX̂
  ];
}
const allSizes: [number, number, number][] = cpu
  ? [[1024, 512, 4096], [256, 128, 1024]]
  : [[1024, 512, 4096], [2048, 2304, 2304], [2048, 2304, 16384]];
const smallest = allSizes.reduce((a, b) => (a[0] * a[1] * a[2] <= b[0] * b[1] * b[2] ? a : b));
const sizes = SMALL_ONLY ? [smallest] : allSizes;
const tileName = (t: { BM: number; BN: number; BK: number; TM: number; TN: number }) =>
  `${t.BM}x${t.BN}x${t.BK}/${t.TM}x${t.TN}`;
/** The variants of one GEMM to time, by name. */
function variants(spec: GemmSpec, withScalar: boolean): [string, GemmOptions][] {
  const out: [string, GemmOptions][] = [];
  const paths = Deno.env.get("GEMM_BENCH_PATHS")?.split(",") ??
    (cpu ? ["bcast", "texture", "vec4"] : ["tiled", "tiles", "f16", "vec4"]);
  for (const p of paths) {
    if (p === "tiles") {
      for (const t of TILED_CANDIDATES) {
        if (!tiledTileProblem(gpu, t)) {
          out.push([`tiled ${tileName(t)}`, { path: "tiled", tiledTile: t }]);
        }
      }
    } else if (p === "tiled") {
      out.push([`tiled (chosen: ${tileName(tiledTile(gpu, spec, {}))})`, { path: "tiled" }]);
    } else if (p === "f16") {
      if (gpu.hasF16) out.push(["tiled f16", { path: "tiled", f16: true }]);
    } else {
      out.push([p, { path: p as GemmOptions["path"] }]);
    }
  }
  if (withScalar) out.push(["scalar", { path: "scalar" }]);
  return out;
}
const cases: Case[] = [];
for (const size of sizes) {
  const [B, d, m] = size;
  for (const s of stepCases(B, d, m)) {
    const layout = `${s.transA ? "T" : "N"}${s.transB ? "T" : "N"}`;
    const shape = `${s.M}x${s.N}x${s.K}`;
    const withScalar = SCALAR === "all" || (SCALAR !== "0" && size === smallest);
    for (const [v, opts] of variants({ ...s, label: "" }, withScalar)) {
      const name = `${layout} ${s.epilogue} ${shape} (B=${B} d=${d} m=${m}) ${v}`;
      cases.push({ name, spec: { ...s, label: name }, opts });
    }
  }
}

function rand(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

/** FLOPs of a dispatch list, from the costs its dispatches carry (packing: none). */
function flopsOf(list: Dispatch[]): number {
  return list.reduce((sum, d) => sum + (d.cost?.flops ?? 0), 0);
}

const dispatches = new Map<string, Dispatch[]>();
for (const c of cases) {
  const { M, N, K } = c.spec;
  const bufs = {
    a: gpu.upload("a", rand(M * K)),
    b: gpu.upload("b", rand(K * N)),
    c: gpu.buffer("c", M * N * 4),
    e: gpu.upload("e", rand(c.spec.epilogue === "relu_grad" ? M * N : N)),
    s: gpu.upload("s", new Float32Array([0.01, 0, 0, 0])),
  };
  const d = await gemmDispatches(gpu, c.spec, bufs, c.opts);
  dispatches.set(c.name, d);
  const g = flopsOf(d) / await secondsPer(d) / 1e9;
  console.log(
    `${c.name.padEnd(76)} ${g.toFixed(2).padStart(8)} GFLOP/s  ${
      (100 * g / peak).toFixed(1).padStart(5)
    }% of FMA peak`,
  );
}

for (const c of cases) {
  const d = dispatches.get(c.name)!;
  Deno.bench({ name: c.name, n: 2, warmup: 1 }, async () => {
    run(gpu, d);
    await gpu.sync();
  });
}
