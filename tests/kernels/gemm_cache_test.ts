import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "../../src/gpu/device.ts";
import type { ComputeDispatch } from "../../src/gpu/dispatch.ts";
import {
  adapterKey,
  cachedTile,
  driverKey,
  shapeClass,
  storeTiles,
  TILE_CACHE_SCHEMA,
  tileCachePath,
  type TileEntry,
} from "../../src/kernels/gemm/cache.ts";
import { tiledTile } from "../../src/kernels/gemm/choose.ts";
import {
  GEMM_TILE,
  gemmDispatches,
  type GemmSpec,
  TILED_CANDIDATES,
} from "../../src/kernels/gemm/mod.ts";
import { resolveTiledTile, setTuning, tuneResults } from "../../src/kernels/gemm/tune.ts";
import { withTemp } from "../helpers/check.ts";

const spec: GemmSpec = {
  label: "cache",
  M: 300,
  N: 260,
  K: 64,
  transA: false,
  transB: true,
  epilogue: "none",
};
// A candidate other than the size rule's choice for this shape (GEMM_TILE.tiledSmall).
const OTHER = TILED_CANDIDATES.find((t) =>
  t.BM !== GEMM_TILE.tiledSmall.BM && t.BN === GEMM_TILE.tiledSmall.BN
)!;

/** Runs `fn` with SAE_CACHE_DIR a fresh directory and console.warn captured. */
async function withCache(fn: (dir: string, warnings: string[]) => Promise<void>): Promise<void> {
  await withTemp(async (dir) => {
    const prev = Deno.env.get("SAE_CACHE_DIR");
    const warn = console.warn;
    const warnings: string[] = [];
    Deno.env.set("SAE_CACHE_DIR", dir);
    console.warn = (...a: unknown[]) => warnings.push(a.join(" "));
    try {
      await fn(dir, warnings);
    } finally {
      console.warn = warn;
      if (prev === undefined) Deno.env.delete("SAE_CACHE_DIR");
      else Deno.env.set("SAE_CACHE_DIR", prev);
    }
  });
}

/** A cache file holding `entries`. */
async function writeCache(dir: string, entries: unknown[], schema = TILE_CACHE_SCHEMA) {
  await Deno.writeTextFile(join(dir, "gemm-tiles.json"), JSON.stringify({ schema, entries }));
}

async function entry(over: Partial<TileEntry> = {}): Promise<TileEntry> {
  const gpu = await getGpu();
  return {
    adapter: adapterKey(gpu),
    driver: driverKey(),
    shape: shapeClass(spec, false),
    tile: OTHER,
    gflops: 1,
    timed: "2025-01-01T00:00:00.000Z",
    ...over,
  };
}

Deno.test("gemm tile cache: where it lives", async () => {
  await withCache((dir) => {
    assert.equal(tileCachePath(), join(dir, "gemm-tiles.json"));
    return Promise.resolve();
  });
});

Deno.test("gemm tile cache: a valid entry changes the tile the tiled path runs", async () => {
  const gpu = await getGpu();
  await withCache(async (dir, warnings) => {
    assert.deepEqual(tiledTile(gpu, spec, {}), GEMM_TILE.tiledSmall, "no cache: the size rule");
    await writeCache(dir, [await entry()]);
    assert.deepEqual(cachedTile(gpu, spec, false), OTHER);
    assert.deepEqual(tiledTile(gpu, spec, {}), OTHER);
    // Another shape class, and f16 storage of this one, have no entry.
    assert.equal(cachedTile(gpu, { ...spec, K: 4096 }, false), null);
    assert.equal(cachedTile(gpu, spec, true), null);
    const buf = gpu.buffer("x", 4 * 300 * 260);
    const [d] = await gemmDispatches(gpu, spec, { a: buf, b: buf, c: buf }, { path: "tiled" });
    const groups = (d as ComputeDispatch).groups;
    assert.deepEqual(groups, [Math.ceil(260 / OTHER.BN), Math.ceil(300 / OTHER.BM), 1]);
    buf.destroy();
    assert.deepEqual(warnings, []);
  });
});

