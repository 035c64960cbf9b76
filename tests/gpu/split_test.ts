/**
 * Buffers over the storage-binding limit: kernels split their dispatches over views. A device
 * whose binding limit is forced to a few KiB (GpuOptions.maxStorageBufferBindingSize) makes every
 * weight and latent buffer of a small SAE "too large", so every split path runs; Gpu.bindGroup
 * throws if any kernel still binds more than the limit.
 */
import assert from "node:assert/strict";
import { DEFAULT_CONFIG, type TrainConfig } from "../../src/config.ts";
import { createGpu, getGpu, type Gpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { ranges, rowRanges, view } from "../../src/gpu/split.ts";
import { gemmDispatches, gemmReference, type GemmSpec } from "../../src/kernels/gemm/mod.ts";
import { initWeights, PARAM_NAMES, sparseEnabled } from "../../src/sae/model.ts";
import { Session } from "../../src/sae/session.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";

const LIMIT = 2048; // bytes: 500 f32 per view after alignment slack

let tinyGpu: Gpu | null = null;
async function tiny(): Promise<Gpu> {
  tinyGpu ??= await createGpu({ maxStorageBufferBindingSize: LIMIT });
  return tinyGpu;
}

Deno.test("ranges and rowRanges cover [0, n) in aligned pieces that fit", async () => {
  assert.deepEqual(ranges(10, 4), [[0, 4], [4, 8], [8, 10]]);
  assert.deepEqual(ranges(10, 7, 4), [[0, 4], [4, 8], [8, 10]]);
  const gpu = await tiny();
  assert.deepEqual(rowRanges(gpu, 3, 100), [[0, 3]]); // 1200 B fit whole
  const parts = rowRanges(gpu, 50, 37);
  assert.ok(parts.length > 1);
  assert.equal(parts[0][0], 0);
  assert.equal(parts.at(-1)![1], 50);
  for (const [a, b] of parts) assert.ok((b - a) * 37 * 4 <= LIMIT);
  assert.throws(() => rowRanges(gpu, 4, 1000), /does not fit/);
  // A view's binding starts aligned, ends padded, and says where the data starts inside it.
  const buf = gpu.buffer("v", 4000);
  const v = view(gpu, buf, 13, 100);
  assert.equal(v.binding.offset! % gpu.offsetAlign, 0);
  assert.equal(v.binding.offset! / 4 + v.off, 13);
  assert.ok(v.binding.size! >= (v.off + 100) * 4 && v.binding.size! % 16 === 0);
  gpu.destroyBuffer(buf);
});

type Case = Omit<GemmSpec, "label">;

const CASES: Case[] = [
  // encode (NT, W rows split, C column blocks) with bias+ReLU and with thresholds
  { M: 29, N: 61, K: 13, transA: false, transB: true, epilogue: "bias_relu" },
  { M: 24, N: 84, K: 16, transA: false, transB: true, epilogue: "bias_threshold" },
  // dF (NT, mask laid out like C)
  { M: 24, N: 84, K: 16, transA: false, transB: true, epilogue: "relu_grad" },
  // decode (NN, split along K: bias on the first part, the rest accumulate)
  { M: 29, N: 13, K: 61, transA: false, transB: false, epilogue: "bias" },
  { M: 24, N: 16, K: 84, transA: false, transB: false, epilogue: "bias" },
  // dW (TN, split along M and K)
  { M: 61, N: 13, K: 29, transA: true, transB: false, epilogue: "none" },
  { M: 84, N: 16, K: 24, transA: true, transB: false, epilogue: "none" },
  // ortho grad (NN accumulate) and ortho gram (NT, global row/column indices)
  { M: 20, N: 16, K: 84, transA: false, transB: false, epilogue: "accumulate" },
  { M: 20, N: 84, K: 16, transA: false, transB: true, epilogue: "ortho_coef", row0: 40 },
];

for (const c of CASES) {
  const name = `${c.transA ? "T" : "N"}${c.transB ? "T" : "N"} ${c.epilogue} ${c.M}x${c.N}x${c.K}`;
  Deno.test(`gemm split over views matches the reference: ${name}`, async () => {
    const gpu = await tiny();
    const rng = new Rng(c.M * 1000 + c.N + c.K);
    const spec: GemmSpec = { label: `split ${name}`, ...c };
    const a = randArray(rng, c.M * c.K, -1, 1);
    const b = randArray(rng, c.K * c.N, -1, 1);
    const ortho = c.epilogue === "ortho_coef";
    const eLen = c.epilogue === "relu_grad" ? c.M * c.N : ortho ? 128 : c.N;
    const e = randArray(rng, eLen, -1, 1);
    const s = ortho
      ? new Float32Array([0.7, 0.05])
      : c.epilogue === "bias_threshold"
      ? randArray(rng, c.N, -0.2, 0.5)
      : new Float32Array([0.03]);
    const cIn = c.epilogue === "accumulate" ? randArray(rng, c.M * c.N, -1, 1) : undefined;
    const bufs = {
      a: gpu.upload("a", a),
      b: gpu.upload("b", b),
      c: cIn ? gpu.upload("c", cIn) : poisoned(gpu, "c", c.M * c.N),
      e: gpu.upload("e", e),
      s: gpu.upload("s", s),
    };
    const ds = await gemmDispatches(gpu, spec, bufs);
    assert.ok(ds.length > 1, `expected a split, got ${ds.length} dispatch`);
    run(gpu, ds);
    const got = await gpu.read(bufs.c, c.M * c.N * 4);
    assertClose(got, gemmReference(spec, a, b, e, s, cIn), 1e-5, name);
    for (const buf of Object.values(bufs)) gpu.destroyBuffer(buf);
  });
}

function cfgOf(over: Partial<TrainConfig>): TrainConfig {
  return {
    ...DEFAULT_CONFIG,
    d_in: 16,
    d_sae: 84,
    batch: 24,
    lr: 1e-2,
    warmup_steps: 2,
    l1: 0.05,
    ...over,
  };
}

async function threeSteps(gpu: Gpu, cfg: TrainConfig) {
  const rng = new Rng(5);
  const w = initWeights(cfg.d_in, cfg.d_sae, 3, randArray(rng, cfg.d_in, -0.2, 0.2));
  w.bEnc = randArray(rng, cfg.d_sae, -0.1, 0.1);
  const before = gpu.counters.bindGroups;
  const session = await Session.create(gpu, cfg, w, 1);
  const bindGroups = gpu.counters.bindGroups - before;
  const c0 = { ...gpu.counters };
  for (let i = 0; i < 3; i++) await session.step(randArray(rng, cfg.batch * cfg.d_in, -1, 1));
  await session.sync();
  // The split step, like the whole one, creates nothing and reads nothing back.
  for (const k of ["pipelines", "bindGroups", "readbacks", "buffersCreated"] as const) {
    assert.equal(gpu.counters[k], c0[k], `${k} changed during the steps`);
  }
  return {
    bindGroups,
    weights: await session.readWeights(),
    state: await session.snapshot(),
    metrics: (await session.readMetrics()).metrics,
  };
}

const STEP_CASES: [string, Partial<TrainConfig>][] = [
  ["baseline", { variant: "baseline" }],
  ["baseline, awkward sizes", { variant: "baseline", d_in: 13, d_sae: 61, batch: 29 }],
  ["paper method, every mechanism", {
    variant: "paper",
    recon_only_steps: 1,
    lambda_ortho: 0.1,
    importance_lr: 0.5,
    tau_base: 0.05,
  }],
];

for (const [name, over] of STEP_CASES) {
  Deno.test(`a step over split buffers matches the unsplit step (${name})`, async () => {
    const cfg = cfgOf(over);
    const whole = await threeSteps(await getGpu(), cfg);
    const split = await threeSteps(await tiny(), cfg);
    assert.ok(
      split.bindGroups > whole.bindGroups + 10,
      `${split.bindGroups} vs ${whole.bindGroups}`,
    );
    for (const n of PARAM_NAMES) {
      assertClose(split.weights[n], whole.weights[n], 1e-5, n);
      assertClose(split.state.adamM[n], whole.state.adamM[n], 1e-4, `adam m ${n}`);
      assertClose(split.state.adamV[n], whole.state.adamV[n], 1e-4, `adam v ${n}`);
    }
    for (const [k, v] of Object.entries(whole.state.extra)) {
      assertClose(split.state.extra[k], v, 1e-5, k);
    }
    assert.deepEqual(split.state.lastFired, whole.state.lastFired);
    for (const [k, v] of Object.entries(whole.metrics)) {
      assertClose(
        new Float32Array([split.metrics[k as keyof typeof whole.metrics]]),
        new Float32Array([v]),
        1e-5,
        k,
      );
    }
  });
}

Deno.test("sparse latents asked for where the weights exceed a binding: the step builds, dense", async () => {
  // The sparse kernels bind f and the weights whole: where the weights exceed the limit (here
  // W [84, 32] 10.5 KiB, f [8, 84] 2.6 KiB, a 4 KiB limit) the step must still build (d_sae
  // 16384 at d_in 2304 once failed to) and train exactly as the dense split step does.
  const asked = cfgOf({ variant: "baseline", sparse_min_flops: 0, batch: 8, d_in: 32 });
  const gpu = await createGpu({ maxStorageBufferBindingSize: 4096 });
  assert.ok(asked.batch * asked.d_sae * 4 <= gpu.maxBinding, "f fits one binding");
  assert.equal(sparseEnabled(gpu, asked), false);
  assert.equal(sparseEnabled(await getGpu(), asked), true, "sparse where everything fits");
  const split = await threeSteps(gpu, asked);
  const dense = await threeSteps(gpu, { ...asked, sparse_max_density: 0 });
  for (const n of PARAM_NAMES) assert.deepEqual(split.weights[n], dense.weights[n], n);
});

Deno.test("batch × d_in over the binding limit is a one-line error naming the fix", async () => {
  const gpu = await tiny();
  const cfg = cfgOf({ d_in: 32, batch: 24 }); // 3 KiB of x
  const w = initWeights(cfg.d_in, cfg.d_sae, 1, new Float32Array(cfg.d_in));
  await assert.rejects(
    () => Session.create(gpu, cfg, w, 1),
    /exceeds .*binding limit.*lower batch/,
  );
});
