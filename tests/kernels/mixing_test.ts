import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import {
  advanceDispatches,
  gatherDispatches,
  gatherReference,
  MixingCounters,
  MixingReference,
  mixSlot,
  scatterDispatches,
  scatterReference,
} from "../../src/kernels/mixing.ts";
import { Rng } from "../../src/rng.ts";
import { poisoned, randArray } from "../helpers/check.ts";

Deno.test("mixSlot is a permutation of [0, N) for each round, a different one per round and seed", () => {
  for (const n of [2, 6, 254, 762, 1030]) {
    const spec = { rows: n, dim: 1, seed: 7 };
    const perms = [0, 1, 2].map((r) => Array.from({ length: n }, (_, p) => mixSlot(spec, r, p)));
    for (const perm of perms) assert.deepEqual([...perm].sort((a, b) => a - b), [...perm.keys()]);
    if (n < 100) continue;
    const other = Array.from({ length: n }, (_, p) => mixSlot({ ...spec, seed: 8 }, 0, p));
    for (const [a, b] of [[perms[0], perms[1]], [perms[1], perms[2]], [perms[0], other]]) {
      const same = a.filter((v, i) => v === b[i]).length;
      assert.ok(same < n / 20, `n ${n}: ${same} equal positions`);
    }
    // The served half is a random half: about half of the first half's slots are below N/2.
    const low = perms[0].slice(0, n / 2).filter((s) => s < n / 2).length;
    assert.ok(Math.abs(low - n / 4) < 0.15 * n, `n ${n}: ${low} low slots of ${n / 2}`);
  }
});

Deno.test("gather: both parts equal the reference at any serve position", async () => {
  const gpu = await getGpu();
  const rng = new Rng(3);
  for (const [n, dim, rows] of [[762, 36, 37], [254, 130, 100], [6, 5, 3]]) {
    const spec = { rows: n, dim, seed: 1234567 };
    const data = randArray(rng, n * dim, -2, 2);
    const buf = gpu.upload("mix buf", data);
    for (const pos of [0, n / 2 - rows, n / 2 - 1, Math.floor(rng.uniform() * n / 2)]) {
      const c = MixingCounters.from(n, [5, pos, 6, 0]);
      const st = gpu.upload("mix st", c.words());
      for (const part of [0, 1] as const) {
        const x = poisoned(gpu, "x", rows * dim);
        run(gpu, await gatherDispatches(gpu, spec, { rows, part }, { buf, st, x }));
        const want = new Float32Array(rows * dim).fill(NaN);
        gatherReference(spec, data, c, { rows, part }, want);
        assert.deepEqual(await gpu.read(x), want, `N ${n} d ${dim} rows ${rows} pos ${pos}`);
        gpu.destroyBuffer(x);
      }
      gpu.destroyBuffer(st);
    }
    gpu.destroyBuffer(buf);
  }
});

Deno.test("scatter: the hook's rows without BOS land in the fill round's slots as the reference puts them", async () => {
  const gpu = await getGpu();
  const rng = new Rng(4);
  for (const [contexts, seq, dim, fillRound] of [[3, 17, 36, 0], [2, 5, 70, 3], [5, 2, 3, 1]]) {
    const per = contexts * (seq - 1);
    const n = 2 * per * 3;
    const spec = { rows: n, dim, seed: 99 };
    const data = randArray(rng, n * dim, -2, 2);
    const act = randArray(rng, contexts * seq * dim, -2, 2);
    const c = MixingCounters.from(n, [2, 7, fillRound, per]);
    const bufs = {
      buf: gpu.upload("mix buf", data),
      st: gpu.upload("mix st", c.words()),
      act: gpu.upload("act", act),
    };
    run(gpu, await scatterDispatches(gpu, spec, { contexts, seq }, bufs));
    const want = data.slice();
    scatterReference(spec, want, c, { contexts, seq }, act);
    assert.deepEqual(
      await gpu.read(bufs.buf),
      want,
      `${contexts}x${seq}x${dim} round ${fillRound}`,
    );
    // Exactly `per` rows changed, and no BOS row (position 0) is among them.
    let changed = 0;
    for (let s = 0; s < n; s++) if (want[s * dim] !== data[s * dim]) changed++;
    assert.equal(changed, per);
    for (const b of Object.values(bufs)) gpu.destroyBuffer(b);
  }
});

Deno.test("advance: the device's counters follow MixingCounters across round boundaries", async () => {
  const gpu = await getGpu();
  const n = 20, spec = { rows: n, dim: 1, seed: 1 };
  const host = new MixingCounters(n);
  const st = gpu.upload("mix st", host.words());
  for (const [serve, fill] of [[0, 5], [0, 15], [0, 10], [3, 0], [7, 0], [4, 0], [0, 10], [9, 0]]) {
    run(gpu, await advanceDispatches(gpu, spec, { serve, fill }, { st }));
    host.advance(serve, fill);
    assert.deepEqual(
      await gpu.readU32(st),
      host.words(),
      `after +${serve} served, +${fill} filled`,
    );
  }
  assert.deepEqual([...host.words()], [2, 3, 3, 0]);
  gpu.destroyBuffer(st);
});

Deno.test("the mixing reference serves every written row once, mixing each fill with older rows", () => {
  const contexts = 2, seq = 9, dim = 1, per = contexts * (seq - 1);
  const n = 4 * per;
  let next = 0;
  // Each row holds its own number; position 0 (BOS) holds -1 and must never be served.
  const mix = new MixingReference({ rows: n, dim, seed: 5 }, { contexts, seq }, () => {
    const a = new Float32Array(contexts * seq);
    for (let i = 0; i < a.length; i++) a[i] = i % seq === 0 ? -1 : next++;
    return a;
  });
  const served: number[] = [];
  for (let b = 0; b < 40; b++) served.push(...mix.take(7));
  assert.ok(served.every((v) => v >= 0));
  assert.equal(new Set(served).size, served.length, "a row was served twice");
  // One serving round (n/2 rows) late in the run mixes rows of at least three fill rounds.
  const fillOf = (v: number) => (v < n ? 0 : 1 + Math.floor((v - n) / (n / 2)));
  const round = served.slice(200, 200 + n / 2).map(fillOf);
  assert.ok(new Set(round).size >= 3, round.join(","));
  // Served in a random order, not the order written.
  const ascending = served.filter((v, i) => i > 0 && v > served[i - 1]).length;
  assert.ok(ascending < 0.7 * served.length, `${ascending} of ${served.length} ascending`);
});
