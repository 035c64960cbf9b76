/**
 * What an interrupted process must undo before it exits: temporary files and staging directories
 * of writes in progress (src/run/atomic.ts), and the locks it holds (src/run/lock.ts). Each
 * registers a synchronous undo while it is in progress and unregisters it when done;
 * {@link runCleanupsSync} runs whatever is registered (src/run/signals.ts calls it on SIGINT and
 * SIGTERM just before exiting), so Ctrl-C never leaves a temporary file or a held lock behind.
 *
 * @example
 * ```ts
 * import { registerCleanup } from "./cleanup.ts";
 * const done = registerCleanup(() => Deno.removeSync("out.tmp"));
 * // ... write out.tmp, rename it ...
 * done();
 * ```
 */

const cleanups = new Set<() => void>();

/** Registers `undo` (synchronous, must not throw past itself); returns the unregistering call. */
export function registerCleanup(undo: () => void): () => void {
  cleanups.add(undo);
  return () => cleanups.delete(undo);
}

/** Runs every registered undo (newest first), ignoring their errors, and forgets them. */
export function runCleanupsSync(): void {
  for (const undo of [...cleanups].reverse()) {
    try {
      undo();
    } catch {
      // Best effort at exit: a file already gone is fine.
    }
  }
  cleanups.clear();
}
