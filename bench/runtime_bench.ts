/**
 * What the runtime itself costs on the current adapter: `deno bench -A bench/runtime_bench.ts`
 * (also part of `deno task bench`). Before the Deno.bench table it prints
 *   - the time from submitting an empty command buffer to `onSubmittedWorkDone` (median of 15),
 *     and from 100 submissions to one wait: a latency (~11 ms on lavapipe with Deno 2.9.6) that
 *     two steps in flight hide once a step's kernels take longer;
 *   - the cost of one small dispatch within a shared compute pass and in a pass of its own;
 *   - the bandwidth of a 32 MiB copy done by a kernel (wgsl/peak.wgsl's `copy`) and by
 *     `copyBufferToTexture` (how the GEMMs pack operands stored densely: a memcpy on lavapipe).
 * Each is timed on the host clock over repeated submissions (best of 3 after a warm-up), the
 * differences of long and short runs where a fixed latency must cancel.
 */
import { getGpu } from "../src/gpu/device.ts";
import { type CopyDispatch, run } from "../src/gpu/dispatch.ts";
import { copyKernel } from "../src/kernels/peak.ts";

const gpu = await getGpu();
const device = gpu.device;
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

/** Host milliseconds of `go()` then a wait for the queue: best of 3 after a warm-up. */
async function best(go: () => void): Promise<number> {
  go();
  await gpu.sync();
  let ms = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    go();
    await gpu.sync();
    ms = Math.min(ms, performance.now() - t0);
  }
  return ms;
}

// --- Completion latency.
const empty = () => gpu.submit([device.createCommandEncoder().finish()]);
const lat: number[] = [];
for (let i = 0; i < 15; i++) {
  const t0 = performance.now();
  empty();
  await gpu.sync();
  lat.push(performance.now() - t0);
}
const hundred = await best(() => {
  for (let i = 0; i < 100; i++) empty();
});

// --- Dispatch overhead: a one-workgroup kernel, 10 vs 210 times in one submission.
const tiny = await copyKernel(gpu, 64, gpu.buffer("tiny src", 1024), gpu.buffer("tiny dst", 1024));
const onePass = (n: number) => () => run(gpu, Array(n).fill(tiny.dispatch));
const ownPass = (n: number) => () => {
  const enc = device.createCommandEncoder();
  for (let i = 0; i < n; i++) {
    const pass = enc.beginComputePass();
    pass.setPipeline(tiny.dispatch.pipeline);
    pass.setBindGroup(0, tiny.dispatch.bindGroup);
    pass.dispatchWorkgroups(1);
    pass.end();
  }
  gpu.submit([enc.finish()]);
};
const perDispatch = async (mk: (n: number) => () => void) =>
  ((await best(mk(210))) - (await best(mk(10)))) / 200 * 1000;
const sharedUs = await perDispatch(onePass);
const ownUs = await perDispatch(ownPass);

// --- 32 MiB copied by a kernel and into a texture (10 vs 1 in one submission).
const N4 = (32 << 20) / 16;
const src = gpu.buffer("copy src", N4 * 16), dst = gpu.buffer("copy dst", N4 * 16);
const copy = await copyKernel(gpu, N4, src, dst);
const W = 8192, H = N4 / W;
const tex = device.createTexture({
  size: [W, H],
  format: "rgba32float",
  usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
});
const toTex: CopyDispatch = {
  label: "copy to texture",
  copy: [{
    src: { buffer: src, bytesPerRow: 16 * W, rowsPerImage: H },
    dst: { texture: tex },
    size: [W, H],
  }],
};
const gbps = async (item: Parameters<typeof run>[1][number]) => {
  const ms = (await best(() => run(gpu, Array(11).fill(item)))) -
    (await best(() => run(gpu, [item])));
  return 10 * copy.dispatch.cost!.bytes / (ms / 1e3) / 1e9;
};
const kernelGBs = await gbps(copy.dispatch);
const textureGBs = await gbps(toTex);

console.log(`adapter: ${gpu.adapterName}`);
console.log(
  `submit → onSubmittedWorkDone, empty: median ${median(lat).toFixed(2)} ms (min ${
    Math.min(...lat).toFixed(2)
  }); 100 submissions then one wait: ${hundred.toFixed(1)} ms`,
);
console.log(
  `one small dispatch: ${sharedUs.toFixed(0)} µs in a shared pass, ${
    ownUs.toFixed(0)
  } µs in its own`,
);
console.log(
  `32 MiB copy (read + write): kernel ${kernelGBs.toFixed(2)} GB/s, copyBufferToTexture ${
    textureGBs.toFixed(2)
  } GB/s`,
);

Deno.bench({ name: "empty submission → done", n: 10, warmup: 1 }, async () => {
  empty();
  await gpu.sync();
});
Deno.bench({ name: "32 MiB copyBufferToTexture", n: 5, warmup: 1 }, async () => {
  run(gpu, [toTex]);
  await gpu.sync();
});
