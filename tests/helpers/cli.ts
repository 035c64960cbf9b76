/** Running the CLI in-process with its output captured. */
import { type CliIo, main } from "../../src/cli/main.ts";

/** A CliIo that keeps what the program writes to stdout and stderr. */
export function captureIo(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, writeOut: (t) => out.push(t), writeErr: (t) => err.push(t) };
}

/** What {@link runCli} saw. */
export interface CliRun {
  code: number;
  /** console.log lines, joined by newlines. */
  log: string;
  /** The program's stderr (and console.error's lines with `consoleError`), in order. */
  err: string;
}

/**
 * Runs `sae argv` through {@link main}, capturing its streams and console.log; with
 * `consoleError` console.error's lines go into `err` too (commands that log warnings there).
 */
export async function runCli(
  argv: string[],
  opts: { consoleError?: boolean } = {},
): Promise<CliRun> {
  const io = captureIo();
  const logged: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (...a: unknown[]) => logged.push(a.join(" "));
  if (opts.consoleError) console.error = (...a: unknown[]) => io.err.push(a.join(" ") + "\n");
  try {
    const code = await main(argv, io);
    return { code, log: logged.join("\n"), err: io.err.join("") };
  } finally {
    [console.log, console.error] = [log, error];
  }
}
