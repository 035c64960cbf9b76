/**
 * Output paths a command is given, checked before the work that produces them (an evaluation, a
 * corpus, a report may take minutes): a file path that names a directory, a directory that does
 * not exist or one that refuses writes is a one-line UserError at once, naming the flag. A write
 * that still fails later (disk full) is one line too, naming the file.
 *
 * @example
 * ```ts
 * import { checkOutputFile, writingTo } from "./output.ts";
 * import { atomicWrite } from "./atomic.ts";
 * await checkOutputFile("runs/demo/eval.json", "--out");
 * await writingTo("runs/demo/eval.json", "--out", () => atomicWrite("runs/demo/eval.json", "{}"));
 * ```
 */
import { dirname } from "node:path";
import { UserError } from "../errors.ts";
import { tempPathFor } from "./atomic.ts";

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Checks that `path` can be written as a file: it is not a directory, its directory exists and
 * accepts a new file (a probe file beside `path` is created and removed).
 */
export async function checkOutputFile(path: string, flag: string): Promise<void> {
  const info = await Deno.stat(path).catch(() => null);
  if (info?.isDirectory) {
    throw new UserError(`${flag} ${path} is a directory; give the path of a file to write`);
  }
  await checkOutputDir(dirname(path), flag, path);
}

/**
 * Checks that the directory `dir` exists and accepts a new file (`what`: the output named in
 * messages, default `dir`).
 */
async function checkOutputDir(dir: string, flag: string, what = dir): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new UserError(
        `${flag} ${what}: the directory ${dir} does not exist; create it or choose another ${flag}`,
      );
    }
    if (err instanceof Deno.errors.NotADirectory) {
      throw new UserError(`${flag} ${what}: ${dir} is not a directory; choose another ${flag}`);
    }
    throw new UserError(`${flag} ${what}: cannot use ${dir}: ${message(err)}`);
  }
  if (!info.isDirectory) {
    throw new UserError(`${flag} ${what}: ${dir} is not a directory; choose another ${flag}`);
  }
  const probe = tempPathFor(`${dir}/.write-probe`);
  try {
    (await Deno.open(probe, { write: true, createNew: true })).close();
  } catch (err) {
    throw new UserError(
      `cannot write ${what}: ${message(err)} (in ${dir}); choose a writable ${flag}`,
    );
  }
  await Deno.remove(probe).catch(() => {});
}

/** Runs the write `fn` of `path`; an error of the system becomes one line naming the file. */
export async function writingTo<T>(path: string, flag: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UserError) throw err;
    if (err instanceof Deno.errors.PermissionDenied || /\(os error \d+\)/.test(message(err))) {
      throw new UserError(
        `cannot write ${path}: ${message(err)}; nothing was replaced: free space or choose a ` +
          `writable ${flag}`,
      );
    }
    throw err;
  }
}
