import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { dispatchWork, formatProfile, kernelName, Profiler, rates } from "../../src/gpu/profile.ts";
import { gemm, gemmDispatches, type GemmSpec } from "../../src/kernels/gemm/mod.ts";
import { copyKernel, fmaPeakKernel, PEAK_WG } from "../../src/kernels/peak.ts";
import { type CopyDispatch, run } from "../../src/gpu/dispatch.ts";
import { parseTrainArgs } from "../../src/cli/train.ts";
import { DEFAULT_CONFIG, mergeConfig } from "../../src/config.ts";
import { initWeights } from "../../src/sae/model.ts";
import { Session } from "../../src/sae/session.ts";
import { Rng } from "../../src/rng.ts";
import { randArray } from "../helpers/check.ts";

for (const host of [false, true]) {
  Deno.test(`profiler times each dispatch, a big GEMM longer than a tiny one (${host ? "host clock" : "timestamps"})`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(3);
    const make = async (label: string, n: number) => {
      const a = gpu.upload(`${label} a`, randArray(rng, n * n));
      const b = gpu.upload(`${label} b`, randArray(rng, n * n));
      const c = gpu.buffer(`${label} c`, n * n * 4);
      const spec = { label, M: n, N: n, K: n, transA: false, transB: false, epilogue: "none" };
      return await gemm(gpu, spec as Parameters<typeof gemm>[1], { a, b, c });
    };
    // 512³ takes ~30 ms on lavapipe: well above the ~11 ms (±3) a lone submission costs on the
    // host-clock path, so the ordering holds there too (256³, ~4 ms, drowned in that jitter).
    // And a copy into a texture (recorded between passes, stamped by empty passes around it).
    const src = gpu.upload("copy src", randArray(rng, 1 << 20));
    const tex = gpu.device.createTexture({
      size: [1024, 256],
      format: "rgba32float",
      usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
    });
    const copy: CopyDispatch = {
      label: "copy 0",
      copy: [{
        src: { buffer: src, bytesPerRow: 16 * 1024, rowsPerImage: 256 },
        dst: { texture: tex },
        size: [1024, 256],
      }],
    };
    const list = [
      await make("tiny 0", 8),
      await make("big", 512),
      await make("tiny 64", 8),
      copy,
    ];
    // Timestamps forced even on lavapipe: no pass in this test binds a storage texture, so its
    // timestamps are sound here (see the last test of this file).
    const before = Deno.env.get("SAE_CLOCK");
    if (!host) Deno.env.set("SAE_CLOCK", "timestamps");
    const prof = new Profiler(gpu, list.length, { host });
    if (before === undefined) Deno.env.delete("SAE_CLOCK");
    else Deno.env.set("SAE_CLOCK", before);
    assert.equal(prof.method, host || !gpu.hasTimestamps ? "host" : "timestamps");
    await prof.run(list);
    const ms = await prof.run(list);
    assert.equal(ms.length, 4);
    assert.ok(ms.every((t) => t >= 0 && Number.isFinite(t)), ms.join(","));
    assert.ok(ms[1] > ms[0] && ms[1] > ms[2], `big ${ms[1]} vs tiny ${ms[0]}, ${ms[2]}`);
    const totals = prof.totalsInOrder();
    // "tiny 0" and "tiny 64" are chunks of one kernel: reported together.
    assert.deepEqual(totals.map((t) => [t.label, t.calls]), [["tiny", 4], ["big", 2], [
      "copy",
      2,
    ]]);
    const table = formatProfile(totals);
    assert.match(table, /\nbig\s+2\s/);
    assert.match(table, /\ntiny\s+4\s/);
    const shares = [...table.matchAll(/([\d.]+)%/g)].map((m) => Number(m[1]));
    assert.ok(Math.abs(shares.reduce((a, b) => a + b, 0) - 100) < 0.2, table);
    await assert.rejects(() => prof.run([...list, ...list]), /holds 4 dispatches/);
    prof.destroy();
    src.destroy();
    tex.destroy();
  });
}

