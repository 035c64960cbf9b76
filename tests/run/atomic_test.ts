import assert from "node:assert/strict";
import { join } from "node:path";
import { AtomicFile, atomicWrite, type Writer } from "../../src/run/atomic.ts";

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("atomicWrite creates and replaces a file, leaving no temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "a.txt");
    await atomicWrite(path, "first");
    assert.equal(await Deno.readTextFile(path), "first");
    await atomicWrite(path, new Uint8Array([104, 105]));
    assert.equal(await Deno.readTextFile(path), "hi");
    assert.deepEqual(await listDir(dir), ["a.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a write failing part-way leaves the old file whole and no temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "ckpt.bin");
    await atomicWrite(path, "the old, complete contents");
    let tmpSeen = "";
    const failing: Writer = async (file, bytes) => {
      await file.write(bytes.subarray(0, bytes.length >> 1));
      tmpSeen = (await listDir(dir)).find((n) => n.includes(".tmp-")) ?? "";
      throw new Error("disk full");
    };
    await assert.rejects(
      () => atomicWrite(path, "new contents that never land", { writer: failing }),
      /disk full/,
    );
    assert.match(tmpSeen, /^ckpt\.bin\.tmp-[0-9a-f]+$/, "the writer wrote a temp file");
    assert.equal(await Deno.readTextFile(path), "the old, complete contents");
    assert.deepEqual(await listDir(dir), ["ckpt.bin"]);

    // Without an old file, a failed write leaves nothing at all.
    await assert.rejects(() => atomicWrite(join(dir, "new.bin"), "x", { writer: failing }));
    assert.deepEqual(await listDir(dir), ["ckpt.bin"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failing rename removes the temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The target is a non-empty directory: rename over it fails.
    const target = join(dir, "target");
    await Deno.mkdir(target);
    await Deno.writeTextFile(join(target, "keep"), "x");
    await assert.rejects(() => atomicWrite(target, "data"));
    assert.deepEqual(await listDir(dir), ["target"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("AtomicFile: the target appears only on commit, whole; abort leaves the old file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/shard.npy`;
    await Deno.writeTextFile(path, "old");
    const f = await AtomicFile.create(path);
    await f.write(new TextEncoder().encode("HEADERbody"));
    await f.writeAt(0, new TextEncoder().encode("header"));
    assert.equal(await Deno.readTextFile(path), "old", "not visible before commit");
    await f.commit();
    assert.equal(await Deno.readTextFile(path), "headerbody");
    const g = await AtomicFile.create(path);
    await g.write(new TextEncoder().encode("half"));
    await g.abort();
    assert.equal(await Deno.readTextFile(path), "headerbody");
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["shard.npy"], "no temporary file left");
    await assert.rejects(() => f.writeAt(100, new Uint8Array(1)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
