import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import type { GemmPath } from "../../src/kernels/gemm/mod.ts";
import { run } from "../../src/gpu/dispatch.ts";
import {
  allocPaper,
  gradMaskKernel,
  initialPaperStats,
  orthoGradDispatches,
  orthoGradReference,
  orthoPenaltyReference,
  type PaperSpec,
  paperStatsKernel,
  paperStatsReference,
} from "../../src/kernels/paper.ts";
import { packState } from "../../src/kernels/common.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, randArray } from "../helpers/check.ts";

function spec(over: Partial<PaperSpec> = {}): PaperSpec {
  return {
    batch: 37,
    dSae: 301,
    emaDecay: 0.9,
    tauBase: 0.3,
    tauBeta: 40, // large so the variance term visibly moves the thresholds
    tauSign: "decrease",
    adaptive: true,
    lambdaOrtho: 0.1,
    orthoEps: 1e-6,
    orthoImportance: true,
    orthoMean: false,
    importanceLr: 0.5,
    ...over,
  };
}

function state(phase: number, l1 = 0) {
  return packState({ step: 1, lr: 0, b1t: 1, b2t: 1, l1_coef: l1, main_phase: phase });
}

Deno.test("grad_mask: importance norms of the raw gradient and the masked dL/dpre", async () => {
  const gpu = await getGpu();
  const rng = new Rng(31);
  const s = spec();
  const B = s.batch, m = s.dSae, l1 = 0.07;
  const raw = randArray(rng, B * m);
  const f = randArray(rng, B * m, -1, 1).map((v) => Math.max(v, 0));
  const pb = allocPaper(gpu, m);
  const dpre = gpu.upload("dpre", raw);
  gpu.write(pb.gnorm, new Float32Array(m).fill(NaN));
  run(gpu, [
    ...await gradMaskKernel(gpu, s, pb, {
      dpre,
      f: gpu.upload("f", f),
      state: gpu.upload("st", state(1, l1)),
    }),
  ]);
  const [gd, gn] = await gpu.readMany([{ buf: dpre }, { buf: pb.gnorm }]);
  const wantD = raw.map((v, i) => (f[i] > 0 ? v + l1 : 0));
  const wantN = new Float32Array(m);
  for (let i = 0; i < m; i++) {
    let ss = 0;
    for (let b = 0; b < B; b++) ss += raw[b * m + i] ** 2;
    wantN[i] = Math.sqrt(ss);
  }
  assertClose(gd, wantD, 1e-6, "dpre");
  assertClose(gn, wantN, 1e-5, "gnorm");
});

for (
  const over of [{}, {
    tauSign: "increase" as const,
    orthoImportance: false,
    orthoMean: true,
    importanceLr: 0.8,
  }]
) {
  Deno.test(`paper stats follow the reference over several steps ${JSON.stringify(over)}`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(32);
    const s = spec(over);
    const m = s.dSae;
    const pb = allocPaper(gpu, m);
    const fstats = gpu.buffer("fstats", m * 8);
    const ref = initialPaperStats(m);
    for (let step = 0; step < 6; step++) {
      const phase = step < 2 ? 0 : 1;
      const fires = new Float32Array(m).map(() => rng.int(s.batch + 1));
      const gnorm = randArray(rng, m, 0, 2);
      const fs = new Float32Array(2 * m);
      fires.forEach((v, i) => (fs[2 * i] = v));
      gpu.write(fstats, fs);
      gpu.write(pb.gnorm, gnorm);
      run(gpu, [
        await paperStatsKernel(gpu, s, pb, { fstats, state: gpu.upload("st", state(phase)) }),
      ]);
      paperStatsReference(s, ref, fires, gnorm, phase);
      const [freq, fvar, tau, imp, weight, lrs, ps] = await gpu.readMany(
        [pb.freq, pb.fvar, pb.tau, pb.imp, pb.weight, pb.lrScale, pb.pscal].map((buf) => ({ buf })),
      );
      assertClose(freq, ref.freq, 1e-5, `freq @${step}`);
      assertClose(fvar, ref.fvar, 1e-4, `var @${step}`);
      assertClose(tau, ref.tau, 1e-5, `tau @${step}`);
      assertClose(imp, ref.imp, 1e-5, `importance @${step}`);
      assertClose(weight, ref.weight, 1e-5, `weight @${step}`);
      assertClose(lrs, ref.lrScale, 1e-5, `lr scale @${step}`);
      assertClose(
        [ps[0], ps[2], ps[3]],
        [ref.orthoScale, ref.maxFreq, ref.maxImp],
        1e-5,
        "scalars",
      );
      if (phase === 0 && Math.max(...tau) !== 0) throw new Error("thresholds active in warmup");
    }
    // Thresholds moved with the variance, in the configured direction.
    const tau = await gpu.read(pb.tau);
    const moved = tau.filter((t) => (s.tauSign === "increase" ? t > s.tauBase : t < s.tauBase));
    if (moved.length < m / 2) throw new Error(`only ${moved.length} thresholds moved`);
  });
}

