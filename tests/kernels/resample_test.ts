import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { resampleDispatches, resampleReference } from "../../src/kernels/resample.ts";
import { resamplePlan } from "../../src/sae/resample.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray } from "../helpers/check.ts";

for (const normalizeEnc of [true, false]) {
  Deno.test(`resample kernels match the reference (${normalizeEnc ? "normalised" : "raw"} encoder rows)`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(normalizeEnc ? 1 : 2);
    const m = 37, d = 13, B = 29;
    const host = (n: number) => ({
      p: randArray(rng, n),
      m: randArray(rng, n),
      v: randArray(rng, n, 0, 1),
    });
    const w = { wEnc: host(m * d), bEnc: host(m), wDec: host(m * d) };
    const xc = randArray(rng, B * d);
    xc.fill(0, 5 * d, 6 * d); // a zero row: its latent keeps its weights
    const dead = new Uint32Array(m).map(() => rng.uniform() < 0.4 ? 1 : 0);
    const pairs: [number, number][] = [[3, 7], [10, 5], [36, 0], [0, 28]];
    const up = (name: string, t: { p: Float32Array; m: Float32Array; v: Float32Array }) => ({
      p: gpu.upload(name, t.p),
      m: gpu.upload(`${name} m`, t.m),
      v: gpu.upload(`${name} v`, t.v),
    });
    const g = { wEnc: up("wEnc", w.wEnc), bEnc: up("bEnc", w.bEnc), wDec: up("wDec", w.wDec) };
    const pairsB = gpu.upload("pairs", new Uint32Array(1 + 2 * B).fill(0xdeadbeef));
    gpu.write(pairsB, Uint32Array.from([pairs.length, ...pairs.flat()]));
    run(
      gpu,
      await resampleDispatches(gpu, { m, d, pairs: B, normalizeEnc }, {
        ...g,
        xc: gpu.upload("xc", xc),
        pairs: pairsB,
        dead: gpu.upload("dead", dead),
        scal: gpu.buffer("scal", 4),
      }),
    );
    resampleReference({ m, d, normalizeEnc }, w, xc, pairs, dead);
    for (const n of ["wEnc", "bEnc", "wDec"] as const) {
      for (const part of ["p", "m", "v"] as const) {
        assertClose(await gpu.read(g[n][part]), w[n][part], 1e-5, `${n}.${part}`);
      }
    }
    // The resampled decoder row is the unit input row; the zero row's latent kept its own.
    let q = 0;
    for (let k = 0; k < d; k++) q += w.wDec.p[3 * d + k] ** 2;
    assert.ok(Math.abs(q - 1) < 1e-5);
    assert.notEqual(w.bEnc.p[10], 0, "zero row: b_enc not reset");
    assert.equal(w.bEnc.p[3], 0);
    assert.equal(w.wEnc.m[3 * d], 0);
  });
}

Deno.test("resample plan: dead latents, distinct rows ∝ error^power, seeded by step", () => {
  const lastFired = Uint32Array.from([100, 0, 49, 51, 10, 99]);
  const rowError = [0, 1, 2, 0, 3];
  const plan = resamplePlan({ step: 100, window: 100, lastFired, rowError, power: 2, seed: 5 });
  assert.deepEqual([...plan.dead], [0, 1, 1, 0, 1, 0]); // not fired for more than 50 steps
  assert.deepEqual(plan.pairs.map(([j]) => j), [1, 2, 4]);
  const rows = plan.pairs.map(([, r]) => r);
  assert.deepEqual([...rows].sort(), [1, 2, 4], "the three rows with an error, each once");
  // More dead latents than rows with error: zero-error rows come last, uniformly.
  const all = resamplePlan({
    step: 100,
    window: 10,
    lastFired: new Uint32Array(9),
    rowError,
    power: 1,
    seed: 5,
  });
  assert.equal(all.pairs.length, 5);
  assert.deepEqual(all.pairs.slice(0, 3).map(([, r]) => r).sort(), [1, 2, 4]);
  assert.deepEqual(all.pairs.map(([, r]) => r).sort(), [0, 1, 2, 3, 4]);
  // The first draw's frequencies follow error^power.
  for (const power of [1, 2] as const) {
    const counts = [0, 0, 0];
    for (let seed = 0; seed < 6000; seed++) {
      const p = resamplePlan({
        step: 7,
        window: 2,
        lastFired: new Uint32Array(1),
        rowError: [1, 2, 3],
        power,
        seed,
      });
      counts[p.pairs[0][1]]++;
    }
    const w = [1, 2, 3].map((e) => e ** power), total = w.reduce((a, b) => a + b);
    counts.forEach((c, i) => {
      assert.ok(Math.abs(c / 6000 - w[i] / total) < 0.03, `power ${power}: ${counts}`);
    });
  }
  // The same step and seed give the same plan (a resumed run resamples identically).
  const again = resamplePlan({ step: 100, window: 100, lastFired, rowError, power: 2, seed: 5 });
  assert.deepEqual(again, plan);
});
