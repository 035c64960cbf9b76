/**
 * Atomic file replacement: write a temporary file next to the target, fsync it, rename it over
 * the target. Readers see the old file or the new one, never a half-written one. Directories get
 * the same treatment ({@link StagingDir}: written beside the target, swapped in when complete).
 * A write in progress registers its temporary file with src/run/cleanup.ts, so an interrupted
 * process removes it before exiting.
 *
 * @example
 * ```ts
 * import { atomicWrite } from "./atomic.ts";
 * await atomicWrite("runs/x/config.yaml", "steps: 10\n");
 * ```
 */

import { basename, dirname, join } from "node:path";
import { registerCleanup } from "./cleanup.ts";

/**
 * Whether `path` exists; with `follow: false` a link counts itself (lstat), so a dangling link
 * exists. Errors other than not-found (permissions) are thrown.
 */
export async function pathExists(path: string, follow = true): Promise<boolean> {
  try {
    await (follow ? Deno.stat(path) : Deno.lstat(path));
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Writes all of `bytes` to `file` (injectable so tests can fail part-way). */
export type Writer = (file: Deno.FsFile, bytes: Uint8Array) => Promise<void>;

/** The default writer: loops until every byte is written. */
export async function writeAllBytes(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) done += await file.write(bytes.subarray(done));
}

/** Options of {@link atomicWrite}. */
export interface AtomicWriteOptions {
  /** Replaces the byte writer (tests). */
  writer?: Writer;
}

function randomSuffix(): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** A temporary name beside `path`: `path.tmp-<12 hex digits>`. */
export function tempPathFor(path: string): string {
  return `${path.replace(/\/+$/, "")}.tmp-${randomSuffix()}`;
}

/** Whether `name` is a temporary name that {@link tempPathFor} gave for the file `target`. */
export function isTempNameOf(name: string, target: string): boolean {
  const base = basename(target);
  return name.length === base.length + 17 && name.startsWith(`${base}.tmp-`) &&
    /^[0-9a-f]{12}$/.test(name.slice(base.length + 5));
}

/**
 * Removes temporary files of `targets` (paths) left by a write killed before its rename, e.g. by
 * SIGKILL. Call it only while holding the directory's lock (src/run/lock.ts), where no other
 * process is writing them. Returns the names removed.
 */
export async function removeStaleTemps(targets: string[]): Promise<string[]> {
  const removed: string[] = [];
  const byDir = new Map<string, string[]>();
  for (const t of targets) byDir.set(dirname(t), [...(byDir.get(dirname(t)) ?? []), t]);
  for (const [dir, files] of byDir) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      throw err;
    }
    for (const e of entries) {
      if (e.isFile && files.some((t) => isTempNameOf(e.name, t))) {
        await Deno.remove(join(dir, e.name)).catch(() => {});
        removed.push(e.name);
      }
    }
  }
  return removed;
}

/**
 * Replaces `path` with `data` atomically: `path.tmp-<random>` in the same directory is written,
 * synced and renamed over `path`; on any failure the temporary file is removed and the error
 * rethrown, leaving `path` as it was.
 */
export async function atomicWrite(
  path: string,
  data: Uint8Array | string,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const writer = options.writer ?? writeAllBytes;
  const tmp = tempPathFor(path);
  const file = await Deno.open(tmp, { write: true, createNew: true });
  const done = registerCleanup(() => Deno.removeSync(tmp));
  try {
    try {
      await writer(file, bytes);
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  } finally {
    done();
  }
  await syncDir(dirname(path));
}

/**
 * Replaces several files together: every temporary file is written and synced first, then they
 * are renamed over their targets one after the other. A failed write leaves every target as it
 * was (a report's HTML and its plots never mix two versions); only a failure between the renames,
 * which move no data, could.
 */
export async function atomicWriteAll(
  files: [string, Uint8Array | string][],
  options: AtomicWriteOptions = {},
): Promise<void> {
  const staged: AtomicFile[] = [];
  try {
    for (const [path, data] of files) {
      const f = await AtomicFile.create(path);
      staged.push(f);
      await (options.writer ?? writeAllBytes)(
        f.handle,
        typeof data === "string" ? new TextEncoder().encode(data) : data,
      );
    }
  } catch (err) {
    for (const f of staged) await f.abort();
    throw err;
  }
  for (let i = 0; i < staged.length; i++) {
    try {
      await staged[i].commit();
    } catch (err) {
      for (const f of staged.slice(i + 1)) await f.abort();
      throw err;
    }
  }
}

/** Makes the rename itself durable where the platform allows syncing a directory. */
async function syncDir(dir: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the data itself is already synced.
  }
}

