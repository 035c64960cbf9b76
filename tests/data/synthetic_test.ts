import assert from "node:assert/strict";
import { DEFAULT_SYNTHETIC, type SyntheticConfig } from "../../src/config.ts";
import { type BatchTruth, FeatureKind, SyntheticSource } from "../../src/data/synthetic.ts";
import { UserError } from "../../src/errors.ts";

const D = 64;
const cfg = (over: Partial<SyntheticConfig> = {}): SyntheticConfig => ({
  ...DEFAULT_SYNTHETIC,
  ...over,
});

/** Exact equality of two arrays of batches, failing fast with the first difference. */
function assertSame(a: ArrayLike<number>[], b: ArrayLike<number>[], what: string): void {
  assert.equal(a.length, b.length, `${what}: batch count`);
  a.forEach((x, k) => {
    assert.equal(x.length, b[k].length, `${what}: batch ${k} length`);
    for (let i = 0; i < x.length; i++) {
      if (!Object.is(x[i], b[k][i])) assert.fail(`${what}: batch ${k}, first difference at ${i}`);
    }
  });
}

function differs(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return true;
  return a.length !== b.length;
}

async function batches(src: SyntheticSource, rows: number, n: number): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    const x = new Float32Array(rows * src.dIn);
    await src.nextBatch(x);
    out.push(x);
  }
  return out;
}

/** One large sample with truth, shared by the statistical tests. */
const STAT_ROWS = 131072;
let statCache: { src: SyntheticSource; x: Float32Array; t: BatchTruth } | undefined;
async function statSample() {
  if (!statCache) {
    const src = new SyntheticSource(cfg(), D);
    const x = new Float32Array(STAT_ROWS * D); // x: [STAT_ROWS, D] f32
    const t = await src.nextBatchWithTruth(x);
    statCache = { src, x, t };
  }
  return statCache;
}

Deno.test("synthetic: same seed gives the same truth and batches, another seed differs", async () => {
  const a = new SyntheticSource(cfg(), D);
  const b = new SyntheticSource(cfg(), D);
  const c = new SyntheticSource(cfg({ seed: 2 }), D);
  assertSame([a.truth.dictionary], [b.truth.dictionary], "dictionary");
  assert.ok(differs(a.truth.dictionary, c.truth.dictionary), "another seed, same dictionary");
  const [xa, xb, xc] = await Promise.all([a, b, c].map((s) => batches(s, 256, 2)));
  assertSame(xa, xb, "same seed");
  assert.ok(differs(xa[0], xc[0]), "another seed, same batch");
  assert.ok(differs(xa[0], xa[1]), "a batch repeats");
  assert.equal(a.description, "synthetic(n=256, d=64, seed=1)");
});

Deno.test("synthetic: the stream does not depend on how it is cut into batches", async () => {
  const a = new SyntheticSource(cfg(), D);
  const b = new SyntheticSource(cfg(), D);
  const [whole] = await batches(a, 300, 1);
  const parts = [...await batches(b, 100, 1), ...await batches(b, 200, 1)];
  assertSame([whole], [Float32Array.from([...parts[0], ...parts[1]])], "split");
});

Deno.test("synthetic: restore() continues the exact stream", async () => {
  const a = new SyntheticSource(cfg(), D);
  await batches(a, 123, 2);
  const saved = JSON.parse(JSON.stringify(a.state()));
  const next = await batches(a, 200, 3);
  const b = new SyntheticSource(cfg(), D);
  b.restore(saved);
  assertSame(await batches(b, 200, 3), next, "restored");
  assert.equal(b.state().rows, 123 * 2 + 600);
  assert.throws(() => new SyntheticSource(cfg({ seed: 5 }), D).restore(saved), UserError);
  assert.throws(() => b.restore({ kind: "other" }), UserError);
});

Deno.test("synthetic: nextBatch and nextBatchWithTruth give the same activations", async () => {
  const a = new SyntheticSource(cfg(), D);
  const b = new SyntheticSource(cfg(), D);
  for (let i = 0; i < 3; i++) {
    const xa = new Float32Array(256 * D);
    const xb = new Float32Array(256 * D);
    if (i === 1) {
      await a.nextBatchWithTruth(xa);
      await b.nextBatch(xb);
    } else {
      await a.nextBatch(xa);
      await b.nextBatchWithTruth(xb);
    }
    assertSame([xa], [xb], `batch ${i}`);
  }
  await assert.rejects(() => a.nextBatch(new Float32Array(D + 1)), /multiple of d_in/);
  await assert.rejects(() => a.nextBatchWithTruth(new Float32Array(D - 1)), /multiple of d_in/);
});

