import assert from "node:assert/strict";
import sampleSrc from "../../wgsl/sample.wgsl" with { type: "text" };
import { createGpu, getGpu, type Gpu } from "../../src/gpu/device.ts";
import { kernel, run } from "../../src/gpu/dispatch.ts";
import { withCommon } from "../../src/kernels/common.ts";
import {
  philox4x32,
  sampleDispatches,
  sampleReference,
  type SampleSpec,
  sampleUniform,
} from "../../src/kernels/sample.ts";
import { Rng } from "../../src/rng.ts";
import { randArray } from "../helpers/check.ts";

// Random123's known-answer vectors for Philox4x32-10 (counter, key, output).
const KAT: [number[], number[], number[]][] = [
  [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
  [
    [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
    [0xffffffff, 0xffffffff],
    [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
  ],
  [
    [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
    [0xa4093822, 0x299f31d0],
    [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
  ],
];

Deno.test("sample: Philox4x32-10 matches Random123's known answers, in TypeScript and WGSL", async () => {
  for (const [c, k, want] of KAT) assert.deepEqual(Array.from(philox4x32(c, k)), want);
  const gpu = await getGpu();
  const probe = `
@group(0) @binding(5) var<storage, read> io_in: array<vec4<u32>>;   // [n, 2]: counter, key (xy)
@group(0) @binding(6) var<storage, read_write> io_out: array<vec4<u32>>;
@compute @workgroup_size(1)
fn probe(@builtin(workgroup_id) w: vec3<u32>) {
  io_out[w.x] = philox(io_in[2u * w.x], io_in[2u * w.x + 1u].xy);
}`;
  const input = new Uint32Array(KAT.flatMap(([c, k]) => [...c, ...k, 0, 0]));
  const out = gpu.buffer("out", KAT.length * 16);
  const ins = gpu.upload("in", input);
  run(gpu, [
    await kernel(gpu, {
      label: "philox probe",
      code: withCommon(sampleSrc + probe),
      entry: "probe",
      buffers: [null, null, null, null, null, ins, out],
      groups: [KAT.length, 1, 1],
    }),
  ]);
  assert.deepEqual(Array.from(await gpu.readU32(out)), KAT.flatMap(([, , w]) => w));
});

/** Runs sampling and returns the tokens (and the buffers' contents after, for append). */
async function sample(
  gpu: Gpu,
  spec: SampleSpec,
  logits: Float32Array,
  seed = 0,
  step = 0,
  append?: { tokens: Uint32Array; pos: Uint32Array },
) {
  const bufs = {
    logits: gpu.upload("logits", logits),
    params: spec.temperature > 0 ? gpu.upload("params", new Uint32Array([seed, step])) : undefined,
    next: gpu.upload("next", new Uint32Array(spec.rows).fill(0xdeadbeef)),
    tokens: append ? gpu.upload("tokens", append.tokens) : undefined,
    pos: append ? gpu.upload("pos", append.pos) : undefined,
  };
  run(gpu, await sampleDispatches(gpu, spec, bufs));
  const next = (await gpu.readU32(bufs.next)).slice(0, spec.rows);
  const tokens = bufs.tokens ? await gpu.readU32(bufs.tokens) : null;
  const pos = bufs.pos ? await gpu.readU32(bufs.pos) : null;
  for (const b of Object.values(bufs)) if (b) gpu.destroyBuffer(b);
  return { next, tokens, pos };
}

/**
 * Asserts the GPU's tokens equal the reference's, except where the draw lies within 1e-5 of a
 * boundary between two tokens' cumulative probabilities (f32 sums order differently).
 */
function assertSameDraws(
  spec: SampleSpec,
  logits: Float32Array,
  got: Uint32Array,
  seed: number,
  step: number,
) {
  const ref = sampleReference(spec, logits, seed, step);
  let near = 0;
  for (let r = 0; r < spec.rows; r++) {
    if (got[r] === ref[r].token) continue;
    const { below, above, target } = ref[r];
    const edge = Math.min(Math.abs(target - below), Math.abs(target - above));
    assert.ok(edge < 1e-5, `row ${r}: got ${got[r]}, want ${ref[r].token} (target ${target})`);
    near++;
  }
  assert.ok(near <= 1, `${near} draws differ`);
}

Deno.test("sample: greedy argmax over 50257 logits, ties to the lowest index", async () => {
  const gpu = await getGpu();
  const rng = new Rng(1);
  const rows = 74, V = 50257;
  const logits = randArray(rng, rows * V, -10, 10);
  // Row 0: the maximum at 5, 70 and 50000 (different invocations); row 1: every logit equal;
  // row 2: the maximum only at the last index.
  for (const v of [5, 70, 50000]) logits[v] = 20;
  logits.fill(3, V, 2 * V);
  logits[3 * V - 1] = 30;
  const spec = { rows, vocab: V, temperature: 0 };
  const { next } = await sample(gpu, spec, logits);
  assert.deepEqual(Array.from(next), sampleReference(spec, logits).map((r) => r.token));
  assert.deepEqual(Array.from(next.slice(0, 3)), [5, 0, V - 1]);
});

Deno.test("sample: temperature draws match the reference draw for draw (seed, step, row)", async () => {
  const gpu = await getGpu();
  const rng = new Rng(2);
  for (const [rows, V, T] of [[74, 1000, 0.7], [74, 37, 1.5], [5, 50257, 1]] as const) {
    const logits = randArray(rng, rows * V, -5, 5);
    const spec = { rows, vocab: V, temperature: T };
    const a = await sample(gpu, spec, logits, 1234, 7);
    assertSameDraws(spec, logits, a.next, 1234, 7);
    const again = await sample(gpu, spec, logits, 1234, 7);
    assert.deepEqual(again.next, a.next, "same seed and step: same tokens");
    const other = await sample(gpu, spec, logits, 1234, 8);
    assertSameDraws(spec, logits, other.next, 1234, 8);
    assert.notDeepEqual(other.next, a.next, "another step: other tokens");
  }
});

Deno.test("sample: the draws follow softmax(l / T) (χ² over 6000 rows)", async () => {
  const gpu = await getGpu();
  const V = 6, rows = 6000, T = 0.8;
  const row = new Float32Array([0.3, -1, 1.2, 0, 2, -0.5]);
  const logits = new Float32Array(rows * V);
  for (let r = 0; r < rows; r++) logits.set(row, r * V);
  const { next } = await sample(gpu, { rows, vocab: V, temperature: T }, logits, 99, 3);
  const w = Array.from(row, (l) => Math.exp(l / T));
  const total = w.reduce((a, x) => a + x, 0);
  const counts = new Array(V).fill(0);
  for (const t of next) counts[t]++;
  let chi2 = 0;
  for (let v = 0; v < V; v++) {
    chi2 += (counts[v] - rows * w[v] / total) ** 2 / (rows * w[v] / total);
  }
  // 5 degrees of freedom: P(χ² > 20.5) = 0.001.
  assert.ok(chi2 < 20.5, `χ² ${chi2.toFixed(1)}, counts ${counts}`);
  // The uniforms themselves are those of the reference generator.
  assert.ok(Math.abs(sampleUniform(99, 3, 0) - sampleUniform(99, 3, 1)) > 0);
});

Deno.test("sample: append writes each token after its row's last position and advances it", async () => {
  const gpu = await getGpu();
  const rng = new Rng(4);
  const rows = 3, V = 41, cap = 12;
  const logits = randArray(rng, rows * V, -3, 3);
  const tokens = Uint32Array.from({ length: rows * cap }, (_, i) => 1000 + i);
  const pos = new Uint32Array([0, 7, cap - 1]); // the last row is full: nothing written
  const spec = { rows, vocab: V, temperature: 0, append: { capacity: cap } };
  const got = await sample(gpu, spec, logits, 0, 0, { tokens, pos });
  const want = tokens.slice();
  const ref = sampleReference(spec, logits).map((r) => r.token);
  want[0 * cap + 1] = ref[0];
  want[1 * cap + 8] = ref[1];
  assert.deepEqual(Array.from(got.next), ref);
  assert.deepEqual(got.tokens!.slice(0, rows * cap), want);
  assert.deepEqual(Array.from(got.pos!.slice(0, rows)), [1, 8, cap]);
});

Deno.test("sample: logits over the storage-binding limit are sampled in row ranges", async () => {
  const gpu = await createGpu({ maxStorageBufferBindingSize: 2048 });
  const rng = new Rng(5);
  const rows = 13, V = 101;
  const logits = randArray(rng, rows * V, -4, 4);
  for (const T of [0, 1.3]) {
    const spec = { rows, vocab: V, temperature: T };
    const bufs = {
      logits: gpu.upload("l", logits),
      next: gpu.buffer("n", rows * 4),
      params: gpu.upload("p", new Uint32Array([5, 1])),
    };
    const ds = await sampleDispatches(gpu, spec, bufs);
    assert.ok(ds.length >= 4);
    run(gpu, ds);
    assertSameDraws(spec, logits, (await gpu.readU32(bufs.next)).slice(0, rows), 5, 1);
  }
  gpu.destroy();
});
