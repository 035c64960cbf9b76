/**
 * Directory locks: a command that writes into a directory over time (a run directory, a harvest's
 * or an ablation's output) holds `DIR/.lock` while it does, so a second command aimed at the same
 * directory is refused at once with one line naming the holder, instead of the two interleaving
 * their files.
 *
 * The lock is the operating system's advisory lock on `DIR/.lock` (flock: `Deno.FsFile.tryLock`),
 * which the kernel releases when its process ends however it ends, so a lock can never outlive its
 * holder; the file holds JSON naming the holder (pid, host, start time, command) for the message of
 * a refused command. A holder removes the file when it releases the lock, also on Ctrl-C
 * (src/run/cleanup.ts). A file still naming a holder that is gone (SIGKILL, a crash, a reboot) is a
 * stale lock: the next command takes it over and says whose it was. Liveness needs no pid checks
 * (Deno reads /proc only with --allow-all, and signals a process only with --allow-run).
 *
 * @example
 * ```ts
 * import { DirLock } from "./lock.ts";
 * const lock = await DirLock.acquire("runs/demo", "sae train");
 * try {
 *   // ... write into runs/demo ...
 * } finally {
 *   await lock.release();
 * }
 * ```
 */
import { join } from "node:path";
import { UserError } from "../errors.ts";
import { registerCleanup } from "./cleanup.ts";

/** The lock file's name inside the locked directory. */
export const LOCK_FILE = ".lock";

/** What a lock file holds. */
export interface LockInfo {
  pid: number;
  host: string;
  /** When the lock was taken (ISO 8601). */
  started: string;
  /** The command holding it ("sae train", "sae harvest", ...). */
  command: string;
}

/** Options of {@link DirLock.acquire}. */
export interface LockOptions {
  /** Where notes (a stale lock taken over, a filesystem without locks) go (default: stderr). */
  log?: (line: string) => void;
}

function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}

function parseLock(text: string): LockInfo | null {
  try {
    const v = JSON.parse(text);
    if (
      typeof v === "object" && v !== null && Number.isSafeInteger(v.pid) &&
      typeof v.host === "string" && typeof v.started === "string" &&
      typeof v.command === "string"
    ) return v as LockInfo;
  } catch {
    // Empty (being written, or released) or not ours.
  }
  return null;
}

function describe(info: LockInfo): string {
  return `${info.command} (pid ${info.pid} on ${info.host}, since ${info.started})`;
}

async function readAll(file: Deno.FsFile): Promise<string> {
  await file.seek(0, Deno.SeekMode.Start);
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await file.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
  }
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return new TextDecoder().decode(out);
}

/** Whether the open `file` is still the file at `path` (not removed or replaced meanwhile). */
async function stillAt(file: Deno.FsFile, path: string): Promise<boolean> {
  const [a, b] = [await file.stat(), await Deno.stat(path).catch(() => null)];
  return b !== null && a.ino === b.ino && a.dev === b.dev;
}

/** A lock on a directory, held until {@link DirLock.release}. */
export class DirLock {
  private readonly undo: () => void;

  private constructor(
    /** The lock file. */
    public path: string,
    /** What the lock file says. */
    readonly info: LockInfo,
    /** The open, locked file (null where the filesystem has no locks). */
    private readonly file: Deno.FsFile | null,
  ) {
    this.undo = registerCleanup(() => this.releaseSync());
  }

  /**
   * Locks `dir` (which must exist) for `command`. A lock another process holds is a UserError
   * naming it; a stale lock file is taken over with a note. Errors of the filesystem (a read-only
   * directory) are thrown as they are, for the caller to name.
   */
  static async acquire(dir: string, command: string, opts: LockOptions = {}): Promise<DirLock> {
    const log = opts.log ?? ((line: string) => console.error(line));
    const path = join(dir, LOCK_FILE);
    const info: LockInfo = {
      pid: Deno.pid,
      host: hostName(),
      started: new Date().toISOString(),
      command,
    };
    for (let attempt = 0; attempt < 5; attempt++) {
      const file = await Deno.open(path, { read: true, write: true, create: true });
      let locked: boolean;
      try {
        locked = await file.tryLock(true);
      } catch (err) {
        file.close();
        log(
          `warning: cannot lock ${dir} (${
            err instanceof Error ? err.message : err
          }): a second command writing into it would not be refused`,
        );
        return new DirLock(path, info, null);
      }
      if (!locked) {
        // The holder writes its name just after taking the lock: give it a moment to.
        let other = parseLock(await readAll(file).catch(() => ""));
        for (let i = 0; other === null && i < 25; i++) {
          await new Promise((r) => setTimeout(r, 20));
          other = parseLock(await readAll(file).catch(() => ""));
        }
        file.close();
        throw new UserError(
          `${dir} is in use by ${other ? describe(other) : "another command"}; wait for it to ` +
            `end (or stop it) and run this again`,
        );
      }
      // The holder before us may have removed the file after we opened it: lock the one there.
      if (!(await stillAt(file, path))) {
        file.close();
        continue;
      }
      const previous = parseLock(await readAll(file));
      if (previous) {
        log(
          `note: ${dir} was locked by ${describe(previous)}, which is no longer running; ` +
            `taking over`,
        );
      }
      await file.truncate(0);
      await file.seek(0, Deno.SeekMode.Start);
      const bytes = new TextEncoder().encode(JSON.stringify(info) + "\n");
      for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
      return new DirLock(path, info, file);
    }
    throw new UserError(`cannot lock ${dir}: its lock file ${path} keeps changing; try again`);
  }

  /** The lock's directory was renamed to `dir` (a staging directory swapped into place). */
  movedTo(dir: string): void {
    this.path = join(dir, LOCK_FILE);
  }

  /** Removes the lock file (if it is still this lock's) and releases the lock. */
  async release(): Promise<void> {
    this.undo();
    if (this.file === null) return;
    try {
      if (await stillAt(this.file, this.path)) await Deno.remove(this.path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    } finally {
      this.file.close();
    }
  }

  private releaseSync(): void {
    if (this.file === null) return;
    try {
      const [a, b] = [this.file.statSync(), Deno.statSync(this.path)];
      if (a.ino === b.ino && a.dev === b.dev) Deno.removeSync(this.path);
    } finally {
      this.file.close();
    }
  }
}