Deno.test("synthetic: ground truth layout (unit rows, disjoint structured features)", () => {
  const c = cfg();
  const s = new SyntheticSource(c, D);
  const { dictionary, offset, kind, groups, parents, concepts, firingProbability } = s.truth;
  assert.equal(dictionary.length, c.n_features * D);
  for (let f = 0; f < c.n_features; f++) {
    let ss = 0;
    for (let d = 0; d < D; d++) ss += dictionary[f * D + d] ** 2;
    assert.ok(Math.abs(Math.sqrt(ss) - 1) < 1e-5, `row ${f} norm ${Math.sqrt(ss)}`);
  }
  const on = Math.hypot(...offset);
  assert.ok(Math.abs(on - c.offset_norm) < 1e-4, `offset norm ${on}`);
  const seen = new Set<number>();
  const claim = (f: number, k: number) => {
    assert.ok(!seen.has(f), `feature ${f} in two structures`);
    seen.add(f);
    assert.equal(kind[f], k);
  };
  assert.equal(groups.length, c.n_groups);
  for (const g of groups) {
    assert.equal(g.length, c.group_size);
    g.forEach((f) => claim(f, FeatureKind.groupMember));
  }
  assert.equal(parents.length, c.n_parents);
  assert.deepEqual(parents.slice(0, 3).map((p) => p.letter), ["a", "b", "c"]);
  assert.equal(parents[25].letter, "z");
  for (const p of parents) {
    claim(p.feature, FeatureKind.parent);
    assert.equal(p.children.length, c.children_per_parent);
    p.children.forEach((f) => claim(f, FeatureKind.child));
  }
  claim(concepts.target, FeatureKind.concept);
  claim(concepts.spurious, FeatureKind.concept);
  assert.equal(kind.filter((k) => k === FeatureKind.plain).length, c.n_features - seen.size);
  const total = firingProbability.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(total - c.mean_l0) < 1e-6, `expected L0 ${total}`);
  const nPow = kind.filter((k) => k <= FeatureKind.groupMember).length;
  for (let i = 1; i < nPow; i++) {
    assert.ok(firingProbability[i] <= firingProbability[i - 1] + 1e-15, "power law decreasing");
  }
});

Deno.test("synthetic: empirical L0 and per-feature firing rates match the truth", async () => {
  const { src, t } = await statSample();
  const n = STAT_ROWS;
  const l0 = t.rowPtr[n] / n;
  assert.ok(Math.abs(l0 / DEFAULT_SYNTHETIC.mean_l0 - 1) < 0.02, `mean L0 ${l0}`);
  const count = new Float64Array(DEFAULT_SYNTHETIC.n_features);
  for (const f of t.features) count[f]++;
  let checked = 0;
  let chi2 = 0;
  let dof = 0;
  src.truth.firingProbability.forEach((p, f) => {
    const sigma = Math.sqrt((p * (1 - p)) / n);
    const rate = count[f] / n;
    if (p === 0) assert.equal(count[f], 0);
    else assert.ok(Math.abs(rate - p) < 5 * sigma + 1e-9, `feature ${f}: ${rate} vs ${p}`);
    if (p > 0.005) {
      checked++;
      chi2 += ((rate - p) / sigma) ** 2;
      dof++;
    }
  });
  assert.ok(checked > 100);
  // chi-square with `dof` degrees of freedom: mean dof, sd sqrt(2 dof); allow 5 sd.
  assert.ok(chi2 < dof + 5 * Math.sqrt(2 * dof), `chi2 ${chi2} with ${dof} dof`);
  for (let i = 0; i < t.magnitudes.length; i++) assert.ok(t.magnitudes[i] > 0);
  const meanMag = t.magnitudes.reduce((a, b) => a + b, 0) / t.magnitudes.length;
  assert.ok(Math.abs(meanMag - src.truth.meanMagnitude) < 0.01, `mean magnitude ${meanMag}`);
});

