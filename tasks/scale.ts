/**
 * Paper-scale and user-scale steps: builds a training session at the given shape on the current
 * adapter, runs a few real steps on synthetic batches and prints seconds per step, the number of
 * dispatches per step (more than the usual ~25 when buffers exceed the storage-binding limit and
 * kernels split over views), GPU memory held, and the logged metrics (finite, or the run stops).
 *
 *   deno task scale --d-in 2304 --d-sae 2304 --batch 2048 --variant paper --steps 3   # paper scale
 *   deno task scale --d-in 2304 --d-sae 16384 --batch 2048 --steps 2                  # user scale
 *   deno task scale --d-in 2304 --d-sae 65536 --batch 2048 --steps 1
 *   deno task scale ... --binding-limit 134217728   # force a binding limit (bytes)
 *
 * Not a test and not a bench: at these sizes one step takes seconds (paper scale) to minutes
 * (d_sae 65536) on a 2-core CPU adapter. Prints one JSON line at the end.
 */
import { Command } from "@commander-js/extra-typings";
import { DEFAULT_CONFIG, mergeConfig } from "../src/config.ts";
import { createGpu } from "../src/gpu/device.ts";
import { SyntheticSource } from "../src/data/synthetic.ts";
import { initWeights, rowMean } from "../src/sae/model.ts";
import { isBad } from "../src/kernels/health.ts";
import { Session } from "../src/sae/session.ts";

const opts = new Command("scale")
  .option("--d-in <n>", "d_in", "2304")
  .option("--d-sae <n>", "d_sae", "16384")
  .option("--batch <n>", "batch rows", "2048")
  .option("--variant <v>", "baseline or paper", "baseline")
  .option("--steps <n>", "steps to time", "2")
  .option("--warmup <n>", "untimed steps first", "1")
  .option("--binding-limit <bytes>", "force a smaller storage-binding limit")
  .parse(Deno.args, { from: "user" })
  .opts();

const [dIn, dSae, batch, steps] = [opts.dIn, opts.dSae, opts.batch, opts.steps].map(Number);
const variant = opts.variant as "baseline" | "paper";
const gpu = await createGpu({
  announce: true,
  maxStorageBufferBindingSize: opts.bindingLimit ? Number(opts.bindingLimit) : undefined,
});
const cfg = mergeConfig(DEFAULT_CONFIG, {
  variant,
  d_in: dIn,
  d_sae: dSae,
  batch,
  // The paper's mechanisms from the first step (no recon-only phase), so the timed steps run all.
  recon_only_steps: 0,
});
const src = new SyntheticSource(cfg.synthetic, dIn);
const x = new Float32Array(batch * dIn);
await src.nextBatch(x);
const t0 = performance.now();
const w = initWeights(dIn, dSae, cfg.seed, rowMean(x, dIn));
const dispatchesBefore = gpu.counters.bindGroups;
const session = await Session.create(gpu, cfg, w, 1);
const setupS = (performance.now() - t0) / 1000;
const bindGroups = gpu.counters.bindGroups - dispatchesBefore;
const gib = (n: number) => (n / 2 ** 30).toFixed(2);
let held = 0;
for (const p of Object.values(session.bufs.params)) held += p.size * 16;
held += 2 * batch * dSae * 4;
console.log(
  `${variant} B=${batch} d_in=${dIn} d_sae=${dSae}: setup ${setupS.toFixed(1)} s, ` +
    `~${bindGroups} bind groups (dispatches + uniforms), params+moments+grads+latents ` +
    `${gib(held)} GiB, binding limit ${gib(gpu.maxBinding)} GiB`,
);
for (let i = 0; i < Number(opts.warmup); i++) await session.step(x);
await session.sync();
const times: number[] = [];
for (let i = 0; i < steps; i++) {
  await src.nextBatch(x);
  const t = performance.now();
  await session.step(x);
  await session.sync();
  times.push((performance.now() - t) / 1000);
  console.log(`timed step ${i + 1}: ${times.at(-1)!.toFixed(2)} s`);
}
const { metrics, health } = await session.readMetrics();
const flops = 6 * batch * dIn * dSae + (variant === "paper" ? 4 * dSae * dSae * dIn : 0);
const sPerStep = times.reduce((a, b) => a + b, 0) / times.length;
console.log(
  `mean ${sPerStep.toFixed(2)} s/step (${(flops / sPerStep / 1e9).toFixed(1)} GFLOP/s of GEMM ` +
    `work), loss ${metrics.loss.toFixed(4)}, L0 ${metrics.l0.toFixed(1)}, EV ` +
    `${metrics.explained_variance.toFixed(3)}, health ${isBad(health) ? "BAD" : "ok"}`,
);
console.log(JSON.stringify({
  adapter: gpu.adapterName,
  variant,
  batch,
  d_in: dIn,
  d_sae: dSae,
  binding_limit: gpu.maxBinding,
  setup_s: setupS,
  step_s: times,
  metrics,
  healthy: !isBad(health),
}));
if (isBad(health)) Deno.exit(1);
