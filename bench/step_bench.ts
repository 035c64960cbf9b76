/**
 * Whole training steps on the current adapter: `deno bench -A bench/step_bench.ts`.
 *
 * Prints one line per case with ms/step, steps/s and the step's GEMM work as GFLOP/s (the step's
 * five GEMMs: 6·B·d·m FLOPs, plus 4·m²·d for the method's orthogonality term), timed over
 * STEP_BENCH_REPS steps after a warm-up, each step uploading a batch as training does. Cases:
 * baseline and the paper's method at B=1024, d=512, m=4096 (the reference shape) and at
 * the CPU default (B=256, d=64, m=512). STEP_BENCH_SMALL=1 runs the small shape only.
 */
import { DEFAULT_CONFIG, mergeConfig, type TrainConfig } from "../src/config.ts";
import { getGpu } from "../src/gpu/device.ts";
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

function stepFlops(cfg: TrainConfig): number {
  const gemms = 6 * cfg.batch * cfg.d_in * cfg.d_sae;
  const ortho = cfg.variant === "paper" && cfg.lambda_ortho > 0
    ? 4 * cfg.d_sae * cfg.d_sae * cfg.d_in
    : 0;
  return gemms + ortho;
}

for (const [B, d, m] of shapes) {
  for (const variant of ["baseline", "paper"] as const) {
    const cfg = mergeConfig(DEFAULT_CONFIG, { variant, batch: B, d_in: d, d_sae: m });
    const session = await makeSession(cfg);
    const x = new Float32Array(B * d).map((_, i) => Math.sin(i));
    await session.step(x);
    await session.sync();
    const t0 = performance.now();
    for (let i = 0; i < REPS; i++) await session.step(x);
    await session.sync();
    const s = (performance.now() - t0) / 1000 / REPS;
    const name = `${variant} step B=${B} d=${d} m=${m}`;
    console.log(
      `${name.padEnd(36)} ${(s * 1000).toFixed(1).padStart(8)} ms/step  ${
        (1 / s).toFixed(1).padStart(6)
      } steps/s  ${(stepFlops(cfg) / s / 1e9).toFixed(2).padStart(6)} GFLOP/s`,
    );
    Deno.bench({ name, n: 1, warmup: 0 }, async () => {
      await session.step(x);
      await session.sync();
    });
  }
}