/**
 * A file written in parts that appears at `path` only on {@link AtomicFile.commit}: the parts go
 * to `path.tmp-<random>`, which commit syncs and renames over `path`; {@link AtomicFile.abort}
 * removes it. For files too large to assemble in memory first (activation shards).
 */
export class AtomicFile {
  /** Bytes written so far. */
  size = 0;

  private constructor(
    /** The final path. */
    readonly path: string,
    /** The temporary path written until commit. */
    readonly tmp: string,
    private readonly file: Deno.FsFile,
    private readonly done: () => void,
  ) {}

  /** Creates the temporary file beside `path` (never touching `path` itself). */
  static async create(path: string): Promise<AtomicFile> {
    const tmp = tempPathFor(path);
    const file = await Deno.open(tmp, { write: true, createNew: true });
    return new AtomicFile(path, tmp, file, registerCleanup(() => Deno.removeSync(tmp)));
  }

  /** The open temporary file (for a caller's own writer). */
  get handle(): Deno.FsFile {
    return this.file;
  }

  /** Appends `bytes`. */
  async write(bytes: Uint8Array): Promise<void> {
    await writeAllBytes(this.file, bytes);
    this.size += bytes.byteLength;
  }

  /** Overwrites bytes already written at `pos` (a header whose counts were not known first). */
  async writeAt(pos: number, bytes: Uint8Array): Promise<void> {
    if (pos + bytes.byteLength > this.size) throw new Error("writeAt past the written bytes");
    await this.file.seek(pos, Deno.SeekMode.Start);
    await writeAllBytes(this.file, bytes);
    await this.file.seek(0, Deno.SeekMode.End);
  }

  /** Syncs the file and renames it over `path`; on failure the temporary file is removed. */
  async commit(): Promise<void> {
    try {
      try {
        await this.file.sync();
      } finally {
        this.file.close();
      }
      await Deno.rename(this.tmp, this.path);
    } catch (err) {
      await Deno.remove(this.tmp).catch(() => {});
      throw err;
    } finally {
      this.done();
    }
    await syncDir(dirname(this.path));
  }

  /** Closes and removes the temporary file; `path` is left as it was. */
  async abort(): Promise<void> {
    try {
      this.file.close();
    } catch {
      // Already closed by a failed commit.
    }
    await Deno.remove(this.tmp).catch(() => {});
    this.done();
  }
}

/**
 * Puts the complete directory `staging` in the place of `target`: a rename when `target` does not
 * exist; otherwise `target` is renamed aside to `target.old-<hex>`, `staging` renamed to `target`,
 * and the old one removed. Until the second rename the old directory is whole (an interrupted swap
 * renames it back); both renames are within one parent directory, so nothing is copied.
 */
export async function swapDir(staging: string, target: string): Promise<void> {
  target = target.replace(/\/+$/, "");
  let exists = true;
  try {
    await Deno.lstat(target);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    exists = false;
  }
  if (!exists) {
    await Deno.rename(staging, target);
    await syncDir(dirname(target));
    return;
  }
  const old = `${target}.old-${randomSuffix()}`;
  await Deno.rename(target, old);
  const undo = registerCleanup(() => Deno.renameSync(old, target));
  try {
    await Deno.rename(staging, target);
  } catch (err) {
    await Deno.rename(old, target);
    throw err;
  } finally {
    undo();
  }
  await syncDir(dirname(target));
  await Deno.remove(old, { recursive: true });
}

/**
 * A directory written beside its target (`target.tmp-<hex>`) and swapped in by
 * {@link StagingDir.commit} once complete ({@link swapDir}); until then `target` is untouched,
 * and an interrupted process removes the staging directory (src/run/cleanup.ts).
 */
export class StagingDir {
  private constructor(
    /** The directory it will replace. */
    readonly target: string,
    /** Where the files are written until commit. */
    readonly path: string,
    private readonly done: () => void,
  ) {}

  /** Creates the staging directory beside `target`. */
  static async create(target: string): Promise<StagingDir> {
    const path = tempPathFor(target);
    await Deno.mkdir(path);
    const done = registerCleanup(() => Deno.removeSync(path, { recursive: true }));
    return new StagingDir(target, path, done);
  }

  /** Swaps the staging directory in for the target. */
  async commit(): Promise<void> {
    try {
      await swapDir(this.path, this.target);
    } catch (err) {
      await this.abort();
      throw err;
    }
    this.done();
  }

  /** Removes the staging directory; the target is left as it was. */
  async abort(): Promise<void> {
    await Deno.remove(this.path, { recursive: true }).catch(() => {});
    this.done();
  }
}
