import assert from "node:assert/strict";
import { DEFAULT_CONFIG, mergeConfig } from "../../src/config.ts";
import {
  expandDataPaths,
  FileSource,
  type FileSourceState,
  globSegmentRegex,
  naturalCompare,
} from "../../src/data/files.ts";
import { openSource, shuffleCapacity } from "../../src/data/open.ts";
import { ShuffleBuffer } from "../../src/data/shuffle.ts";
import { UserError } from "../../src/errors.ts";
import { f32Bytes, npyFile, sameValues, u16Bytes } from "./files_helpers.ts";
import { rejectsUserError } from "../helpers/check.ts";

const D = 5;
const ROWS = [7, 3, 11]; // odd counts, so batches straddle shard ends

/** Row r of the concatenation: [r, r + 0.5, -r, r / 8, 1]. */
function rowValues(r: number): number[] {
  return [r, r + 0.5, -r, r / 8, 1];
}

/** Writes shard0.npy (f32), shard1.npy (f16: small integers are exact), shard2.npy (f32). */
async function makeShards(dir: string): Promise<Float32Array> {
  let r = 0;
  const all: number[] = [];
  for (let s = 0; s < ROWS.length; s++) {
    const vals: number[] = [];
    for (let i = 0; i < ROWS[s]; i++) vals.push(...rowValues(r++));
    all.push(...vals);
    const bytes = s === 1
      ? npyFile(u16Bytes(halfBits(vals)), {
        descr: "<f2",
        shape: `(${ROWS[s]}, ${D})`,
      })
      : npyFile(f32Bytes(vals), { shape: `(${ROWS[s]}, ${D})`, version: s + 1 });
    await Deno.writeFile(`${dir}/shard${s}.npy`, bytes);
  }
  return new Float32Array(all);
}

function halfBits(vals: number[]): Uint16Array {
  return new Uint16Array(Float16Array.from(vals).buffer);
}

async function tmp(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "sae-files-" });
}

const quiet = { log: () => {} };

