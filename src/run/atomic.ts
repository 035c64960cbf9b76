/**
 * Atomic file replacement: write a temporary file next to the target, fsync it, rename it over
 * the target. Readers see the old file or the new one, never a half-written one.
 *
 * @example
 * ```ts
 * import { atomicWrite } from "./atomic.ts";
 * await atomicWrite("runs/x/config.yaml", "steps: 10\n");
 * ```
 */

import { dirname } from "node:path";

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
  const tmp = `${path}.tmp-${randomSuffix()}`;
  const file = await Deno.open(tmp, { write: true, createNew: true });
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
  }
  await syncDir(dirname(path));
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
  ) {}

  /** Creates the temporary file beside `path` (never touching `path` itself). */
  static async create(path: string): Promise<AtomicFile> {
    const tmp = `${path}.tmp-${randomSuffix()}`;
    const file = await Deno.open(tmp, { write: true, createNew: true });
    return new AtomicFile(path, tmp, file);
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
  }
}