Deno.test("synthetic: hierarchy, groups and concept labels behave as documented", async () => {
  const { src, t } = await statSample();
  const n = STAT_ROWS;
  const { parents, groups, concepts, kind } = src.truth;
  const parentOf = new Map<number, number>();
  for (const p of parents) for (const ch of p.children) parentOf.set(ch, p.feature);
  let parentsActive = 0;
  let g0 = 0, g1 = 0, g01 = 0;
  let nt = 0, ns = 0, nts = 0;
  for (let r = 0; r < n; r++) {
    const row = new Set(t.features.subarray(t.rowPtr[r], t.rowPtr[r + 1]));
    for (const f of row) {
      if (kind[f] === FeatureKind.child) assert.ok(row.has(parentOf.get(f)!), "orphan child");
      if (kind[f] === FeatureKind.parent) {
        parentsActive++;
        const kids = parents.find((p) => p.feature === f)!.children.filter((c) => row.has(c));
        assert.equal(kids.length, 1, "a firing parent brings exactly one child");
      }
    }
    const a = row.has(groups[0][0]), b = row.has(groups[0][1]);
    g0 += +a, g1 += +b, g01 += +(a && b);
    assert.equal(t.target[r], +row.has(concepts.target));
    assert.equal(t.spurious[r], +row.has(concepts.spurious));
    nt += t.target[r], ns += t.spurious[r], nts += t.target[r] & t.spurious[r];
  }
  assert.ok(parentsActive > 1000);
  // Members fire only through their group: P(b | a) = group_correlation, far above P(b).
  const cond = g01 / g0;
  assert.ok(Math.abs(cond - DEFAULT_SYNTHETIC.group_correlation) < 0.02, `P(b|a) ${cond}`);
  assert.ok(g1 / n < cond / 2);
  const pt = nt / n, ps = ns / n, pts = nts / n;
  const phi = (pts - pt * ps) / Math.sqrt(pt * (1 - pt) * ps * (1 - ps));
  assert.ok(Math.abs(pt - DEFAULT_SYNTHETIC.concept_probability) < 0.01, `P(target) ${pt}`);
  assert.ok(Math.abs(ps - DEFAULT_SYNTHETIC.concept_probability) < 0.01, `P(spurious) ${ps}`);
  assert.ok(Math.abs(phi - DEFAULT_SYNTHETIC.concept_correlation) < 0.02, `phi ${phi}`);
});

Deno.test("synthetic: activations - offset = sum of magnitude x direction, within the noise", async () => {
  const { src, x, t } = await statSample();
  const { dictionary, offset } = src.truth;
  const rows = 4096;
  let ss = 0;
  let maxAbs = 0;
  for (let r = 0; r < rows; r++) {
    const res = new Float64Array(D);
    for (let d = 0; d < D; d++) res[d] = x[r * D + d] - offset[d];
    for (let k = t.rowPtr[r]; k < t.rowPtr[r + 1]; k++) {
      const f = t.features[k], m = t.magnitudes[k];
      for (let d = 0; d < D; d++) res[d] -= m * dictionary[f * D + d];
    }
    for (let d = 0; d < D; d++) {
      ss += res[d] ** 2;
      maxAbs = Math.max(maxAbs, Math.abs(res[d]));
    }
  }
  const sd = Math.sqrt(ss / (rows * D));
  const want = DEFAULT_SYNTHETIC.noise_std;
  assert.ok(Math.abs(sd / want - 1) < 0.03, `residual sd ${sd} vs noise_std ${want}`);
  assert.ok(maxAbs < 6 * want, `max residual ${maxAbs}`);
});

Deno.test("synthetic: noise is standard normal and zero noise reconstructs exactly", async () => {
  const s = new SyntheticSource(cfg({ noise_std: 0, n_groups: 0 }), D);
  const x = new Float32Array(512 * D);
  const t = await s.nextBatchWithTruth(x);
  for (let r = 0; r < 512; r++) {
    for (let d = 0; d < D; d++) {
      let v = s.truth.offset[d];
      for (let k = t.rowPtr[r]; k < t.rowPtr[r + 1]; k++) {
        v += t.magnitudes[k] * s.truth.dictionary[t.features[k] * D + d];
      }
      assert.ok(Math.abs(x[r * D + d] - v) < 1e-5, `row ${r} dim ${d}`);
    }
  }
  // Noise alone: everything else off but the fixed concept/hierarchy features (set to zero).
  const quiet = new SyntheticSource(
    cfg({
      offset_norm: 0,
      noise_std: 2,
      n_groups: 0,
      n_parents: 0,
      concept_probability: 0,
      mean_l0: 1e-12,
    }),
    7,
  );
  const z = new Float32Array(20000 * 7);
  const zt = await quiet.nextBatchWithTruth(z);
  assert.equal(zt.rowPtr[20000], 0);
  let m = 0, v = 0, tail = 0;
  for (const e of z) (m += e, v += e * e, tail += +(Math.abs(e) > 2 * 2.5758));
  m /= z.length;
  v = v / z.length - m * m;
  assert.ok(Math.abs(m) < 0.05, `noise mean ${m}`);
  assert.ok(Math.abs(Math.sqrt(v) / 2 - 1) < 0.02, `noise sd ${Math.sqrt(v)}`);
  assert.ok(Math.abs(tail / z.length - 0.01) < 0.003, `two-sided 1% tail ${tail / z.length}`);
  // Kolmogorov-Smirnov against N(0, 2²): critical value 1.95/√n at the 0.1% level.
  const sorted = Float64Array.from(z).sort();
  let ks = 0;
  sorted.forEach((e, i) => {
    const cdf = 0.5 * (1 + erf(e / 2 / Math.SQRT2));
    ks = Math.max(ks, Math.abs(cdf - i / sorted.length), Math.abs(cdf - (i + 1) / sorted.length));
  });
  assert.ok(ks < 1.95 / Math.sqrt(sorted.length), `KS distance ${ks}`);
});

