/**
 * SIGINT/SIGTERM while a run trains: the first signal is recorded for the loop to see at the end of
 * its current step (it then checkpoints and stops); a second one exits at once.
 */

/** The signal received so far, or null. */
export interface SignalState {
  received: "SIGINT" | "SIGTERM" | null;
}

/** Installs the listeners; `remove()` takes them away again. */
export function listenForSignals(): { state: SignalState; remove: () => void } {
  const state: SignalState = { received: null };
  const installed: [Deno.Signal, () => void][] = [];
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    const handler = () => {
      if (state.received !== null) {
        // Checkpoint writes are atomic, so leaving now cannot corrupt one.
        console.error(`${sig} again: exiting without waiting for the checkpoint`);
        Deno.exit(sig === "SIGINT" ? 130 : 143);
      }
      state.received = sig;
    };
    try {
      Deno.addSignalListener(sig, handler);
      installed.push([sig, handler]);
    } catch {
      // Not available on this platform (SIGTERM on Windows): the default action stays.
    }
  }
  return {
    state,
    remove() {
      for (const [sig, handler] of installed) Deno.removeSignalListener(sig, handler);
    },
  };
}