Deno.test("profiler rates come from each dispatch's cost; a dispatch without one shows '-'", async () => {
  const gpu = await getGpu();
  const n4 = 1 << 16;
  const src = gpu.buffer("rate src", 16 * n4), dst = gpu.buffer("rate dst", 16 * n4);
  const copy = (await copyKernel(gpu, n4, src, dst)).dispatch;
  const list = [copy, { ...copy, label: "uncosted 3", cost: undefined }];
  const prof = new Profiler(gpu, list.length, { host: true });
  await prof.run(list);
  await prof.run(list);
  assert.equal(prof.lastDispatches, list);
  const [c, u] = prof.totalsInOrder();
  assert.deepEqual([c.label, c.calls, c.flops, c.bytes], ["copy", 2, 0, 2 * 32 * n4]);
  // The host clock can read 0 ms (less than an empty submission's jitter): no rate then.
  if (c.ms > 0) {
    assert.equal(c.gflops, 0);
    assert.ok(Math.abs(c.gbps! - c.bytes! / (c.ms / 1e3) / 1e9) <= 1e-9 * c.gbps!);
  } else assert.deepEqual([c.gflops, c.gbps], [null, null]);
  assert.deepEqual([u.label, u.flops, u.bytes, u.gflops, u.gbps], [
    "uncosted",
    null,
    null,
    null,
    null,
  ]);
  const table = formatProfile([c, u]);
  assert.match(table, /^kernel\s+calls\s+total ms\s+mean ms\s+share\s+GFLOP\/s\s+GB\/s\n/);
  assert.match(table, /\nuncosted\s+2\s+[\d.]+\s+[\d.]+\s+[\d.]+%\s+-\s+-\n/);
  const copyRates = c.ms > 0 ? `0\\.00\\s+${c.gbps!.toFixed(2)}` : "-\\s+-";
  assert.match(table, new RegExp(`\\ncopy\\s+2\\s.*%\\s+${copyRates}\\n`));
  prof.destroy();
  gpu.destroyBuffer(src);
  gpu.destroyBuffer(dst);
});

Deno.test("dispatchWork adds the per-active-latent work when the count is known; rates need time", () => {
  const base = { label: "k", copy: [] };
  const cost = { flops: 5, bytes: 7, perActive: { flops: 2, bytes: 3 } };
  assert.deepEqual(dispatchWork({ ...base, cost }, 10), { flops: 25, bytes: 37 });
  assert.equal(dispatchWork({ ...base, cost }), null);
  assert.deepEqual(dispatchWork({ ...base, cost: { flops: 5, bytes: 7 } }), { flops: 5, bytes: 7 });
  assert.equal(dispatchWork(base, 10), null);
  assert.deepEqual(rates({ flops: 2e9, bytes: null }, 500), { gflops: 4, gbps: null });
  assert.deepEqual(rates({ flops: 2e9, bytes: 1e9 }, 0), { gflops: null, gbps: null });
});

// The step's GEMMs and their operand packing take their cost from the GEMM family.
const GEMMS =
  /^(encode|decode|dF|dW_dec|dW_enc|ortho gram|ortho grad|ortho pack W)( pack [AB]| rows)?$/;

for (
  const [variant, sparse] of [["baseline", false], ["paper", false], ["baseline", true]] as const
) {
  Deno.test(`every dispatch of a ${variant}${sparse ? " sparse-latent" : ""} step but the GEMMs carries its cost`, async () => {
    const gpu = await getGpu();
    const cfg = mergeConfig(DEFAULT_CONFIG, {
      variant,
      d_in: 24,
      d_sae: 72,
      batch: 40,
      sparse_min_flops: 0,
      sparse_max_density: sparse ? 1 : 0,
    });
    const session = await Session.create(gpu, cfg, initWeights(24, 72, 1, new Float32Array(24)), 1);
    const prof = new Profiler(gpu, session.dispatchCount, { host: true });
    const x = randArray(new Rng(5), 40 * 24);
    await session.stepProfiled(x, prof);
    const list = prof.lastDispatches;
    assert.equal(list.length, session.dispatchCount);
    const missing = list.filter((d) => !d.cost && !GEMMS.test(kernelName(d.label)));
    assert.deepEqual(missing.map((d) => d.label), []);
    for (const d of list) {
      if (!d.cost) continue;
      const { flops, bytes, perActive } = d.cost;
      assert.ok(
        Number.isFinite(flops) && flops >= 0 && Number.isFinite(bytes) && bytes > 0,
        d.label,
      );
      if (perActive) assert.ok(perActive.flops >= 0 && perActive.bytes > 0, d.label);
    }
    assert.equal(list.some((d) => d.cost?.perActive), sparse);
    // The sparse plan always takes the sparse path here: the dense products did no work, the
    // sparse ones did work that depends on the active latents (unknown to the profiler).
    const totals = new Map(prof.totalsInOrder().map((t) => [t.label, t]));
    if (sparse) {
      for (const k of ["decode", "dW_dec", "dW_enc", "db_enc"]) {
        assert.deepEqual([totals.get(k)!.flops, totals.get(k)!.bytes], [0, 0], k);
      }
      assert.equal(totals.get("decode sparse")!.flops, null);
    }
    assert.ok(totals.get("adamw wEnc")!.bytes! > 0);
    prof.destroy();
  });
}