Deno.test("synthetic: the row mean is the offset (plus the mean feature contribution)", async () => {
  const s = new SyntheticSource(cfg({ offset_norm: 50 }), D);
  const rows = 32768;
  const x = new Float32Array(rows * D);
  await s.nextBatch(x);
  const mean = new Float64Array(D);
  for (let r = 0; r < rows; r++) for (let d = 0; d < D; d++) mean[d] += x[r * D + d] / rows;
  const { offset, dictionary, firingProbability, meanMagnitude } = s.truth;
  let errOffset = 0;
  let errExact = 0;
  for (let d = 0; d < D; d++) {
    let expect = offset[d];
    firingProbability.forEach((p, f) => expect += p * meanMagnitude * dictionary[f * D + d]);
    errOffset += (mean[d] - offset[d]) ** 2;
    errExact += (mean[d] - expect) ** 2;
  }
  assert.ok(Math.sqrt(errOffset) / 50 < 0.05, `|mean - offset| ${Math.sqrt(errOffset)}`);
  assert.ok(Math.sqrt(errExact) < 0.1, `|mean - E[x]| ${Math.sqrt(errExact)}`);
});

Deno.test("synthetic: mean_l0 is met when probabilities clamp at 1", async () => {
  const c = cfg({ n_features: 200, mean_l0: 80, power_law_exponent: 2, group_correlation: 0.9 });
  const s = new SyntheticSource(c, 16);
  const p = s.truth.firingProbability;
  assert.ok(p.every((v) => v >= 0 && v <= 1));
  assert.ok(p.filter((v) => v === 1).length > 10);
  const x = new Float32Array(4000 * 16);
  const t = await s.nextBatchWithTruth(x);
  assert.ok(Math.abs(t.rowPtr[4000] / 4000 / 80 - 1) < 0.01, `L0 ${t.rowPtr[4000] / 4000}`);
});

Deno.test("synthetic: infeasible settings are rejected with a one-line UserError", () => {
  const bad: [Partial<SyntheticConfig>, RegExp][] = [
    [{ n_features: 100 }, /n_features/],
    [{ group_correlation: 1.5 }, /group_correlation/],
    [{ parent_probability: -0.1 }, /parent_probability/],
    [{ concept_probability: NaN }, /concept_probability/],
    [{ concept_correlation: -0.9 }, /concept_correlation.*infeasible/],
    [{ concept_correlation: 1.2 }, /concept_correlation/],
    [{ mean_l0: 1 }, /mean_l0.*below/],
    [{ mean_l0: 1000 }, /mean_l0.*unreachable/],
    [{ mean_l0: 0 }, /mean_l0/],
    [{ magnitude_mean: 0 }, /magnitude_mean/],
    [{ noise_std: -1 }, /noise_std/],
    [{ n_groups: 1.5 }, /n_groups/],
  ];
  for (const [over, re] of bad) {
    assert.throws(() => new SyntheticSource(cfg(over), D), (e: unknown) => {
      assert.ok(e instanceof UserError, `${JSON.stringify(over)}: ${e}`);
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
  assert.throws(() => new SyntheticSource(cfg(), 0), UserError);
});

/** Error function (Abramowitz–Stegun 7.1.26, |error| < 1.5e-7). */
function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t * Math.exp(-x * x);
  return Math.sign(x) * y;
}
