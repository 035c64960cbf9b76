/**
 * The language model's forward pass on the current adapter: `deno bench -A bench/lm_bench.ts`
 * (also part of `deno task bench`).
 *
 * Cases, each a full forward (logits at every position) of 8 contexts of 128 tokens:
 * `stories260K` (../shared/lm; skipped with a line when absent) and the GPT-2-small shape (d 768,
 * 12 layers, 12 heads, vocabulary 50257) with random weights. Per case:
 *
 * 1. each kernel's time in one profiled forward (src/gpu/profile.ts: host clocks on lavapipe),
 *    labels without the layer number, with the work from the dispatches' `cost` and the fraction
 *    of the roofline (the time the work needs at the measured FMA peak or copy bandwidth,
 *    whichever is longer, over the time taken); all GEMMs together against the FMA peak;
 * 2. the whole forward, median wall time of LM_BENCH_REPS runs (default 3; host clock around
 *    submit → done, token upload included): tokens/s and GFLOP/s against the FMA peak.
 *
 * The peaks (the faster FMA kernel, a 32 MiB copy: bench/lm_models.ts) are timed just before and
 * after each profiled or timed forward, and each is compared with their mean, since other load on
 * the machine moves them. For comparison in the same run, the SAE step's encoder GEMM (x·W_encᵀ,
 * 1024 × 4096 × 512, NT) is profiled the same way (median of three). `deno task bench:peer-lm` times the GPT-2 forward against PyTorch.
 */
import { getGpu } from "../src/gpu/device.ts";
import { type Dispatch, run } from "../src/gpu/dispatch.ts";
import { dispatchWork, Profiler, rates, sumWork } from "../src/gpu/profile.ts";
import { gemmDispatches } from "../src/kernels/gemm/mod.ts";
import { GpuLm, LmForward } from "../src/lm/forward.ts";
import { loadModel } from "../src/lm/load.ts";
import type { LmConfig } from "../src/lm/config.ts";
import type { LmWeights } from "../src/lm/weights.ts";
import { Rng } from "../src/rng.ts";
import { forwardWork, median, peakMeter, randomGpt2, sharedLm } from "./lm_models.ts";

const gpu = await getGpu();
const REPS = Number(Deno.env.get("LM_BENCH_REPS") ?? 3);
const BATCH = 8, SEQ = 128;
const peak = await peakMeter(gpu);
const fmt = (v: number | null, w: number, p = 2) => (v === null ? "-" : v.toFixed(p)).padStart(w);

console.log(
  `adapter: ${gpu.adapterName}; load average ${
    Deno.loadavg().map((l) => l.toFixed(2)).join(" ")
  } on ${navigator.hardwareConcurrency} CPUs; ${REPS} timed forwards per case`,
);

/** Kernel label without its layer ("l3 mlp in" → "mlp in") or chunk numbers. */
const family = (label: string) => label.replace(/^l\d+ /, "").replace(/ \d+(?= |$)/g, "");
/** The GEMM products (not their operand packing) among the forward's labels. */
const isGemm = (name: string) => /^(qkv|o|mlp in|mlp out|unembed|sae encode)$/.test(name);

/**
 * Profiles `list` once between two samples of the peaks, and prints one line per kernel family
 * against their mean; returns the GEMMs' rate and fraction of the FMA peak, and their share of
 * the time.
 */
async function profileTable(list: readonly Dispatch[], print = true) {
  const prof = new Profiler(gpu, list.length);
  const before = await peak();
  const ms = await prof.run(list);
  const after = await peak();
  prof.destroy();
  const fmaPeak = (before.gflops + after.gflops) / 2, copyPeak = (before.gbps + after.gbps) / 2;
  const out = print ? console.log : () => {};
  const rows = new Map<string, { ms: number; works: ReturnType<typeof dispatchWork>[] }>();
  list.forEach((d, i) => {
    const r = rows.get(family(d.label)) ?? { ms: 0, works: [] };
    r.ms += ms[i];
    r.works.push(dispatchWork(d));
    rows.set(family(d.label), r);
  });
  out(
    `${"kernel".padEnd(22)} ${"ms".padStart(9)} ${"GFLOP".padStart(8)} ${"GFLOP/s".padStart(8)} ${
      "GB/s".padStart(7)
    } ${"of roof".padStart(8)}`,
  );
  let gemmMs = 0, gemmFlops = 0;
  for (const [name, r] of [...rows].sort((a, b) => b[1].ms - a[1].ms)) {
    const w = sumWork(r.works);
    if (isGemm(name)) {
      gemmMs += r.ms;
      gemmFlops += w.flops ?? 0;
    }
    if (r.ms < 0.01) {
      out(`${name.padEnd(22)} ${"< clock".padStart(9)}`);
      continue;
    }
    const rt = rates(w, r.ms);
    const need = Math.max((rt.gflops ?? 0) / fmaPeak, (rt.gbps ?? 0) / copyPeak);
    out(
      `${name.padEnd(22)} ${fmt(r.ms, 9, 1)} ${fmt(w.flops && w.flops / 1e9, 8, 3)} ${
        fmt(rt.gflops, 8)
      } ${fmt(rt.gbps, 7)} ${fmt(100 * need, 7, 1)}%`,
    );
  }
  const g = gemmFlops / (gemmMs / 1e3) / 1e9;
  out(
    `(against the peaks around this profile: FMA ${fmaPeak.toFixed(1)} GFLOP/s, copy ${
      copyPeak.toFixed(2)
    } GB/s)`,
  );
  return {
    gemmGflops: g,
    gemmOfPeak: g / fmaPeak,
    gemmShare: gemmMs / ms.reduce((a, b) => a + b, 0),
  };
}