Deno.test("files: a glob of 3 shards streams as their concatenation, across shard ends and epochs", async () => {
  const dir = await tmp();
  const all = await makeShards(dir);
  const total = all.length / D;
  const notes: string[] = [];
  // readBytes of 2 rows: every shard is read in several chunks.
  const src = await FileSource.open(`${dir}/shard*.npy`, D, {
    readBytes: 2 * D * 4,
    log: (l) => notes.push(l),
  });
  assert.deepEqual(src.shards.map((s) => s.path.slice(dir.length + 1)), [
    "shard0.npy",
    "shard1.npy",
    "shard2.npy",
  ]);
  assert.equal(src.totalRows, total);
  assert.match(src.description, /3 shards, 21 rows/);
  const got: number[] = [];
  for (const n of [4, 5, 1, 9, 13, 8]) { // 40 rows: one epoch and 19 rows of the next
    const out = new Float32Array(n * D).fill(NaN);
    await src.nextBatch(out);
    got.push(...out);
  }
  const want = [...all, ...all.subarray(0, (40 - total) * D)];
  assert.ok(sameValues(got, want));
  assert.equal(src.epochs, 1);
  assert.equal(notes.length, 1);
  assert.match(notes[0], /epoch 1 done \(21 rows in 3 shards\); starting epoch 2/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("files: restore(state()) continues exactly; a different file set is refused", async () => {
  const dir = await tmp();
  await makeShards(dir);
  const a = await FileSource.open(`${dir}/*.npy`, D, quiet);
  const b = await FileSource.open(`${dir}/*.npy`, D, quiet);
  const x = new Float32Array(9 * D);
  await a.nextBatch(x);
  const st = JSON.parse(JSON.stringify(a.state())) as FileSourceState;
  assert.deepEqual([st.shard, st.row, st.epoch, st.skipped], [1, 2, 0, 0]);
  b.restore(st);
  for (const n of [3, 17, 6]) {
    const ya = new Float32Array(n * D);
    const yb = new Float32Array(n * D);
    await a.nextBatch(ya);
    await b.nextBatch(yb);
    assert.ok(sameValues(ya, yb));
  }
  assert.deepEqual(a.state(), b.state());
  const one = await FileSource.open(`${dir}/shard0.npy`, D, quiet);
  assert.throws(
    () => one.restore(st),
    /started on 3 shards with 21 rows.*resume with the same files/,
  );
  assert.throws(() => one.restore({ kind: "synthetic" }), UserError);
  assert.throws(() => b.restore({ ...st, shard: 5 }), /outside the files/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("files: a NaN/Inf row stops with shard and row, or is skipped and counted", async () => {
  const dir = await tmp();
  const vals = Array.from({ length: 6 * 2 }, (_, i) => i);
  vals[3 * 2 + 1] = NaN; // row 3
  vals[5 * 2] = -Infinity; // row 5
  await Deno.writeFile(`${dir}/a.npy`, npyFile(f32Bytes([10, 11]), { shape: "(1, 2)" }));
  await Deno.writeFile(`${dir}/b.npy`, npyFile(f32Bytes(vals), { shape: "(6, 2)" }));
  const strict = await FileSource.open(`${dir}/*.npy`, 2, quiet);
  await assert.rejects(
    strict.nextBatch(new Float32Array(7 * 2)),
    (e) =>
      e instanceof UserError &&
      /b\.npy row 3 has NaN\/Inf; clean the data or pass --skip-bad-rows/.test(e.message),
  );
  const notes: string[] = [];
  const skip = await FileSource.open(`${dir}/*.npy`, 2, {
    skipBadRows: true,
    log: (l) => notes.push(l),
  });
  const out = new Float32Array(6 * 2);
  await skip.nextBatch(out);
  // Rows: a0, b0, b1, b2, (b3 skipped), b4, (b5 skipped), then a0 again.
  assert.deepEqual([...out], [10, 11, 0, 1, 2, 3, 4, 5, 8, 9, 10, 11]);
  assert.equal(skip.skippedRows, 2);
  assert.equal(skip.state().skipped, 2);
  assert.match(notes[0], /skipping rows with NaN\/Inf \(first: .*b\.npy row 3\)/);
  assert.match(notes[1], /epoch 1 done.*2 rows with NaN\/Inf skipped so far/);
  // All rows bad: an error, not an endless loop.
  await Deno.writeFile(`${dir}/c.npy`, npyFile(f32Bytes([NaN, 1]), { shape: "(1, 2)" }));
  const hopeless = await FileSource.open(`${dir}/c.npy`, 2, { skipBadRows: true, log: () => {} });
  await assert.rejects(hopeless.nextBatch(new Float32Array(2)), /every row .* has NaN\/Inf/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("files: path, directory and glob expansion; errors when nothing matches", async () => {
  const dir = await tmp();
  await Deno.mkdir(`${dir}/x/y`, { recursive: true });
  const one = npyFile(f32Bytes([1, 2]), { shape: "(1, 2)" });
  for (const f of ["s10.npy", "s2.npy", "s1.npy", ".hidden.npy", "notes.txt", "x/y/deep.npy"]) {
    await Deno.writeFile(`${dir}/${f}`, one);
  }
  const rel = (ps: string[]) => ps.map((p) => p.slice(dir.length + 1));
  assert.deepEqual(rel(await expandDataPaths(`${dir}/s*.npy`)), ["s1.npy", "s2.npy", "s10.npy"]);
  assert.deepEqual(rel(await expandDataPaths(dir)), ["s1.npy", "s2.npy", "s10.npy"]);
  assert.deepEqual(rel(await expandDataPaths(`${dir}/s[12].npy`)), ["s1.npy", "s2.npy"]);
  assert.deepEqual(rel(await expandDataPaths(`${dir}/s?.npy`)), ["s1.npy", "s2.npy"]);
  assert.deepEqual(rel(await expandDataPaths(`${dir}/**/*.npy`)), [
    "s1.npy",
    "s2.npy",
    "s10.npy",
    "x/y/deep.npy",
  ]);
  assert.deepEqual(rel(await expandDataPaths(`${dir}/*/y/*.npy`)), ["x/y/deep.npy"]);
  await assert.rejects(expandDataPaths(`${dir}/*.safetensors`), /the glob '.*' matches no files/);
  await assert.rejects(expandDataPaths(`${dir}/none.npy`), /not found/);
  await assert.rejects(expandDataPaths(`${dir}/x`), /holds no \.npy or \.safetensors files/);
  await assert.rejects(FileSource.open(`${dir}/notes.txt`, 2), /unsupported activation file/);
  assert.ok(globSegmentRegex("a[!b]c").test("axc") && !globSegmentRegex("a[!b]c").test("abc"));
  assert.ok(globSegmentRegex("a.b+(c)").test("a.b+(c)"));
  assert.deepEqual(["b10", "b9", "a", "b09"].sort(naturalCompare), ["a", "b9", "b09", "b10"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("files: a shard changed after opening is reported", async () => {
  const dir = await tmp();
  await Deno.writeFile(`${dir}/a.npy`, npyFile(f32Bytes([1, 2, 3, 4]), { shape: "(2, 2)" }));
  const src = await FileSource.open(`${dir}/a.npy`, 2, quiet);
  await Deno.writeFile(`${dir}/a.npy`, npyFile(f32Bytes([1, 2]), { shape: "(1, 2)" }));
  await assert.rejects(src.nextBatch(new Float32Array(2)), /changed while in use/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("openSource: files behind a bounded, seeded shuffle buffer that resumes exactly", async () => {
  const dir = await tmp();
  await makeShards(dir);
  const cfg = mergeConfig(DEFAULT_CONFIG, { data: `${dir}/shard*.npy`, d_in: D, batch: 4 });
  const a = await openSource(cfg);
  assert.ok(a instanceof ShuffleBuffer);
  assert.equal(a.capacity, 21); // min(64 · batch, 8 MiB of rows, the 21 rows there are)
  assert.equal(shuffleCapacity(256, 768, 1e9), Math.floor((8 << 20) / (4 * 768)));
  assert.equal(shuffleCapacity(4, 16, 1e9), 256);
  const x = new Float32Array(30 * D);
  await a.nextBatch(x);
  const ids: number[] = [];
  for (let r = 0; r < 30; r++) {
    const id = x[r * D];
    assert.ok(Number.isInteger(id) && id >= 0 && id < 21, `row id ${id}`);
    assert.deepEqual([...x.subarray(r * D, (r + 1) * D)], rowValues(id), "torn row");
    ids.push(id);
  }
  assert.notDeepEqual(ids.slice(0, 21), [...Array(21).keys()], "rows are not shuffled");
  const st = JSON.parse(JSON.stringify(a.state()));
  const b = await openSource(cfg);
  b.restore(st);
  const ya = new Float32Array(25 * D);
  const yb = new Float32Array(25 * D);
  await a.nextBatch(ya);
  await b.nextBatch(yb);
  assert.ok(sameValues(ya, yb));
  await assert.rejects(openSource({ ...cfg, d_in: 8 }), /has d=5 but d_in is 8; pass --d-in 5/);
  await assert.rejects(openSource({ ...cfg, data: `${dir}/nothing*.npy` }), /matches no files/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("files: a harvest directory reads the activation shards its manifest lists, in order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (
      const name of ["acts-0.npy", "acts-1.npy", "acts-10.npy", "tokens-0.npy", "tokens-1.npy"]
    ) {
      await Deno.writeTextFile(`${dir}/${name}`, "x");
    }
    await Deno.writeTextFile(
      `${dir}/manifest.json`,
      JSON.stringify({
        format: "sae-harvest",
        shards: [{ acts: "acts-0.npy" }, { acts: "acts-1.npy" }],
      }),
    );
    assert.deepEqual(await expandDataPaths(dir), [`${dir}/acts-0.npy`, `${dir}/acts-1.npy`]);
    await Deno.writeTextFile(
      `${dir}/manifest.json`,
      JSON.stringify({ format: "sae-harvest", shards: [] }),
    );
    await rejectsUserError(() => expandDataPaths(dir), /lists no completed shards yet/);
    await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify({ format: "other" }));
    assert.equal((await expandDataPaths(dir)).length, 5, "another tool's manifest: every .npy");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
