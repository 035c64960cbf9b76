/**
 * Directory locks: a command that writes into a directory over time (a run directory, a harvest's
 * or an ablation's output) holds `DIR/.lock` while it does, so a second command aimed at the same
 * directory is refused at once with one line naming the holder, instead of the two interleaving
 * their files.
 *
 * The lock file holds JSON: pid, host, start time, the command, a random token and (on Linux) the
 * process's start time from /proc, which tells a reused pid from the holder. It is created whole
 * (written beside, then hard-linked into place, which fails if a lock exists) and removed on
 * release; an interrupted process removes it before exiting (src/run/cleanup.ts). A lock left by
 * a process that is gone (SIGKILL, a crash, a reboot) is stale: on the same host, a pid that no
 * longer runs (or runs another process) is detected, and the lock taken over with a one-line note.
 * A lock from another host is never taken over (its process cannot be checked from here).
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
  /** Random, to tell this lock from another taken by the same pid. */
  token: string;
  /** The holder's start time in clock ticks since boot (/proc/PID/stat field 22), Linux only. */
  proc_start?: string;
}

/** Options of {@link DirLock.acquire}. */
export interface LockOptions {
  /** Where the note about a stale lock taken over goes (default: stderr). */
  log?: (line: string) => void;
}

/** Locks held by this process, by lock-file path. */
const held = new Map<string, DirLock>();

function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}

/** Field 22 of /proc/PID/stat (the start time), or null where there is no /proc or no PID. */
function procStart(pid: number): string | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count from after it.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return rest[19] ?? null;
}

/** Whether /proc can tell us about processes here. */
function haveProc(): boolean {
  return procStart(Deno.pid) !== null;
}

function randomToken(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(8)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

function parseLock(text: string): LockInfo | null {
  try {
    const v = JSON.parse(text);
    if (
      typeof v === "object" && v !== null && Number.isSafeInteger(v.pid) &&
      typeof v.host === "string" && typeof v.started === "string" &&
      typeof v.command === "string" && typeof v.token === "string"
    ) return v as LockInfo;
  } catch {
    // Not a lock of ours.
  }
  return null;
}

/**
 * Whether the holder of `info` is certainly gone: same host, and its pid is not running or is now
 * another process (its start time differs). Anything unknown counts as alive.
 */
function isStale(info: LockInfo): boolean {
  if (info.host !== hostName()) return false;
  if (info.pid === Deno.pid) return ![...held.values()].some((l) => l.info.token === info.token);
  if (!haveProc()) return false;
  const start = procStart(info.pid);
  if (start === null) return true;
  return info.proc_start !== undefined && info.proc_start !== start;
}

function describe(info: LockInfo): string {
  return `${info.command} (pid ${info.pid} on ${info.host}, since ${info.started})`;
}

/** A lock on a directory, held until {@link DirLock.release}. */
export class DirLock {
  private undo: () => void;

  private constructor(
    /** The lock file. */
    public path: string,
    /** What the lock file says. */
    readonly info: LockInfo,
  ) {
    this.undo = registerCleanup(() => this.releaseSync());
    held.set(path, this);
  }

  /**
   * Locks `dir` (which must exist) for `command`. A lock held by a live process (or one on another
   * host) is a UserError naming it and what to do; a stale one is taken over with a note.
   */
  static async acquire(dir: string, command: string, opts: LockOptions = {}): Promise<DirLock> {
    const log = opts.log ?? ((line: string) => console.error(line));
    const path = join(dir, LOCK_FILE);
    const info: LockInfo = {
      pid: Deno.pid,
      host: hostName(),
      started: new Date().toISOString(),
      command,
      token: randomToken(),
    };
    const start = procStart(Deno.pid);
    if (start !== null) info.proc_start = start;
    const text = JSON.stringify(info) + "\n";
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await createWhole(path, text)) return new DirLock(path, info);
      let existing: string;
      try {
        existing = await Deno.readTextFile(path);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) continue; // released meanwhile: try again
        throw err;
      }
      const other = parseLock(existing);
      if (other === null) {
        throw new UserError(
          `${dir} has a lock file ${path} that is not one of this tool's; delete it if no ` +
            `command is writing into ${dir}`,
        );
      }
      if (!isStale(other)) {
        const where = other.host === hostName() ? "" : ` (another host: it cannot be checked)`;
        throw new UserError(
          `${dir} is in use by ${describe(other)}${where}; wait for it to end, or if it is no ` +
            `longer running, delete ${path}`,
        );
      }
      // Only the one who removes the stale lock file may take over; a rename tells who did.
      const aside = `${path}.stale-${info.token}`;
      try {
        await Deno.rename(path, aside);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) continue;
        throw err;
      }
      const moved = parseLock(await Deno.readTextFile(aside).catch(() => ""));
      if (moved?.token !== other.token) {
        // Another process took the stale lock over between our read and our rename: that was
        // its fresh lock; put it back and report it as in use.
        await Deno.link(aside, path).catch(() => {});
        await Deno.remove(aside).catch(() => {});
        throw new UserError(
          `${dir} is in use by ${moved ? describe(moved) : "another command"}; wait for it to end`,
        );
      }
      await Deno.remove(aside).catch(() => {});
      log(`note: ${dir} was locked by ${describe(other)}, which is no longer running; taking over`);
    }
    throw new UserError(`cannot lock ${dir}: its lock file ${path} keeps changing; try again`);
  }

  /** The lock's directory was renamed to `dir` (a staging directory swapped into place). */
  movedTo(dir: string): void {
    held.delete(this.path);
    this.path = join(dir, LOCK_FILE);
    held.set(this.path, this);
  }

  /** Removes the lock file if it is still this lock's. */
  async release(): Promise<void> {
    this.undo();
    held.delete(this.path);
    try {
      const now = parseLock(await Deno.readTextFile(this.path));
      if (now?.token === this.info.token) await Deno.remove(this.path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }

  private releaseSync(): void {
    held.delete(this.path);
    const now = parseLock(Deno.readTextFileSync(this.path));
    if (now?.token === this.info.token) Deno.removeSync(this.path);
  }
}

/**
 * Writes `text` to `path` only if nothing is there, whole: written beside, then hard-linked into
 * place (a link fails when the name exists). Returns false when a file is there already.
 */
async function createWhole(path: string, text: string): Promise<boolean> {
  const tmp = `${path}.new-${randomToken()}`;
  await Deno.writeTextFile(tmp, text, { createNew: true });
  try {
    await Deno.link(tmp, path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return false;
    if (err instanceof Deno.errors.NotSupported || err instanceof Deno.errors.PermissionDenied) {
      // A filesystem without hard links: create-new is atomic too, the content follows at once.
      try {
        await Deno.writeTextFile(path, text, { createNew: true });
        return true;
      } catch (e) {
        if (e instanceof Deno.errors.AlreadyExists) return false;
        throw e;
      }
    }
    throw err;
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}
