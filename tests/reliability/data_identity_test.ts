/**
 * Issue 17, item 4: the activation files a run depends on are identified by their content, not
 * their names. A file replaced by other data of the same name and shape is refused on resume,
 * naming it, before anything is written; the same files under another path resume as before.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { mergeConfig } from "../../src/config.ts";
import { FileSource, FULL_HASH_BYTES, shardContentId } from "../../src/data/files.ts";
import { readNpyShard } from "../../src/data/npy.ts";
import { UserError } from "../../src/errors.ts";
import { train } from "../../src/sae/trainer.ts";
import { captureStderr, QUIET, sameBytes, TINY, writeNpy, writeRowsNpy } from "./helpers.ts";

Deno.test("a data file replaced by other rows of the same name and shape is refused on resume", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-dataid-" });
  const data = join(dir, "acts.npy");
  await writeRowsNpy(data, 8000, 16, { seed: 1 });
  const cfg = mergeConfig(TINY, { data, steps: 40, checkpoint_every: 20 });
  const run = join(dir, "run");
  await train(cfg, { ...QUIET, outDir: run });
  const config = await Deno.readFile(join(run, "config.yaml"));
  const log = await Deno.readFile(join(run, "metrics.jsonl"));

  await writeRowsNpy(data, 8000, 16, { seed: 2 }); // same name, same shape, other data
  const err = await train({ ...cfg, steps: 60 }, { ...QUIET, outDir: run, resume: true })
    .then(() => null, (e) => e);
  assert.ok(err instanceof UserError, String(err));
  assert.match(
    err.message,
    /acts\.npy \(shard 1 of 1\) is not the file the run was started with: same shape, other content \(sha256 [0-9a-f]{12}… then, sha256 [0-9a-f]{12}… now\); resume with the same files/,
  );
  assert.deepEqual(await Deno.readFile(join(run, "config.yaml")), config, "nothing written");
  assert.deepEqual(await Deno.readFile(join(run, "metrics.jsonl")), log, "nothing written");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the same data under another path resumes, and the change of path is named", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-datamove-" });
  const data = join(dir, "acts.npy");
  await writeRowsNpy(data, 8000, 16);
  const cfg = mergeConfig(TINY, { data, steps: 40, checkpoint_every: 20 });
  await train(cfg, { ...QUIET, outDir: join(dir, "run") });
  await train({ ...cfg, steps: 60 }, { ...QUIET, outDir: join(dir, "full") });
  const moved = join(dir, "moved.npy");
  await Deno.rename(data, moved);
  const { lines, error } = await captureStderr(() =>
    train({ ...cfg, data: moved, steps: 60 }, { ...QUIET, outDir: join(dir, "run"), resume: true })
  );
  assert.equal(error, undefined, String(error));
  assert.ok(
    lines.includes(`resume changes steps 40 → 60, data ${data} → ${moved} from step 41`),
    lines.join(" | "),
  );
  assert.ok(
    await sameBytes(join(dir, "run", "sae.safetensors"), join(dir, "full", "sae.safetensors")),
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("content IDs: whole-file SHA-256 for small shards, 64 sampled blocks for large ones", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-contentid-" });
  const d = 64;
  const rows = Math.ceil((FULL_HASH_BYTES + (1 << 20)) / (4 * d)); // just over the whole-file size
  const x = new Float32Array(rows * d).map((_, i) => Math.sin(i));
  const a = join(dir, "a.npy");
  await writeNpy(a, x, d);
  const id = await shardContentId(await readNpyShard(a));
  assert.match(id, /^sha256-sampled:[0-9a-f]{64}$/);
  // A copy (other name, other mtime) is the same content; another file of the same shape is not.
  const b = join(dir, "b.npy");
  await Deno.copyFile(a, b);
  assert.equal(await shardContentId(await readNpyShard(b)), id);
  await writeNpy(b, x.map((v) => v + 1e-3), d);
  assert.notEqual(await shardContentId(await readNpyShard(b)), id);
  const small = join(dir, "small.npy");
  await writeNpy(small, x.subarray(0, 100 * d), d);
  assert.match(await shardContentId(await readNpyShard(small)), /^sha256:[0-9a-f]{64}$/);
  const src = await FileSource.open(small, d, { log: () => {} });
  assert.deepEqual(src.state().content, [await shardContentId(await readNpyShard(small))]);
  await Deno.remove(dir, { recursive: true });
});
