import assert from "node:assert/strict";
import { join } from "node:path";
import { UserError } from "../../src/errors.ts";
import {
  checkpointName,
  listCheckpoints,
  loadCheckpoint,
  loadLatestCheckpoint,
  saveCheckpoint,
} from "../../src/run/checkpoint.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  f32Tensor,
  tensorToF32,
} from "../../src/run/safetensors.ts";

function tensorsFor(step: number) {
  return {
    W_enc: f32Tensor([2, 3], new Float32Array([1, 2, 3, 4, 5, step])),
    b_dec: f32Tensor([3], new Float32Array([step, -step, 0.5])),
  };
}

async function withRun(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("checkpointName pads the step to 8 digits", () => {
  assert.equal(checkpointName(1000), "step-00001000.safetensors");
  assert.equal(checkpointName(123456789), "step-123456789.safetensors");
});

Deno.test("saveCheckpoint writes meta, step and file_sha256; loadCheckpoint verifies them", async () => {
  await withRun(async (run) => {
    const meta = { rng: [1, 2, 3, 4], lr: 1e-4, nested: { a: "b" } };
    const path = await saveCheckpoint(run, 1000, tensorsFor(1000), meta);
    assert.equal(path, join(run, "checkpoints", "step-00001000.safetensors"));
    const raw = decodeSafetensors(await Deno.readFile(path));
    assert.equal(raw.metadata.step, "1000");
    assert.match(raw.metadata.file_sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(JSON.parse(raw.metadata.meta), meta);

    const ck = await loadCheckpoint(path);
    assert.equal(ck.step, 1000);
    assert.equal(ck.headerVerified, true);
    assert.deepEqual(ck.meta, meta);
    assert.deepEqual([...tensorToF32(ck.tensors.W_enc)], [1, 2, 3, 4, 5, 1000]);
    assert.deepEqual(ck.tensors.b_dec.shape, [3]);
  });
});

Deno.test("only the newest `keep` checkpoints are kept", async () => {
  await withRun(async (run) => {
    for (const step of [100, 200, 300, 400, 500]) {
      await saveCheckpoint(run, step, tensorsFor(step), {});
    }
    assert.deepEqual((await listCheckpoints(run)).map((c) => c.step), [500, 400, 300]);
    await saveCheckpoint(run, 600, tensorsFor(600), {}, { keep: 1 });
    assert.deepEqual((await listCheckpoints(run)).map((c) => c.step), [600]);
    const names = [...Deno.readDirSync(join(run, "checkpoints"))].map((e) => e.name);
    assert.deepEqual(names, ["step-00000600.safetensors"]);
  });
});

Deno.test("loadLatestCheckpoint skips truncated and bit-flipped checkpoints", async () => {
  await withRun(async (run) => {
    await saveCheckpoint(run, 100, tensorsFor(100), { tag: "a" });
    const p200 = await saveCheckpoint(run, 200, tensorsFor(200), { tag: "b" });
    const p300 = await saveCheckpoint(run, 300, tensorsFor(300), { tag: "c" });

    // Flip one byte in the tensor data of the newest: it still decodes, the checksum catches it.
    const bytes = await Deno.readFile(p300);
    bytes[bytes.length - 3] ^= 0x40;
    await Deno.writeFile(p300, bytes);
    const warnings: string[] = [];
    const warn = (line: string) => warnings.push(line);
    let ck = await loadLatestCheckpoint(run, { warn });
    assert.equal(ck?.step, 200);
    assert.deepEqual(ck?.meta, { tag: "b" });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /^warning: .*step-00000300\.safetensors.*checksum mismatch/);
    assert.ok(!warnings[0].includes("\n"));

    // Truncate the next one too: the one before it is loaded.
    const b200 = await Deno.readFile(p200);
    await Deno.writeFile(p200, b200.subarray(0, b200.length - 10));
    warnings.length = 0;
    ck = await loadLatestCheckpoint(run, { warn });
    assert.equal(ck?.step, 100);
    assert.deepEqual([...tensorToF32(ck!.tensors.b_dec)], [100, -100, 0.5]);
    assert.equal(warnings.length, 2);
    assert.match(warnings[1], /step-00000200\.safetensors.*(truncated|outside)/);

    await assert.rejects(() => loadCheckpoint(p300), UserError);
  });
});

Deno.test("loadLatestCheckpoint returns null when nothing usable exists", async () => {
  await withRun(async (run) => {
    assert.equal(await loadLatestCheckpoint(run), null);
    await Deno.mkdir(join(run, "checkpoints"));
    await Deno.writeFile(join(run, "checkpoints", checkpointName(5)), new Uint8Array(3));
    const warnings: string[] = [];
    assert.equal(await loadLatestCheckpoint(run, { warn: (l) => warnings.push(l) }), null);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /shorter than the 8-byte header/);
  });
});

Deno.test("a checkpoint without checksum metadata is rejected", async () => {
  await withRun(async (run) => {
    const path = join(run, "plain.safetensors");
    await Deno.writeFile(path, encodeSafetensors(tensorsFor(1), { step: "1" }));
    await assert.rejects(() => loadCheckpoint(path), /no 'file_sha256' \(no checksum\)/);
    await assert.rejects(() => loadCheckpoint(join(run, "missing.safetensors")), /not found/);
  });
});
