/**
 * SIGINT/SIGTERM. While a run trains (or anything else that stops gracefully registers with
 * {@link listenForSignals}), the first signal is recorded for the loop to see at the end of its
 * current step (it then checkpoints and stops); a second one exits at once. Outside such a phase,
 * the CLI's handler ({@link exitOnInterrupt}) exits at once, after removing the temporary files
 * and locks of writes in progress (src/run/cleanup.ts), so an interrupted command leaves its
 * outputs as they were.
 */
import { runCleanupsSync } from "./cleanup.ts";

/** The signal received so far, or null. */
export interface SignalState {
  received: "SIGINT" | "SIGTERM" | null;
}

/** Graceful listeners installed now (the CLI's handler leaves signals to them). */
let graceful = 0;

const exitCode = (sig: "SIGINT" | "SIGTERM") => (sig === "SIGINT" ? 130 : 143);

/**
 * Installs the listeners; `remove()` takes them away again. `onFirst` runs on the first signal
 * (e.g. to abort work that polls an AbortSignal).
 */
export function listenForSignals(
  onFirst?: (sig: "SIGINT" | "SIGTERM") => void,
): { state: SignalState; remove: () => void } {
  const state: SignalState = { received: null };
  const installed: [Deno.Signal, () => void][] = [];
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    const handler = () => {
      if (state.received !== null) {
        // Checkpoint writes are atomic, so leaving now cannot corrupt one.
        console.error(`${sig} again: exiting without waiting for the checkpoint`);
        runCleanupsSync();
        Deno.exit(exitCode(sig));
      }
      state.received = sig;
      onFirst?.(sig);
    };
    try {
      Deno.addSignalListener(sig, handler);
      installed.push([sig, handler]);
    } catch {
      // Not available on this platform (SIGTERM on Windows): the default action stays.
    }
  }
  graceful++;
  let removed = false;
  return {
    state,
    remove() {
      if (removed) return;
      removed = true;
      graceful--;
      for (const [sig, handler] of installed) Deno.removeSignalListener(sig, handler);
    },
  };
}

/**
 * The CLI's handler for the whole process: on SIGINT/SIGTERM outside a graceful phase, removes
 * what writes in progress left (temporary files, staging directories, locks), prints one line and
 * exits 130/143. Install it once, in the program's entry point only.
 */
export function exitOnInterrupt(): void {
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(sig, () => {
        if (graceful > 0) return;
        runCleanupsSync();
        console.error(
          `interrupted (${sig}); files being written were removed, earlier ones are as they were`,
        );
        Deno.exit(exitCode(sig));
      });
    } catch {
      // Not available on this platform: the default action stays.
    }
  }
}
