/**
 * The tiled path's tile choices, timed by `deno task tune` (src/kernels/gemm/tune.ts) and cached
 * in a small JSON file: `$SAE_CACHE_DIR/gemm-tiles.json`, else `$XDG_CACHE_HOME/sae/`, else
 * `~/.cache/sae/`. One entry per adapter, driver and shape class ({@link shapeClass}).
 *
 * Nothing in it is trusted: a file that is not JSON of this schema is ignored whole, and an entry
 * for this adapter whose driver differs (stale) or whose tile is no longer a candidate or cannot
 * run on this device is ignored, each with a one-line warning (once per process); entries of other
 * adapters are kept as they are. Writes replace the file atomically (src/run/atomic.ts).
 *
 * @example
 * ```ts ignore
 * const tile = cachedTile(gpu, spec, false) ?? GEMM_TILE.tiled;
 * ```
 */
import { dirname, join } from "node:path";
import type { Gpu } from "../../gpu/device.ts";
import { atomicWrite } from "../../run/atomic.ts";
import { type GemmSpec, layoutName } from "./spec.ts";
import { tiledTileProblem } from "./tiled.ts";
import { TILED_CANDIDATES, type TiledTile } from "./tiles.ts";
import { vec4Ok } from "./vec4.ts";

/** The schema tag of the cache file; a file with another one is ignored. */
export const TILE_CACHE_SCHEMA = "sae-gemm-tiles/1";

/** One timed choice. */
export interface TileEntry {
  /** The adapter ({@link adapterKey}). */
  adapter: string;
  /** The driver and WebGPU implementation ({@link driverKey}). */
  driver: string;
  /** The shape class ({@link shapeClass}). */
  shape: string;
  tile: TiledTile;
  /** The rate the tile reached when timed (informational). */
  gflops: number;
  /** When it was timed (ISO 8601). */
  timed: string;
}

/** The cache file. */
export interface TileCacheFile {
  schema: string;
  entries: TileEntry[];
}

/** Where the cache lives (see the top of this file). */
export function tileCachePath(): string {
  const env = (k: string) => {
    try {
      return Deno.env.get(k) || undefined;
    } catch {
      return undefined;
    }
  };
  const dir = env("SAE_CACHE_DIR") ??
    join(env("XDG_CACHE_HOME") ?? join(env("HOME") ?? ".", ".cache"), "sae");
  return join(dir, "gemm-tiles.json");
}

/** The adapter an entry belongs to: vendor, architecture, device and description. */
export function adapterKey(gpu: Gpu): string {
  const i = gpu.adapterInfo;
  return [i.vendor, i.architecture, i.device, i.description].join(" | ");
}

/**
 * The driver an entry was timed with: Deno (its WebGPU implementation compiles the WGSL) and,
 * where the OS says, NVIDIA's driver version (WebGPU does not report drivers; Mesa's software
 * adapters name their LLVM in the description).
 */
export function driverKey(): string {
  let nvidia = "";
  try {
    nvidia = Deno.readTextFileSync("/proc/driver/nvidia/version").split("\n")[0].trim();
  } catch {
    // not NVIDIA, or not readable: the description and Deno's version stand alone
  }
  return [`deno ${Deno.version.deno}`, nvidia].filter((s) => s).join(" | ");
}

/** The power of two at or above `x`: the size bucket of a dimension. */
function bucket(x: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(x, 1)));
}

/**
 * The class of a GEMM that shares one tile choice: layout, operand storage, whether its operands
 * are read as vec4, and each dimension rounded up to a power of two ("NT f32 v4 M1024 N4096
 * K512").
 */
export function shapeClass(
  spec: Pick<GemmSpec, "M" | "N" | "K" | "transA" | "transB">,
  f16: boolean,
): string {
  const v = vec4Ok(spec) ? "v4" : "s";
  return `${layoutName(spec)} ${f16 ? "f16" : "f32"} ${v} M${bucket(spec.M)} N${bucket(spec.N)} ` +
    `K${bucket(spec.K)}`;
}

const warned = new Set<string>();

function warn(msg: string): void {
  if (warned.has(msg)) return;
  warned.add(msg);
  console.warn(`warning: ${msg}`);
}