Deno.test("gemm tile cache: a corrupt file is ignored with one warning", async () => {
  const gpu = await getGpu();
  await withCache(async (dir, warnings) => {
    await Deno.writeTextFile(join(dir, "gemm-tiles.json"), '{"schema": "sae-gemm-tiles/1", "ent');
    assert.equal(cachedTile(gpu, spec, false), null);
    assert.equal(cachedTile(gpu, spec, false), null);
    assert.deepEqual(tiledTile(gpu, spec, {}), GEMM_TILE.tiledSmall);
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(warnings[0], /gemm-tiles\.json is not JSON: ignored/);
    assert.ok(!warnings[0].includes("\n"));
  });
  // Valid JSON of another schema, or with a malformed entry: ignored whole.
  for (
    const [schema, entries] of [["sae-gemm-tiles/0", [await entry()]], [
      TILE_CACHE_SCHEMA,
      [await entry(), { ...await entry(), tile: { BM: "128" } }],
    ]] as const
  ) {
    await withCache(async (dir, warnings) => {
      await writeCache(dir, [...entries], schema);
      assert.equal(cachedTile(gpu, spec, false), null);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], /is not a sae-gemm-tiles\/1 file: ignored/);
    });
  }
});

Deno.test("gemm tile cache: stale and invalid entries are ignored with a warning", async () => {
  const gpu = await getGpu();
  const cases: [Partial<TileEntry>, RegExp | null][] = [
    [{ driver: "deno 0.1.0" }, /timed with deno 0\.1\.0, this is deno .*: ignored/],
    // Not a candidate tile (a hand edit, or a candidate since removed).
    [{ tile: { BM: 96, BN: 64, BK: 8, TM: 8, TN: 8 } }, /holds a tile not valid here: ignored/],
    // Over this device's workgroup memory.
    [{ tile: { BM: 128, BN: 128, BK: 64, TM: 8, TN: 8 } }, /holds a tile not valid here/],
    // Another adapter's entry: not this adapter's business, no warning.
    [{ adapter: "NVIDIA | hopper | 0x2330 | NVIDIA H100 80GB HBM3" }, null],
  ];
  for (const [over, why] of cases) {
    await withCache(async (dir, warnings) => {
      await writeCache(dir, [await entry(over)]);
      assert.equal(cachedTile(gpu, spec, false), null, JSON.stringify(over));
      assert.deepEqual(tiledTile(gpu, spec, {}), GEMM_TILE.tiledSmall);
      if (why) {
        assert.equal(warnings.length, 1, JSON.stringify(over));
        assert.match(warnings[0], why);
      } else {
        assert.deepEqual(warnings, []);
      }
    });
  }
});

Deno.test("gemm tile cache: writes replace this adapter's entries, keep others', atomically", async () => {
  const gpu = await getGpu();
  await withCache(async (dir) => {
    const other = await entry({ adapter: "another adapter" });
    const stale = await entry({ driver: "deno 0.1.0", shape: "NN f32 v4 M64 N64 K64" });
    const old = await entry({ tile: GEMM_TILE.tiled });
    await writeCache(dir, [other, stale, old]);
    const path = await storeTiles(gpu, [{ shape: old.shape, tile: OTHER, gflops: 5 }]);
    assert.equal(path, join(dir, "gemm-tiles.json"));
    const file = JSON.parse(await Deno.readTextFile(path));
    assert.equal(file.schema, TILE_CACHE_SCHEMA);
    assert.deepEqual(file.entries.map((e: TileEntry) => [e.adapter, e.shape, e.tile]), [
      [other.adapter, other.shape, other.tile],
      [adapterKey(gpu), old.shape, OTHER],
    ]);
    assert.deepEqual(cachedTile(gpu, spec, false), OTHER, "the new file is read back");
    // No temporary file left beside it.
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(names, ["gemm-tiles.json"]);
  });
});

Deno.test("gemm tuning: times the candidates once per class and caches the fastest", async () => {
  const gpu = await getGpu();
  const small: GemmSpec = { ...spec, M: 40, N: 36, K: 16 };
  await withCache(async () => {
    setTuning(gpu, "missing");
    try {
      const tile = await resolveTiledTile(gpu, small, {});
      const results = tuneResults(gpu);
      const mine = results.find((r) => r.shape === shapeClass(small, false))!;
      assert.ok(mine, "the class was timed");
      assert.ok(mine.rates.length >= 4, `${mine.rates.length} candidates timed`);
      assert.ok(mine.rates.every((r) => r.gflops > 0 && Number.isFinite(r.gflops)));
      assert.deepEqual(tile, mine.best);
      assert.ok(TILED_CANDIDATES.some((t) => JSON.stringify(t) === JSON.stringify(tile)));
      assert.deepEqual(cachedTile(gpu, small, false), tile, "recorded in the cache");
      // The same class again (another GEMM of it): not timed again.
      const count = tuneResults(gpu).length;
      await resolveTiledTile(gpu, { ...small, M: 39 }, {});
      assert.equal(tuneResults(gpu).length, count);
    } finally {
      setTuning(gpu, null);
    }
  });
});
