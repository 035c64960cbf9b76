import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { formatProfile, kernelName, Profiler } from "../../src/gpu/profile.ts";
import { gemm, gemmDispatches, type GemmSpec } from "../../src/kernels/gemm/mod.ts";
import { fmaPeakKernel, PEAK_WG } from "../../src/kernels/peak.ts";
import { type CopyDispatch, run } from "../../src/gpu/dispatch.ts";
import { parseTrainArgs } from "../../src/cli/train.ts";
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
