/**
 * Tile choice by timing: for a GEMM on the tiled path, each candidate tile (TILED_CANDIDATES that
 * fit the device) runs the GEMM's shape on scratch operands, timed per dispatch by the profiler
 * (GPU timestamp queries where the adapter has trustworthy ones, src/gpu/profile.ts); the fastest
 * is recorded in the tile cache (cache.ts) for this adapter, driver and shape class.
 *
 * When it runs: `deno task tune` (src/cli/tune.ts) times every GEMM a training session of a config
 * builds, and any explicit shapes; with SAE_GEMM_TUNE=1 in the environment any session times the
 * shape classes the cache lacks while it builds its dispatches (once per class and process).
 * Otherwise choices come from the cache, else the size rule of choose.ts.
 */
import type { Gpu } from "../../gpu/device.ts";
import { type Dispatch, run } from "../../gpu/dispatch.ts";
import { Profiler } from "../../gpu/profile.ts";
import { cachedTile, shapeClass, storeTiles } from "./cache.ts";
import { tiledF16, tiledTile } from "./choose.ts";
import { gemmDispatches } from "./mod.ts";
import { gemmFlops, type GemmOptions, type GemmSpec } from "./spec.ts";
import { tiledTileProblem } from "./tiled.ts";
import { TILED_CANDIDATES, type TiledTile } from "./tiles.ts";

/** What tuning does: nothing, time the classes the cache lacks, or time every class met. */
export type TuneMode = "off" | "missing" | "all";

/** The timing of one shape class. */
export interface TuneResult {
  shape: string;
  /** The GEMM that was timed (the first of its class). */
  spec: Pick<GemmSpec, "M" | "N" | "K" | "transA" | "transB">;
  /** GFLOP/s of each candidate that fits the device (product dispatches only). */
  rates: { tile: TiledTile; gflops: number }[];
  best: TiledTile;
}

const modes = new WeakMap<Gpu, TuneMode>();
const done = new WeakMap<Gpu, Map<string, TuneResult>>();

/** Sets what tuning does on this Gpu (overrides SAE_GEMM_TUNE); null: back to the environment's. */
export function setTuning(gpu: Gpu, mode: TuneMode | null): void {
  if (mode) modes.set(gpu, mode);
  else modes.delete(gpu);
}

/** The tuning mode: setTuning's, else "missing" where SAE_GEMM_TUNE=1, else "off". */
function tuningMode(gpu: Gpu): TuneMode {
  const set = modes.get(gpu);
  if (set) return set;
  try {
    return Deno.env.get("SAE_GEMM_TUNE") === "1" ? "missing" : "off";
  } catch {
    return "off";
  }
}

/** The classes timed on this Gpu so far, in order. */
export function tuneResults(gpu: Gpu): TuneResult[] {
  return [...done.get(gpu)?.values() ?? []];
}

/**
 * The tile of a GEMM on the tiled path: the option; else, where tuning asks for it, the timed
 * choice (timed now unless already timed in this process, or cached and the mode is "missing");
 * else choose.ts' choice (the cached tile, or the size rule).
 */
export async function resolveTiledTile(
  gpu: Gpu,
  spec: GemmSpec,
  opts: GemmOptions,
): Promise<TiledTile> {
  if (opts.tiledTile) return opts.tiledTile;
  const mode = tuningMode(gpu);
  const f16 = tiledF16(gpu, opts);
  const shape = shapeClass(spec, f16);
  const timed = done.get(gpu)?.get(shape);
  if (timed) return timed.best;
  if (mode === "all" || (mode === "missing" && !cachedTile(gpu, spec, f16))) {
    return (await timeTiles(gpu, spec, f16)).best;
  }
  return tiledTile(gpu, spec, opts);
}

/**
 * Seconds per run of `list`'s products: with GPU timestamps (src/gpu/profile.ts decides where
 * they are trusted) the product dispatches' times (the f16 conversions left out), median of 5;
 * else host clocks around whole runs (conversions in: the same for every tile), best of 3 timings
 * of 3 runs: a host clock cannot time one small dispatch.
 */
async function productSeconds(gpu: Gpu, list: Dispatch[]): Promise<number> {
  const prof = new Profiler(gpu, list.length);
  try {
    if (prof.method === "timestamps") {
      await prof.run(list); // warm-up: pipelines compiled, caches filled
      const runs: number[] = [];
      for (let r = 0; r < 5; r++) {
        const ms = await prof.run(list);
        runs.push(list.reduce((s, d, i) => s + ((d.cost?.flops ?? 0) > 0 ? ms[i] : 0), 0));
      }
      return runs.sort((a, b) => a - b)[2] / 1e3;
    }
  } finally {
    prof.destroy();
  }
  run(gpu, list);
  await gpu.sync();
  let best = Infinity;
  for (let t = 0; t < 3; t++) {
    const t0 = performance.now();
    for (let r = 0; r < 3; r++) run(gpu, list);
    await gpu.sync();
    best = Math.min(best, (performance.now() - t0) / 3 / 1e3);
  }
  return best;
}

/**
 * Times every candidate tile on this GEMM's shape (epilogue left out: the choice is per shape
 * class), records the fastest in the tile cache and returns the timing.
 */
async function timeTiles(gpu: Gpu, spec: GemmSpec, f16: boolean): Promise<TuneResult> {
  const shape = shapeClass(spec, f16);
  const { M, N, K, transA, transB } = spec;
  const probe: GemmSpec = { label: `tune ${shape}`, M, N, K, transA, transB, epilogue: "none" };
  const fill = (n: number) => {
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
    return x;
  };
  const bufs = {
    a: gpu.upload("tune a", fill(M * K)),
    b: gpu.upload("tune b", fill(K * N)),
    c: gpu.buffer("tune c", 4 * M * N),
  };
  const rates: TuneResult["rates"] = [];
  try {
    for (const tile of TILED_CANDIDATES) {
      if (tiledTileProblem(gpu, tile)) continue;
      const list = await gemmDispatches(gpu, probe, bufs, { path: "tiled", tiledTile: tile, f16 });
      rates.push({ tile, gflops: gemmFlops(probe) / await productSeconds(gpu, list) / 1e9 });
    }
  } finally {
    for (const b of Object.values(bufs)) gpu.destroyBuffer(b);
  }
  const top = rates.reduce((a, b) => (b.gflops > a.gflops ? b : a));
  const result: TuneResult = { shape, spec: { M, N, K, transA, transB }, rates, best: top.tile };
  let byShape = done.get(gpu);
  if (!byShape) done.set(gpu, byShape = new Map());
  byShape.set(shape, result);
  await storeTiles(gpu, [{ shape, tile: top.tile, gflops: top.gflops }]);
  return result;
}
