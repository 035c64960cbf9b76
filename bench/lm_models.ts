/**
 * Models and timing shared by the LM forward benches (bench/lm_bench.ts, bench/peer_lm.ts): a
 * GPT-2-small shape with random weights, built in memory, and the work of a forward pass summed
 * from its dispatches' costs.
 */
import { fileURLToPath } from "node:url";
import type { Gpu } from "../src/gpu/device.ts";
import type { Dispatch } from "../src/gpu/dispatch.ts";
import { dispatchWork, Profiler, rates, sumWork } from "../src/gpu/profile.ts";
import { copyKernel, fmaPeakKernel } from "../src/kernels/peak.ts";
import { type LmConfig, parseHfConfig } from "../src/lm/config.ts";
import type { LayerWeights, LmWeights } from "../src/lm/weights.ts";
import { Rng } from "../src/rng.ts";

/** GPT-2 small's config.json (openai-community/gpt2): d 768, 12 layers, 12 heads, vocab 50257. */
export const GPT2_SMALL = {
  architectures: ["GPT2LMHeadModel"],
  model_type: "gpt2",
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_inner: null,
  vocab_size: 50257,
  n_positions: 1024,
  layer_norm_epsilon: 1e-5,
  activation_function: "gelu_new",
  bos_token_id: 50256,
  eos_token_id: 50256,
};

/**
 * A GPT-2 model of `config` with random weights (uniform with GPT-2's initial std 0.02; norms
 * near 1): the shape and work of the real one, not its values.
 */
export function randomGpt2(
  config: Record<string, unknown> = GPT2_SMALL,
  seed = 1,
): { config: LmConfig; weights: LmWeights } {
  const cfg = parseHfConfig(config, "gpt2-small (random weights)");
  const rng = new Rng(seed);
  const a = 0.02 * Math.sqrt(3);
  const rand = (n: number, offset = 0) => {
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = offset + a * (2 * rng.uniform() - 1);
    return v;
  };
  const d = cfg.dModel, f = cfg.dMlp;
  const norm = () => ({ w: rand(d, 1), b: rand(d) });
  const layers: LayerWeights[] = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    layers.push({
      attnNorm: norm(),
      mlpNorm: norm(),
      wq: rand(d * d),
      wk: rand(d * d),
      wv: rand(d * d),
      wo: rand(d * d),
      bq: rand(d),
      bk: rand(d),
      bv: rand(d),
      bo: rand(d),
      wUp: rand(f * d),
      bUp: rand(f),
      wDown: rand(d * f),
      bDown: rand(d),
    });
  }
  const embed = rand(cfg.vocabSize * d);
  return {
    config: cfg,
    weights: {
      embed,
      posEmbed: rand(cfg.maxSeq * d),
      layers,
      finalNorm: norm(),
      unembed: embed,
    },
  };
}

/** FLOPs and bytes of one run of `list`, from each dispatch's `cost` (null where one has none). */
export function forwardWork(
  list: readonly Dispatch[],
): { flops: number | null; bytes: number | null } {
  return sumWork(list.map((d) => dispatchWork(d)));
}

/** The median of `v`. */
export const median = (v: number[]): number =>
  [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

/** `../shared/lm/<sub>` from the project root, or null when absent (a user's fresh clone). */
export function sharedLm(sub: string): string | null {
  const p = fileURLToPath(new URL(`../../shared/lm/${sub}`, import.meta.url));
  try {
    Deno.statSync(p);
    return p;
  } catch {
    return null;
  }
}

/**
 * The adapter's measured limits, as bench/kernels_bench.ts measures them: the FMA rate (the
 * faster of the loop and straight-code FMA kernels, wgsl/peak.wgsl) and a 32 MiB copy's GB/s.
 * `sample()` times both once; benches take the median of samples spread over their run.
 */
export async function peakMeter(
  gpu: Gpu,
): Promise<() => Promise<{ gflops: number; gbps: number }>> {
  const fma = await fmaPeakKernel(gpu, 512, 2048, gpu.buffer("peak out", 512 * 64 * 16));
  const straight = await fmaPeakKernel(
    gpu,
    512 * 32,
    64,
    gpu.buffer("peak out straight", 512 * 32 * 64 * 16),
    "straight",
  );
  const n4 = (32 << 20) / 16;
  const copy = await copyKernel(
    gpu,
    n4,
    gpu.buffer("copy src", n4 * 16),
    gpu.buffer("copy dst", n4 * 16),
  );
  const prof = new Profiler(gpu, 3);
  const list = [fma.dispatch, straight.dispatch, copy.dispatch];
  await prof.run(list);
  return async () => {
    const ms = await prof.run(list);
    const r = list.map((d, i) => rates(dispatchWork(d)!, ms[i]));
    return { gflops: Math.max(r[0].gflops!, r[1].gflops!), gbps: r[2].gbps! };
  };
}