/** The file's text, parsed and checked, or null (absent: silently; unreadable or invalid: warned). */
function readCache(path: string): TileCacheFile | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      warn(`GEMM tile cache ${path} unreadable (${(e as Error).message}): ignored`);
    }
    return null;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    warn(`GEMM tile cache ${path} is not JSON: ignored (delete it or run 'deno task tune')`);
    return null;
  }
  const f = data as Partial<TileCacheFile>;
  if (
    typeof f !== "object" || f === null || f.schema !== TILE_CACHE_SCHEMA ||
    !Array.isArray(f.entries) || !f.entries.every(entryShapeOk)
  ) {
    warn(`GEMM tile cache ${path} is not a ${TILE_CACHE_SCHEMA} file: ignored`);
    return null;
  }
  return f as TileCacheFile;
}

function entryShapeOk(e: unknown): e is TileEntry {
  const x = e as TileEntry;
  const t = x?.tile as unknown as Record<string, unknown> | undefined;
  return typeof x === "object" && x !== null && typeof x.adapter === "string" &&
    typeof x.driver === "string" && typeof x.shape === "string" && typeof x.gflops === "number" &&
    typeof x.timed === "string" && typeof t === "object" && t !== null &&
    ["BM", "BN", "BK", "TM", "TN"].every((k) => typeof t[k] === "number");
}

/** Whether two tiles are the same. */
export function sameTile(a: TiledTile, b: TiledTile): boolean {
  return a.BM === b.BM && a.BN === b.BN && a.BK === b.BK && a.TM === b.TM && a.TN === b.TN;
}

/** Per process: the last read of each path, by its modification time. */
const memo = new Map<string, { mtime: number; file: TileCacheFile | null }>();

function loadCache(path: string): TileCacheFile | null {
  let mtime = -1;
  try {
    mtime = Deno.statSync(path).mtime?.getTime() ?? 0;
  } catch {
    // absent: readCache says so
  }
  const m = memo.get(path);
  if (m && m.mtime === mtime) return m.file;
  const file = mtime < 0 ? null : readCache(path);
  memo.set(path, { mtime, file });
  return file;
}

/**
 * The cached tile of this GEMM's shape class on this adapter and driver, or null where there is
 * none that can be trusted (see the top of this file).
 */
export function cachedTile(
  gpu: Gpu,
  spec: Pick<GemmSpec, "M" | "N" | "K" | "transA" | "transB">,
  f16: boolean,
): TiledTile | null {
  const path = tileCachePath();
  const file = loadCache(path);
  if (!file) return null;
  const adapter = adapterKey(gpu), shape = shapeClass(spec, f16);
  const e = file.entries.find((x) => x.adapter === adapter && x.shape === shape);
  if (!e) return null;
  const driver = driverKey();
  if (e.driver !== driver) {
    warn(
      `GEMM tile cache ${path}: '${shape}' was timed with ${e.driver}, this is ${driver}: ` +
        `ignored (run 'deno task tune')`,
    );
    return null;
  }
  if (!TILED_CANDIDATES.some((c) => sameTile(c, e.tile)) || tiledTileProblem(gpu, e.tile)) {
    warn(`GEMM tile cache ${path}: '${shape}' holds a tile not valid here: ignored`);
    return null;
  }
  return e.tile;
}

/**
 * Records timed choices for this adapter and driver: replaces this adapter's entries of the same
 * shapes (and any stale ones of it), keeps the rest of a valid file, and writes it atomically.
 * Returns the path written.
 */
export async function storeTiles(
  gpu: Gpu,
  choices: { shape: string; tile: TiledTile; gflops: number }[],
): Promise<string> {
  const path = tileCachePath();
  const adapter = adapterKey(gpu), driver = driverKey();
  const old = loadCache(path)?.entries ?? [];
  const shapes = new Set(choices.map((c) => c.shape));
  const timed = new Date().toISOString();
  const entries = [
    ...old.filter((e) => e.adapter !== adapter || (e.driver === driver && !shapes.has(e.shape))),
    ...choices.map((c) => ({
      adapter,
      driver,
      shape: c.shape,
      tile: c.tile,
      gflops: c.gflops,
      timed,
    })),
  ];
  await Deno.mkdir(dirname(path), { recursive: true });
  await atomicWrite(path, JSON.stringify({ schema: TILE_CACHE_SCHEMA, entries }, null, 1) + "\n");
  memo.delete(path);
  return path;
}
