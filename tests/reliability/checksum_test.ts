/**
 * Issue 17, item 3: a checkpoint's checksum covers its header (step, input scale, RNG state, the
 * shuffle buffer's rows, the data-stream state), not only its tensors. One flipped character in
 * the header makes the checkpoint unusable, so resume falls back to the previous one and ends as
 * an uninterrupted run does. Checkpoints that predate the header checksum still resume, with a
 * warning that their header is unchecked.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { mergeConfig } from "../../src/config.ts";
import { checkpointName } from "../../src/run/checkpoint.ts";
import { decodeSafetensors, encodeSafetensors } from "../../src/run/safetensors.ts";
import { train } from "../../src/sae/trainer.ts";
import { captureStderr, QUIET, sameBytes, TINY, writeRowsNpy } from "./helpers.ts";

/** A run on an activation file: its checkpoint header holds the shuffle buffer's rows (base64). */
async function fileRun(dir: string) {
  const data = join(dir, "acts.npy");
  await writeRowsNpy(data, 8000, 16);
  const cfg = mergeConfig(TINY, { data, steps: 60, checkpoint_every: 20 });
  await train(cfg, { ...QUIET, outDir: join(dir, "run") });
  await train({ ...cfg, steps: 80 }, { ...QUIET, outDir: join(dir, "full") });
  return cfg;
}

/** The header's JSON text and where it starts in `bytes`. */
function headerText(bytes: Uint8Array): { text: string; start: number } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { text: new TextDecoder().decode(bytes.subarray(8, 8 + n)), start: 8 };
}

Deno.test("one flipped character in a checkpoint's header (the shuffle buffer) makes it unusable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-ckhdr-" });
  const cfg = await fileRun(dir);
  const run = join(dir, "run");
  const newest = join(run, "checkpoints", checkpointName(60));
  const bytes = await Deno.readFile(newest);
  const { text, start } = headerText(bytes);
  // A character well inside the shuffle buffer's base64 rows (escaped JSON inside `meta`).
  const at = text.indexOf('\\"buffer\\":\\"') + 5000;
  assert.ok(at > 5000, "no shuffle buffer in the header");
  const old = bytes[start + at];
  bytes[start + at] = old === 0x41 ? 0x42 : 0x41; // 'A' <-> 'B': still valid base64
  await Deno.writeFile(newest, bytes);

  const { lines, error } = await captureStderr(() =>
    train({ ...cfg, steps: 80 }, { ...QUIET, outDir: run, resume: true })
  );
  assert.equal(error, undefined, String(error));
  assert.ok(
    lines.some((l) => l.includes(newest) && l.includes("checksum mismatch")),
    lines.join(" | "),
  );
  assert.ok(lines.includes(`resuming ${run} from step 40`), lines.join(" | "));
  assert.ok(await sameBytes(join(run, "sae.safetensors"), join(dir, "full", "sae.safetensors")));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a checkpoint from before header checksums (tensors-only sha256) resumes with a warning", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-ckold-" });
  const cfg = await fileRun(dir);
  const run = join(dir, "run");
  // Rewrite the newest checkpoint as the old writer did: `sha256` of the tensor bytes only, and
  // a data state of version 1 (names and row counts).
  const newest = join(run, "checkpoints", checkpointName(60));
  const { tensors, metadata } = decodeSafetensors(await Deno.readFile(newest));
  const meta = JSON.parse(metadata.meta);
  const files = meta.source.inner;
  meta.source.inner = {
    kind: "files",
    version: 1,
    shards: files.shards,
    rows: files.rows,
    dIn: files.dIn,
    fingerprint: fnv1a(`acts.npy:${files.rows}`),
    shard: files.shard,
    row: files.row,
    epoch: files.epoch,
    skipped: files.skipped,
  };
  delete meta.config;
  const hash = createHash("sha256");
  for (const t of Object.values(tensors)) hash.update(t.data);
  await Deno.writeFile(
    newest,
    encodeSafetensors(tensors, {
      step: "60",
      meta: JSON.stringify(meta),
      sha256: hash.digest("hex"),
    }),
  );
  const { lines, error } = await captureStderr(() =>
    train({ ...cfg, steps: 80 }, { ...QUIET, outDir: run, resume: true })
  );
  assert.equal(error, undefined, String(error));
  assert.ok(
    lines.some((l) => /^warning: .*step-00000060.* predates header checksums/.test(l)),
    lines.join(" | "),
  );
  assert.ok(
    lines.some((l) => /^warning: the checkpoint predates content checks of the data/.test(l)),
    lines.join(" | "),
  );
  assert.ok(lines.includes(`resuming ${run} from step 60`), lines.join(" | "));
  assert.ok(await sameBytes(join(run, "sae.safetensors"), join(dir, "full", "sae.safetensors")));
  await Deno.remove(dir, { recursive: true });
});

/** FNV-1a 32-bit, as the version 1 data state hashed "name:rows" lines. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}
