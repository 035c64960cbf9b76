/** `sae tune`: shapes parsed or refused in one line; tiles timed and cached; nothing on CPU. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../src/cli/main.ts";
import { parseShape } from "../../src/cli/tune.ts";
import { UserError } from "../../src/errors.ts";
import type { TileCacheFile } from "../../src/kernels/gemm/cache.ts";
import { withTemp } from "../helpers/check.ts";

/** Runs `fn` with these environment variables set, restoring them after. */
async function withEnv(vars: Record<string, string>, fn: () => Promise<void>): Promise<void> {
  const prev = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
  try {
    await fn();
  } finally {
    for (const [k, v] of Object.entries(prev)) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
  }
}

/** Console output of `fn` (log and error). */
async function captured(fn: () => Promise<unknown>): Promise<string> {
  const out: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = console.error = (...a: unknown[]) => out.push(a.join(" "));
  try {
    await fn();
  } finally {
    [console.log, console.error] = [log, error];
  }
  return out.join("\n");
}

Deno.test("sae tune --shape: MxNxK:LAYOUT, else a one-line error", () => {
  assert.deepEqual(parseShape("512x288x64:NT"), {
    M: 512,
    N: 288,
    K: 64,
    transA: false,
    transB: true,
  });
  assert.deepEqual(parseShape("3x4x5:TN"), { M: 3, N: 4, K: 5, transA: true, transB: false });
  for (const bad of ["512x288:NT", "512x288x64", "0x4x4:NN", "4x4x4:NX"]) {
    assert.throws(() => parseShape(bad), (e: unknown) => {
      assert.ok(e instanceof UserError && !e.message.includes("\n"));
      assert.match(e.message, /is not MxNxK:LAYOUT/);
      return true;
    });
  }
});

Deno.test("sae tune: times a session's GEMMs and the shapes, caches the fastest", async () => {
  await withTemp(async (dir) => {
    await withEnv({ SAE_ADAPTER_CLASS: "gpu", SAE_CACHE_DIR: dir }, async () => {
      const args = ["--set", "d_in=16", "--set", "d_sae=32", "--set", "batch=24"];
      let status = -1;
      const out = await captured(async () => {
        status = await main(["tune", ...args, "--shape", "9x10x11:TT"]);
      });
      assert.equal(status, 0, out);
      const file: TileCacheFile = JSON.parse(await Deno.readTextFile(join(dir, "gemm-tiles.json")));
      const shapes = file.entries.map((e) => e.shape).sort();
      // The step's encoder and dF (NT), decoder (NN), weight gradients (TN), and the shape.
      assert.deepEqual(shapes, [
        "NN f32 v4 M32 N16 K32",
        "NT f32 v4 M32 N32 K16",
        "TN f32 v4 M32 N16 K32",
        "TT f32 s M16 N16 K16",
      ]);
      assert.equal((out.match(/<- chosen/g) ?? []).length, 4, out);
    });
  });
});

Deno.test("sae tune on a CPU adapter: nothing timed, nothing written", async () => {
  await withTemp(async (dir) => {
    await withEnv({ SAE_ADAPTER_CLASS: "cpu", SAE_CACHE_DIR: dir }, async () => {
      let status = -1;
      const out = await captured(async () => {
        status = await main(["tune", "--no-session", "--shape", "8x8x8:NN"]);
      });
      assert.equal(status, 0);
      assert.match(out, /runs no tiled GEMMs: nothing to time/);
      assert.deepEqual([...Deno.readDirSync(dir)], []);
    });
  });
});
