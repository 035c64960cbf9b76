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
 *    --density does), where the sparse-latent kernels run (rows of the path the plan skipped are
 *    left out; sparse products count 2·nnz·d_in FLOPs). Each kernel of a step is timed per
 *    dispatch (GPU timestamp queries where the adapter has them and they can be trusted, else
 *    host clocks around each submission less an empty one's: src/gpu/profile.ts), median over
 *    KERNELS_BENCH_REPS profiled steps (default 15 at the small shape, 5 at the large one) after a
 *    warm-up step. Each line: time per step, the work (GEMMs: 2·M·N·K FLOPs; other kernels: bytes
 *    each must read and write once, counted below in `work`; a GEMM's operand packing on the
 *    CPU adapters, "X pack A/B": the operand read plus the texture written, by a kernel or a
 *    buffer-to-texture copy), the rate, and its fraction of the FMA peak (GEMMs) or the copy
 *    bandwidth (the rest); "< clock" where the host clock cannot resolve the time.
 * 3. The whole step: median wall time of plain (one-pass) steps, each run right after a profiled
 *    one (host clock around submit → done, batch upload included), and the sum of its kernels'
 *    times.
 *
 * Env: KERNELS_BENCH_SMALL=1 runs the small shape only; KERNELS_BENCH_REPS overrides the reps.
 */
import { DEFAULT_CONFIG, mergeConfig, type TrainConfig } from "../src/config.ts";
import { getGpu } from "../src/gpu/device.ts";
import { kernelName, Profiler } from "../src/gpu/profile.ts";
import { orthoChunkRows } from "../src/kernels/paper.ts";
import { copyKernel, fmaPeakKernel } from "../src/kernels/peak.ts";
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
const peakOut = gpu.buffer("peak out", 512 * 64 * 16);
const fma = await fmaPeakKernel(gpu, 512, 2048, peakOut);
// Straight code: 64 trips unrolled (its code grows with them), 32x the workgroups: the same work.
const fmaStraight = await fmaPeakKernel(
  gpu,
  512 * 32,
  64,
  gpu.buffer("peak out straight", 512 * 32 * 64 * 16),
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
  const flops = Math.max(fma.flops / fmaMs, fmaStraight.flops / straightMs) * 1e3;
  return [flops / 1e9, copy.bytes / (copyMs / 1e3) / 1e9];
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
/**
 * Elements of the operands a GEMM's "pack A" / "pack B" dispatches copy into textures (the texture
 * path of src/kernels/gemm.ts on CPU adapters): A holds M·K elements, B K·N, summed over every
 * dispatch of that name in the step (the orthogonality pair: over its blocks I ≤ J).
 */
function packElems(label: string, cfg: TrainConfig): { a: number; b: number } | null {
  const B = cfg.batch, d = cfg.d_in, m = cfg.d_sae;
  switch (label) {
    case "encode":
    case "dF":
      return { a: B * d, b: d * m }; // M=B, N=m, K=d
    case "decode":
      return { a: B * m, b: m * d }; // M=B, N=d, K=m
    case "dW_dec":
    case "dW_enc":
      return { a: B * m, b: B * d }; // M=m, N=d, K=B
    case "ortho gram":
    case "ortho grad": {
      const R = Math.min(orthoChunkRows(m), m);
      let a = 0, b = 0;
      for (let i0 = 0; i0 < m; i0 += R) {
        const ri = Math.min(R, m - i0);
        for (let j0 = i0; j0 < m; j0 += R) {
          const rj = Math.min(R, m - j0);
          if (label === "ortho gram") { // [ri, d] · [rj, d]ᵀ
            a += ri * d;
            b += rj * d;
          } else { // coef [ri, rj] · W_J, and off the diagonal coefᵀ · W_I
            a += ri * rj * (j0 > i0 ? 2 : 1);
            b += rj * d + (j0 > i0 ? ri * d : 0);
          }
        }
      }
      return { a, b };
    }
    default:
      return null;
  }
}

/**
 * FLOPs (GEMMs and sparse products) or bytes (everything else) one dispatch set of `label` moves
 * per step; `nnz`: active entries of f in the step (the sparse kernels' work).
 */
function work(label: string, cfg: TrainConfig, nnz: number): { flops?: number; bytes?: number } {
  const B = cfg.batch, d = cfg.d_in, m = cfg.d_sae;
  const f = 4;
  const pack = /^(.*) pack ([AB])$/.exec(label);
  if (pack) {
    // Read the stored operand, write the same elements into an rgba32float texture.
    const e = packElems(pack[1], cfg);
    return e ? { bytes: 2 * f * (pack[2] === "A" ? e.a : e.b) } : {};
  }
  switch (label) {
    case "encode":
    case "decode":
    case "dF":
    case "dW_dec":
    case "dW_enc":
      return { flops: 2 * B * d * m };
    case "ortho gram": {
      // Only blocks I ≤ J of the symmetric Gram matrix are formed (src/kernels/paper.ts).
      const c = Math.ceil(m / Math.min(orthoChunkRows(m), m));
      return { flops: 2 * m * m * d * (c + 1) / (2 * c) };
    }
    case "ortho grad":
      return { flops: 2 * m * m * d };
    case "adamw wEnc":
    case "adamw wDec":
      return { bytes: 7 * f * m * d }; // read p, g, m, v; write p, m, v
    case "adamw bEnc":
      return { bytes: 7 * f * m };
    case "adamw bDec":
      return { bytes: 7 * f * d };
    case "decoder grad projection":
      return { bytes: 3 * f * m * d }; // read w, g; write g
    case "decoder normalize":
      return { bytes: 2 * f * m * d }; // read w; write w
    case "health":
      return { bytes: 2 * f * m * d };
    case "db_enc":
    case "feature stats":
      return { bytes: f * B * m };
    case "importance grad + mask":
      return { bytes: 3 * f * B * m }; // read dpre, f; write dpre
    case "b_dec grad":
      return { bytes: f * (B * d + m * d) };
    case "x mean":
      return { bytes: f * B * d };
    case "prepare":
      return { bytes: 3 * f * B * d }; // read x; write x, xc
    case "residual":
      return { bytes: 3 * f * B * d }; // read x, x̂; write dL/dx̂
    case "sparse rows":
      return { bytes: 2 * f * B * m }; // f read twice (count, then list)
    case "sparse cols":
    case "dF sparse clear":
      return { bytes: f * B * m };
    case "decode sparse":
    case "dF sparse":
    case "dW_dec sparse":
    case "dW_enc sparse":
      return { flops: 2 * nnz * d };
    default:
      return {}; // schedule, metrics, paper stats: O(d_sae) or less
  }
}

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
    let labels: string[] = [];
    const dispatchLabels = session.dispatchLabels().map(kernelName);
    // Profiled and plain steps alternate, so both see the same machine load.
    for (let r = 0; r < repsFor(m); r++) {
      const ms = await session.stepProfiled(x, prof);
      const byLabel = new Map<string, number>();
      // Labels of the step's dispatches, in order (a split or chunked kernel has several).
      labels = [];
      ms.forEach((t, i) => {
        const name = dispatchLabels[i];
        if (!byLabel.has(name)) labels.push(name);
        byLabel.set(name, (byLabel.get(name) ?? 0) + t);
      });
      perRep.push(byLabel);
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
      `${"kernel".padEnd(24)} ${"ms/step".padStart(9)} ${"work".padStart(10)} ` +
        `${"rate".padStart(12)} ${"of peak".padStart(8)}`,
    );
    // The plan runs either the dense kernels or their sparse replacements: rows of the path not
    // taken (indirect dispatches of zero workgroups) are left out when every step took the other.
    const sparseOnly = (n: string) =>
      /^(decode|dF|dW_dec|dW_enc) sparse|^dF sparse clear$|^sparse (cols|stats)/.test(n);
    const denseOnly = (n: string) =>
      /^(decode|dF|dW_dec|dW_enc|db_enc|feature stats)( pack [AB])?$/.test(n);
    const shown = labels.filter((n) =>
      !(sparse_fraction === 1 && denseOnly(n)) && !(sparse_fraction === 0 && sparseOnly(n))
    );
    let sum = 0;
    for (const name of shown) {
      const ms = median(perRep.map((m) => m.get(name)!));
      sum += ms;
      const wk = work(name, cfg, nnz);
      let cols = `${"".padStart(10)} ${"".padStart(12)} ${"".padStart(8)}`;
      if (ms < 0.01 && (wk.flops || wk.bytes)) {
        // Below what host clocks resolve on lavapipe (a copy's memcpy, say): no rate.
        const w = wk.flops
          ? `${fmt(wk.flops / 1e9, 6, 3)} GFL`
          : `${fmt(wk.bytes! / 2 ** 20, 7, 1)} MiB`;
        cols = `${w} ${"< clock".padStart(12)}`;
      } else if (wk.flops) {
        const rate = wk.flops / (ms / 1e3) / 1e9;
        cols = `${fmt(wk.flops / 1e9, 6, 3)} GFL ${fmt(rate, 6, 2)} GFLOP/s ${
          fmt(100 * rate / fmaPeak, 6, 1)
        }%`;
      } else if (wk.bytes) {
        const rate = wk.bytes / (ms / 1e3) / 1e9;
        cols = `${fmt(wk.bytes / 2 ** 20, 7, 1)} MiB ${fmt(rate, 7, 2)} GB/s ${
          fmt(100 * rate / copyPeak, 7, 1)
        }%`;
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
