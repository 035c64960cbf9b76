import { DEFAULT_CONFIG, mergeConfig } from "./src/config.ts";
import { getGpu } from "./src/gpu/device.ts";
import { initWeights } from "./src/sae/model.ts";
import { Session } from "./src/sae/session.ts";
import { formatProfile, Profiler } from "./src/gpu/profile.ts";
import { densityBias } from "./bench/peer.ts";
const [B, d, m] = [1024, 512, 4096];
const cfg = mergeConfig(DEFAULT_CONFIG, { batch: B, d_in: d, d_sae: m, lr: 1e-9 });
const gpu = await getGpu();
const x = new Float32Array(B * d).map((_, i) => Math.sin(i));
const w = initWeights(d, m, 1, new Float32Array(d));
w.bEnc = densityBias(x, w.wEnc, B, d, m, Number(Deno.args[0] ?? 0.005));
const s = await Session.create(gpu, cfg, w, 1);
for (let i = 0; i < 2; i++) await s.step(x);
await s.sync();
const prof = new Profiler(gpu, s.dispatchCount, { host: true });
for (let i = 0; i < 3; i++) await s.stepProfiled(x, prof);
console.log(
  formatProfile(prof.totalsInOrder().map((k) => ({ ...k, ms: k.ms / 3, calls: k.calls / 3 }))),
);
const t0 = performance.now();
for (let i = 0; i < 6; i++) await s.step(x);
await s.sync();
console.log("pipelined ms/step", ((performance.now() - t0) / 6).toFixed(1));
