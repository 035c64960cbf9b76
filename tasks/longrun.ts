/**
 * Long-run memory check (docs/reliability.md, item 6): trains a tiny problem for 20k steps and
 * prints the process heap, RSS and the GPU's live buffer count every 2k steps, so that growth
 * shows. Not a test: it takes about 2.5 minutes on the 2-core CPU adapter.
 *
 *   deno run -A --v8-flags=--expose-gc tasks/longrun.ts [steps=20000] [every=2000]
 */
import { DEFAULT_CONFIG, mergeConfig } from "../src/config.ts";
import { createGpu } from "../src/gpu/device.ts";
import { train } from "../src/sae/trainer.ts";

const steps = Number(Deno.args[0] ?? 20000);
const every = Number(Deno.args[1] ?? 2000);
const cfg = mergeConfig(DEFAULT_CONFIG, {
  d_in: 16,
  d_sae: 32,
  batch: 32,
  steps,
  log_every: 100,
  checkpoint_every: 1000,
});
const gpu = await createGpu();
const out = await Deno.makeTempDir({ prefix: "sae-longrun-" });
const gc = (globalThis as { gc?: () => void }).gc;
const mib = (n: number) => (n / 2 ** 20).toFixed(1);
console.log(`${steps} steps, d_in 16, d_sae 32, batch 32, log every 100, checkpoint every 1000`);
console.log(`gc before each sample: ${gc ? "yes" : "no (run with --v8-flags=--expose-gc)"}`);
console.log("| step | heapUsed MiB | RSS MiB | live GPU buffers | buffers created | readbacks |");
console.log("| ---: | ---: | ---: | ---: | ---: | ---: |");
const t0 = performance.now();
await train(cfg, {
  outDir: `${out}/run`,
  resume: false,
  overwrite: false,
  progress: false,
  report: false,
  gpu,
  onStep: (step) => {
    if (step % every !== 0) return;
    gc?.();
    const m = Deno.memoryUsage();
    const c = gpu.counters;
    console.log(
      `| ${step} | ${mib(m.heapUsed)} | ${mib(m.rss)} | ${gpu.liveBuffers} | ` +
        `${c.buffersCreated} | ${c.readbacks} |`,
    );
  },
});
console.log(`wall time ${((performance.now() - t0) / 1000).toFixed(0)} s`);
await Deno.remove(out, { recursive: true });
