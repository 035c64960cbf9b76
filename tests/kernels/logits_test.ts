import assert from "node:assert/strict";
import { createGpu, getGpu, type Gpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import {
  crossEntropyDispatches,
  crossEntropyReference,
  klDispatches,
  klReference,
  type LogitsSpec,
  logitStatsDispatches,
  logitStatsReference,
  softcapDispatches,
  softcapReference,
} from "../../src/kernels/logits.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "../helpers/check.ts";

/**
 * Runs soft-capping (when `cap`), the statistics of both logit sets, CE and KL with a mask, and
 * compares each with its reference. The compared logits are the clean ones plus uniform noise of
 * width `noise` (KL ~ noise²/24), or independent of them (0). `minParts`: dispatches each kernel
 * must be split into.
 */
async function check(
  gpu: Gpu,
  spec: LogitsSpec,
  seed: number,
  { cap = 0, minParts = 1, noise = 1.5 } = {},
) {
  const rng = new Rng(seed);
  const { rows, vocab: V } = spec;
  let clean: Float32Array = randArray(rng, rows * V, -12, 12);
  let logits: Float32Array = noise
    ? clean.map((l) => l + noise * (rng.uniform() - 0.5))
    : randArray(rng, rows * V, -12, 12);
  const targets = Uint32Array.from({ length: rows }, () => Math.floor(rng.uniform() * V));
  targets[0] = V - 1;
  const mask = Uint32Array.from({ length: rows }, (_, r) => (r % 5 === 3 ? 0 : 1));
  const bufs = {
    clean: gpu.upload("clean", clean),
    logits: gpu.upload("logits", logits),
    cleanStats: poisoned(gpu, "clean stats", rows * 2),
    stats: poisoned(gpu, "stats", rows * 2),
    targets: gpu.upload("targets", targets),
    mask: gpu.upload("mask", mask),
    ce: poisoned(gpu, "ce", rows),
    ceAll: poisoned(gpu, "ce all", rows),
    kl: poisoned(gpu, "kl", rows),
  };
  const lists = [
    ...(cap
      ? [
        await softcapDispatches(gpu, { ...spec, cap }, { logits: bufs.clean }),
        await softcapDispatches(gpu, { ...spec, cap }, { logits: bufs.logits }),
      ]
      : []),
    await logitStatsDispatches(gpu, spec, { logits: bufs.clean, stats: bufs.cleanStats }),
    await logitStatsDispatches(gpu, spec, { logits: bufs.logits, stats: bufs.stats }),
    await crossEntropyDispatches(gpu, spec, {
      ...bufs,
      logits: bufs.clean,
      stats: bufs.cleanStats,
    }),
    await crossEntropyDispatches(gpu, spec, { ...bufs, mask: undefined, ce: bufs.ceAll }),
    await klDispatches(gpu, spec, bufs),
  ];
  for (const l of lists) assert.ok(l.length >= minParts, `${l[0].label}: ${l.length} parts`);
  run(gpu, lists.flat());
  if (cap) {
    const [gc, gl] = await gpu.readMany([bufs.clean, bufs.logits].map((buf) => ({ buf })));
    assertClose(gc, softcapReference(clean, cap), 1e-6, "softcap clean");
    assertClose(gl, softcapReference(logits, cap), 1e-6, "softcap");
    for (const l of gc) assert.ok(Math.abs(l) <= cap);
    // The later kernels are compared on the capped logits they read (KL is sensitive to the
    // last-bit differences of tanh at small KL).
    clean = gc.slice(0, rows * V);
    logits = gl.slice(0, rows * V);
  }
  const [cs, s, ce, ceAll, kl] = await gpu.readMany(
    [bufs.cleanStats, bufs.stats, bufs.ce, bufs.ceAll, bufs.kl].map((buf) => ({ buf })),
  );
  assertClose(cs, logitStatsReference(spec, clean), 1e-6, "clean stats");
  assertClose(s, logitStatsReference(spec, logits), 1e-6, "stats");
  assertClose(ce, crossEntropyReference(spec, clean, targets, mask), 1e-5, "ce (masked)");
  assertClose(ceAll, crossEntropyReference(spec, logits, targets), 1e-5, "ce (every row)");
  const wantKl = klReference(spec, clean, logits, mask);
  // Relative to each row's KL, tiny ones included (KL 1e-4 at noise 0.05).
  for (let r = 0; r < rows; r++) {
    if (!mask[r]) assert.equal(ce[r] + kl[r], 0, `masked row ${r}`);
    else assertClose([kl[r]], [wantKl[r]], 1e-5, `kl of row ${r}`);
  }
  for (const b of Object.values(bufs)) gpu.destroyBuffer(b);
}

Deno.test("logits: stats, CE and KL over GPT-2's vocabulary (50257) for 2 × 37 tokens", async () => {
  const gpu = await getGpu();
  await check(gpu, { rows: 74, vocab: 50257 }, 1);
  await check(gpu, { rows: 20, vocab: 50257 }, 11, { noise: 0.05 });
  await check(gpu, { rows: 20, vocab: 50257 }, 12, { noise: 0 });
});

Deno.test("logits: Gemma's 256000 vocabulary with final soft-capping at 30", async () => {
  await check(await getGpu(), { rows: 3, vocab: 256000 }, 2, { cap: 30, noise: 0.05 });
});

Deno.test("logits: small vocabulary, soft-capping at 5", async () => {
  await check(await getGpu(), { rows: 37, vocab: 7 }, 3, { cap: 5 });
});

Deno.test("logits: buffers over the storage-binding limit are processed in row ranges", async () => {
  const gpu = await createGpu({ maxStorageBufferBindingSize: 2048 });
  await check(gpu, { rows: 13, vocab: 101 }, 4, { cap: 8, minParts: 4 });
  gpu.destroy();
});