Deno.test("kernelName drops chunk indices only", () => {
  assert.equal(kernelName("ortho gram 4096"), "ortho gram");
  assert.equal(kernelName("ortho grad 12 pack B"), "ortho grad pack B");
  assert.equal(kernelName("encode pack A"), "encode pack A");
  assert.equal(kernelName("adamw wEnc"), "adamw wEnc");
  assert.equal(kernelName("dW_dec"), "dW_dec");
});

Deno.test("--profile parses N, defaults to 10, refuses nonsense", async () => {
  assert.equal((await parseTrainArgs(["--profile", "3"])).opts.profile, 3);
  assert.equal((await parseTrainArgs(["--profile"])).opts.profile, 10);
  assert.equal((await parseTrainArgs([])).opts.profile, undefined);
  await assert.rejects(() => parseTrainArgs(["--profile", "0"]), /positive whole number/);
});

Deno.test("SAE_CLOCK picks the profiler's clock; lavapipe defaults to the host clock", async () => {
  const gpu = await getGpu();
  const before = Deno.env.get("SAE_CLOCK");
  const lavapipe = /llvmpipe|lavapipe/i.test(gpu.adapterName);
  const ts = gpu.hasTimestamps ? "timestamps" : "host";
  try {
    for (
      const [clock, want] of [["host", "host"], ["timestamps", ts], [
        undefined,
        lavapipe ? "host" : ts,
      ]]
    ) {
      if (clock === undefined) Deno.env.delete("SAE_CLOCK");
      else Deno.env.set("SAE_CLOCK", clock);
      const p = new Profiler(gpu, 1);
      assert.equal(p.method, want, `SAE_CLOCK=${clock}`);
      p.destroy();
    }
  } finally {
    if (before === undefined) Deno.env.delete("SAE_CLOCK");
    else Deno.env.set("SAE_CLOCK", before);
  }
});

Deno.test("profiler times stay believable after a pass has bound storage textures", async () => {
  // Mesa 22.3's lavapipe stamps passes at the wrong instants once any pass has bound a storage
  // texture (the GEMM texture path): the profiler must not report such times.
  const gpu = await getGpu();
  const n = 64;
  const spec: GemmSpec = {
    label: "tex",
    M: n,
    N: n,
    K: n,
    transA: false,
    transB: true,
    epilogue: "none",
  };
  const bufs = {
    a: gpu.buffer("a", n * n * 4),
    b: gpu.buffer("b", n * n * 4),
    c: gpu.buffer("c", n * n * 4),
  };
  run(gpu, await gemmDispatches(gpu, spec, bufs, { path: "texture" }));
  await gpu.sync();
  const fma = await fmaPeakKernel(gpu, 256, 2048, gpu.buffer("fma out", 256 * PEAK_WG * 16));
  const host: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    run(gpu, [fma.dispatch]);
    await gpu.sync();
    host.push(performance.now() - t0);
  }
  const hostMs = host.sort((a, b) => a - b)[1];
  const prof = new Profiler(gpu, 1);
  await prof.run([fma.dispatch]);
  const [ms] = await prof.run([fma.dispatch]);
  // The host time includes one submission's overhead (~11 ms on lavapipe): generous bounds.
  assert.ok(ms > hostMs / 3 && ms < hostMs * 1.5, `profiled ${ms} ms vs host ${hostMs} ms`);
  if (/llvmpipe|lavapipe/i.test(gpu.adapterName)) assert.equal(prof.method, "host");
  prof.destroy();
});