Deno.test("ortho gradient: reference matches finite differences of the penalty with α held fixed", () => {
  const rng = new Rng(33);
  const m = 6, d = 4, lambda = 0.3, eps = 1e-6;
  const w = randArray(rng, m * d);
  const weight = randArray(rng, m, 0.1, 1);
  const norm = 0.8;
  const g = orthoGradReference(w, weight, 4 * lambda / norm, eps, m, d);
  const w0 = w.slice();
  for (let i = 0; i < m * d; i++) {
    const h = 1e-3;
    const up = w.slice(), down = w.slice();
    up[i] += h;
    down[i] -= h;
    const fd = (orthoPenaltyReference(up, w0, weight, norm, lambda, eps, m, d) -
      orthoPenaltyReference(down, w0, weight, norm, lambda, eps, m, d)) / (up[i] - down[i]);
    if (Math.abs(fd - g[i]) > 1e-3 * Math.max(1, Math.abs(fd))) {
      throw new Error(`[${i}]: analytic ${g[i]}, finite difference ${fd}`);
    }
  }
});

const orthoCases: [number, number, GemmPath | undefined][] = [
  [150, 36, undefined],
  [70, 13, undefined],
  [256, 20, undefined],
  // The packed paths (CPU adapters), with W_dec packed once for all blocks: 4 blocks, the last of
  // 8 rows.
  [200, 36, "texture"],
  [200, 36, "bcast"],
];
for (const [m, d, path] of orthoCases) {
  Deno.test(`ortho gradient on the GPU (chunks of 64 rows, m=${m}, d=${d}${path ? `, ${path} path` : ""}) matches the materialised reference`, async () => {
    const gpu = await getGpu();
    const rng = new Rng(34);
    const w = randArray(rng, m * d);
    const weight = randArray(rng, m, 0, 1);
    const g0 = randArray(rng, m * d);
    const scale = 0.37, eps = 1e-3;
    const b = {
      wDec: gpu.upload("w", w),
      gDec: gpu.upload("g", g0),
      weight: gpu.upload("weight", weight),
      pscal: gpu.upload("pscal", new Float32Array([scale, eps, 0, 0])),
    };
    const ds = await orthoGradDispatches(gpu, m, d, b, 64, path ? { path } : {});
    // Blocks I ≤ J: one Gram GEMM each, one product with W on the diagonal and two off it.
    const c = Math.ceil(m / 64);
    // (On the packed paths: "... pack A/B" dispatches per GEMM, "ortho pack W ..." once.)
    const products = ds.filter((x) => !/ pack [AB]$|^ortho pack W/.test(x.label)).length;
    if (products !== c * (c + 1) / 2 + c * c) throw new Error(`${products} products`);
    if (path) {
      // W_dec's blocks come packed: only the coefficient blocks are packed per GEMM (as A of the
      // products with W), never a W operand.
      const perGemm = ds.filter((x) => / pack [AB]$/.test(x.label)).map((x) => x.label);
      assert.deepEqual(perGemm.filter((l) => !/^ortho grad \d+ pack A$/.test(l)), [], "W repacked");
      assert.equal(perGemm.length, c * c, "one coefficient pack per product with W");
      assert.ok(ds.some((x) => x.label.startsWith("ortho pack W")), "W packed once");
    }
    run(gpu, ds);
    const got = await gpu.read(b.gDec);
    const want = orthoGradReference(w, weight, scale, eps, m, d).map((v, i) => v + g0[i]);
    assertClose(got, want, 1e-5, "dW_dec + ortho");
  });
}
