/**
 * Whole training steps on the current adapter: `deno bench -A bench/step_bench.ts`.
 *
 * Prints one line per case with ms/step, steps/s and the step's work as GFLOP/s and GB/s (summed
 * from the `cost` of each dispatch that ran in the profiled warm-up step, the sparse kernels' at
 * its L0; "-" while a dispatch has none), timed over STEP_BENCH_REPS steps after the warm-up, each
 * step uploading a batch as training does. Cases:
 * baseline and the paper's method at B=1024, d=512, m=4096 (the large shape of bench/RESULTS.md) and at
 * the CPU default (B=256, d=64, m=512). STEP_BENCH_SMALL=1 runs the small shape only.
 */
import { DEFAULT_CONFIG, mergeConfig, type TrainConfig } from "../src/config.ts";
import { getGpu } from "../src/gpu/device.ts";
import { dispatchWork, Profiler, ranInStep, rates, sumWork } from "../src/gpu/profile.ts";
import { initWeights } from "../src/sae/model.ts";
import { Session } from "../src/sae/session.ts";

const gpu = await getGpu();
const REPS = Number(Deno.env.get("STEP_BENCH_REPS") ?? 5);
const SMALL_ONLY = Deno.env.get("STEP_BENCH_SMALL") === "1";

const shapes: [number, number, number][] = SMALL_ONLY
  ? [[256, 64, 512]]
  : [[256, 64, 512], [1024, 512, 4096]];

async function makeSession(cfg: TrainConfig) {
  const w = initWeights(cfg.d_in, cfg.d_sae, 1, new Float32Array(cfg.d_in));
  return await Session.create(gpu, cfg, w, 1);
}

for (const [B, d, m] of shapes) {
  for (const variant of ["baseline", "paper"] as const) {
    const cfg = mergeConfig(DEFAULT_CONFIG, { variant, batch: B, d_in: d, d_sae: m });
    const session = await makeSession(cfg);
    const x = new Float32Array(B * d).map((_, i) => Math.sin(i));
    // Warm-up, profiled: the step's dispatches, which of them ran, and the L0 of the batch.
    const prof = new Profiler(gpu, session.dispatchCount);
    await session.stepProfiled(x, prof);
    const ran = await ranInStep(gpu, prof.lastDispatches);
    const nnz = (await session.readMetrics()).metrics.l0 * B;
    const work = sumWork(
      prof.lastDispatches.filter((_, i) => ran[i]).map((d) => dispatchWork(d, nnz)),
    );
    prof.destroy();
    const t0 = performance.now();
    for (let i = 0; i < REPS; i++) await session.step(x);
    await session.sync();
    const s = (performance.now() - t0) / 1000 / REPS;
    const name = `${variant} step B=${B} d=${d} m=${m}`;
    const r = rates(work, s * 1000);
    const rate = (v: number | null) => (v === null ? "-" : v.toFixed(2)).padStart(6);
    console.log(
      `${name.padEnd(36)} ${(s * 1000).toFixed(1).padStart(8)} ms/step  ${
        (1 / s).toFixed(1).padStart(6)
      } steps/s  ${rate(r.gflops)} GFLOP/s  ${rate(r.gbps)} GB/s`,
    );
    Deno.bench({ name, n: 1, warmup: 0 }, async () => {
      await session.step(x);
      await session.sync();
    });
  }
}