const cases: { name: string; model: () => Promise<{ config: LmConfig; weights: LmWeights }> }[] =
  [];
const stories = sharedLm("stories260K/stories260K.bin");
if (stories) cases.push({ name: "stories260K", model: () => loadModel(stories) });
else console.log("stories260K skipped: ../shared/lm is absent");
cases.push({
  name: "gpt2-small shape",
  model: () => Promise.resolve(randomGpt2()),
});

for (const c of cases) {
  const model = await c.model();
  const lm = GpuLm.upload(gpu, model);
  const f = await LmForward.build(lm, { batch: BATCH, seq: SEQ, logits: "all" });
  const rng = new Rng(7);
  const tokens = Array.from(
    { length: BATCH * SEQ },
    () => Math.floor(rng.uniform() * model.config.vocabSize),
  );
  const work = forwardWork(f.dispatches);
  f.run(tokens);
  await gpu.sync();
  const cfg = model.config;
  console.log(
    `\n${c.name}: d ${cfg.dModel}, ${cfg.nLayers} layers, ${cfg.nHeads} heads, vocabulary ${cfg.vocabSize}; ` +
      `forward of ${BATCH} × ${SEQ} tokens, logits at every position: ${
        (work.flops! / 1e9).toFixed(2)
      } GFLOP, ${f.dispatches.length} dispatches`,
  );
  const table = await profileTable(f.dispatches);
  // Each timed forward against the mean of the FMA peaks sampled just before and after it.
  const wall: number[] = [], ofPeak: number[] = [];
  let before = await peak();
  for (let r = 0; r < REPS; r++) {
    const t0 = performance.now();
    f.run(tokens);
    await gpu.sync();
    const s = (performance.now() - t0) / 1000;
    const after = await peak();
    wall.push(s);
    ofPeak.push(work.flops! / s / 1e9 / ((before.gflops + after.gflops) / 2));
    before = after;
  }
  const s = median(wall);
  console.log(
    `${c.name} forward: ${(s * 1000).toFixed(1)} ms (${
      wall.map((w) => (w * 1000).toFixed(0)).join(", ")
    }), ${Math.round(BATCH * SEQ / s).toLocaleString("en-US")} tokens/s, ${
      (work.flops! / s / 1e9).toFixed(2)
    } GFLOP/s = ${(100 * median(ofPeak)).toFixed(1)}% of the FMA peak (each run against the ` +
      `peaks around it); GEMMs ${table.gemmGflops.toFixed(2)} GFLOP/s = ${
        (100 * table.gemmOfPeak).toFixed(1)
      }% of it, ${(100 * table.gemmShare).toFixed(0)}% of the profiled time`,
  );
  Deno.bench({ name: `${c.name} forward ${BATCH}×${SEQ}`, n: 1, warmup: 0 }, async () => {
    f.run(tokens);
    await gpu.sync();
  });
}

// The SAE step's encoder GEMM, for the GEMMs' fraction of the FMA peak in the same run.
{
  const B = 1024, d = 512, m = 4096;
  const rng = new Rng(3);
  const rand = (n: number) => Float32Array.from({ length: n }, () => rng.uniform() - 0.5);
  const list = await gemmDispatches(gpu, {
    label: "sae encode",
    M: B,
    N: m,
    K: d,
    transA: false,
    transB: true,
    epilogue: "bias_relu",
  }, {
    a: gpu.upload("x", rand(B * d)),
    b: gpu.upload("W_enc", rand(m * d)),
    c: gpu.buffer("pre", B * m * 4),
    e: gpu.upload("b_enc", rand(m)),
  });
  run(gpu, list);
  await gpu.sync();
  console.log(`\nSAE step's encoder GEMM (B ${B}, d_in ${d}, d_sae ${m}):`);
  const runs = [await profileTable(list)];
  for (let r = 1; r < 3; r++) runs.push(await profileTable(list, false));
  console.log(
    `SAE encoder GEMM: ${median(runs.map((t) => t.gemmGflops)).toFixed(2)} GFLOP/s = ${
      (100 * median(runs.map((t) => t.gemmOfPeak))).toFixed(1)
    }% of the FMA peak (median of ${runs.length} profiles, each against the peaks around it)`,
  );
}
