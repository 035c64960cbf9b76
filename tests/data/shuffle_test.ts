import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { DEFAULT_SYNTHETIC } from "../../src/config.ts";
import { ShuffleBuffer, type ShuffleState } from "../../src/data/shuffle.ts";
import type { ActivationSource } from "../../src/data/source.ts";
import { SyntheticSource } from "../../src/data/synthetic.ts";
import { UserError } from "../../src/errors.ts";

/** Emits row i as [i, -i, i + 0.5]: rows are identifiable and checkable for tearing. */
class CountingSource implements ActivationSource {
  readonly dIn = 3;
  readonly description = "counting";
  next = 0;
  calls = 0;
  nextBatch(out: Float32Array): Promise<void> {
    this.calls++;
    for (let r = 0; r < out.length / 3; r++, this.next++) {
      out.set([this.next, -this.next, this.next + 0.5], r * 3);
    }
    return Promise.resolve();
  }
  state() {
    return { next: this.next };
  }
  restore(s: unknown) {
    this.next = (s as { next: number }).next;
  }
}

/** Serves `sizes` batches and returns the row ids, checking each row is intact. */
async function serve(buf: ShuffleBuffer, sizes: number[]): Promise<number[]> {
  const ids: number[] = [];
  for (const n of sizes) {
    const out = new Float32Array(n * 3);
    await buf.nextBatch(out);
    for (let r = 0; r < n; r++) {
      const id = out[r * 3];
      assert.ok(out[r * 3 + 1] === -id && out[r * 3 + 2] === id + 0.5, `torn row ${id}`);
      ids.push(id);
    }
  }
  return ids;
}

function heldIds(state: ShuffleState): number[] {
  const bytes = Buffer.from(state.buffer, "base64");
  const f = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  return Array.from({ length: state.rows }, (_, r) => f[r * 3]);
}

Deno.test("shuffle: every inner row is served once; served plus held equals pulled", async () => {
  const inner = new CountingSource();
  const buf = new ShuffleBuffer(inner, 100, 7);
  const served = await serve(buf, [1, 37, 64, 200, 3, 250]);
  assert.equal(new Set(served).size, served.length, "a row was served twice");
  const st = buf.state();
  assert.equal(st.filled, true);
  assert.ok(st.rows > 100 - buf.chunkRows && st.rows <= 100, `held ${st.rows}`);
  const all = [...served, ...heldIds(st)].sort((a, b) => a - b);
  assert.deepEqual(all, Array.from({ length: inner.next }, (_, i) => i));
  // Refills come in chunks, not one inner call per served row.
  assert.ok(inner.calls <= Math.ceil(inner.next / buf.chunkRows) + 1, `${inner.calls} calls`);
});

Deno.test("shuffle: the order differs from the inner order", async () => {
  const buf = new ShuffleBuffer(new CountingSource(), 256, 1);
  const served = await serve(buf, [2000]);
  let inPlace = 0;
  let ascending = 0;
  served.forEach((id, i) => {
    inPlace += +(id === i);
    if (i > 0) ascending += +(id > served[i - 1]);
  });
  assert.ok(inPlace < 50, `${inPlace} rows in their inner position`);
  // A random order has about half its neighbours ascending.
  assert.ok(Math.abs(ascending / 1999 - 0.5) < 0.05, `ascending fraction ${ascending / 1999}`);
  // Rows leave roughly in order of arrival: the displacement is bounded by the mixing depth.
  const late = served.filter((id, i) => i - id > 256 * 20).length;
  assert.ok(late < 20, `${late} rows held implausibly long`);
});

Deno.test("shuffle: each served row is a uniform pick among the held rows", async () => {
  const inner = new CountingSource();
  const buf = new ShuffleBuffer(inner, 64, 5, { chunkRows: 16 });
  const held: number[] = []; // ids held by the buffer, ascending (older first)
  let known = 0;
  const bins = new Float64Array(8);
  const steps = 4000;
  for (let i = 0; i < steps; i++) {
    const [id] = await serve(buf, [1]);
    while (known < inner.next) held.push(known++);
    const rank = held.indexOf(id);
    assert.ok(rank >= 0, `served ${id}, which is not held`);
    bins[Math.floor((rank / held.length) * 8)]++;
    held.splice(rank, 1);
  }
  // Ranks by age among the held rows are uniform: chi-square, 7 dof, 0.1% level is 24.3.
  const chi2 = bins.reduce((a, b) => a + (b - steps / 8) ** 2 / (steps / 8), 0);
  assert.ok(chi2 < 24.3, `age ranks not uniform: ${Array.from(bins)} (chi2 ${chi2})`);
});

Deno.test("shuffle: same seed same order, other seed other order", async () => {
  const a = await serve(new ShuffleBuffer(new CountingSource(), 64, 3), [500]);
  const b = await serve(new ShuffleBuffer(new CountingSource(), 64, 3), [500]);
  const c = await serve(new ShuffleBuffer(new CountingSource(), 64, 4), [500]);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

Deno.test("shuffle: restore() continues identically (buffer contents included)", async () => {
  const a = new ShuffleBuffer(new CountingSource(), 64, 9, { chunkRows: 10 });
  await serve(a, [50, 13]);
  const saved = JSON.parse(JSON.stringify(a.state()));
  const next = await serve(a, [40, 200]);
  const b = new ShuffleBuffer(new CountingSource(), 64, 9, { chunkRows: 10 });
  b.restore(saved);
  assert.deepEqual(await serve(b, [40, 200]), next);
  // A state taken before the first fill restores to an empty, unfilled buffer.
  const fresh = new ShuffleBuffer(new CountingSource(), 64, 9, { chunkRows: 10 });
  const early = JSON.parse(JSON.stringify(fresh.state()));
  const c = new ShuffleBuffer(new CountingSource(), 64, 9, { chunkRows: 10 });
  await serve(c, [5]);
  c.restore(early);
  assert.deepEqual(
    await serve(c, [30]),
    await serve(new ShuffleBuffer(new CountingSource(), 64, 9, { chunkRows: 10 }), [30]),
  );
  assert.throws(() => new ShuffleBuffer(new CountingSource(), 32, 9).restore(saved), UserError);
  assert.throws(() => b.restore({ kind: "synthetic" }), UserError);
});

Deno.test("shuffle: wraps the synthetic source, restore included", async () => {
  const make = () => new ShuffleBuffer(new SyntheticSource(DEFAULT_SYNTHETIC, 16), 300, 2);
  const a = make();
  const x = new Float32Array(128 * 16);
  await a.nextBatch(x);
  const saved = JSON.parse(JSON.stringify(a.state()));
  await a.nextBatch(x);
  const b = make();
  b.restore(saved);
  const y = new Float32Array(128 * 16);
  await b.nextBatch(y);
  assert.ok(x.every((v, i) => v === y[i]), "restored stream differs");
  assert.match(a.description, /^shuffle\(300, synthetic\(/);
});

Deno.test("shuffle: bad settings are rejected", async () => {
  assert.throws(() => new ShuffleBuffer(new CountingSource(), 0, 1), UserError);
  assert.throws(() => new ShuffleBuffer(new CountingSource(), 8, 1, { chunkRows: 9 }), UserError);
  const buf = new ShuffleBuffer(new CountingSource(), 8, 1);
  await assert.rejects(() => buf.nextBatch(new Float32Array(4)), /multiple of d_in/);
});
