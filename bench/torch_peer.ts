/**
 * What the PyTorch peers of `bench:peer` (the SAE step) and `bench:peer-lm` (the GPT-2 forward)
 * share: finding a python3 that imports torch, the environment the peer runs in (the machine's,
 * without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE), and a long-lived peer process the bench
 * alternates with its own work, one request at a time.
 *
 * A peer script prints one JSON line describing itself ({@link PeerInfo}), then answers each line
 * on stdin with one JSON line: `run` does one unit of work and answers `{"s": seconds}`; other
 * commands are the script's own; `quit` or EOF ends it.
 */
import { fileURLToPath } from "node:url";

/** What every peer script says about itself on its first line. */
export interface PeerInfo {
  torch_version: string;
  threads: number;
  /** The BLAS shared libraries the process loaded. */
  blas: string;
  /** OpenBLAS's core type and build config, or "not OpenBLAS". */
  openblas_core: string;
  /** OPENBLAS_* variables the process saw (none, as started here). */
  openblas_env: Record<string, string>;
}

/** The first of `candidates` that runs and imports torch, or null. */
export async function findTorchPython(
  candidates = ["python3", "/usr/bin/python3"],
): Promise<string | null> {
  for (const py of candidates) {
    try {
      const out = await new Deno.Command(py, {
        args: ["-c", "import torch"],
        stdout: "null",
        stderr: "null",
      }).output();
      if (out.success) return py;
    } catch {
      // not installed: try the next one
    }
  }
  return null;
}

/**
 * The environment of a PyTorch peer: ours without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which
 * (set on some machines for old numpy builds) pin OpenBLAS to a core type and cache size other
 * than the machine's, kernels a user's PyTorch would not pick (pass it with `clearEnv: true`).
 */
export function torchEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return env;
}

/** A running peer script (bench/<script>) under {@link torchEnv}. */
export class TorchPeer<Info extends PeerInfo = PeerInfo> {
  readonly info: Info;
  private readonly child: Deno.ChildProcess;
  private readonly lines: AsyncGenerator<string>;
  private readonly stdin: WritableStreamDefaultWriter<Uint8Array>;

  private constructor(child: Deno.ChildProcess, lines: AsyncGenerator<string>, info: Info) {
    this.child = child;
    this.lines = lines;
    this.info = info;
    this.stdin = child.stdin.getWriter();
  }

  /**
   * Starts `script` (a file next to this one) under `python` with `args` and waits for its first
   * line (after its warm-up).
   * @throws Error when the script exits before printing it (its stderr is passed through).
   */
  static async start<Info extends PeerInfo = PeerInfo>(
    python: string,
    script: string,
    args: string[],
  ): Promise<TorchPeer<Info>> {
    const child = new Deno.Command(python, {
      args: [fileURLToPath(new URL(`./${script}`, import.meta.url)), ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      env: torchEnv(),
      clearEnv: true,
    }).spawn();
    const lines = readLines(child.stdout);
    const first = await lines.next();
    if (first.done) {
      const status = await child.status;
      throw new Error(`${script} exited with status ${status.code} before starting`);
    }
    return new TorchPeer(child, lines, JSON.parse(first.value) as Info);
  }

  /** Sends one command and returns the script's answer. */
  async request<T = Record<string, unknown>>(cmd: string): Promise<T> {
    await this.stdin.write(new TextEncoder().encode(`${cmd}\n`));
    const r = await this.lines.next();
    if (r.done) throw new Error(`the peer ended before answering '${cmd}'`);
    return JSON.parse(r.value);
  }

  /** Seconds the peer took for one unit of its work (`run`). */
  async run(): Promise<number> {
    return (await this.request<{ s: number }>("run")).s;
  }

  /** Ends the process. */
  async close(): Promise<void> {
    await this.stdin.write(new TextEncoder().encode("quit\n"));
    await this.stdin.close();
    for await (const _ of this.lines) { /* drain */ }
    await this.child.status;
  }
}

/** Lines of a byte stream. */
async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, nl);
      buf = buf.slice(nl + 1);
    }
  }
  if (buf) yield buf;
}

/** The median (the upper one of an even count). */
export const median = (v: number[]): number =>
  [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

/**
 * Paired rounds of ours and the peer's times (seconds per unit of work), summarised: min and
 * median of each side, the ratio ours / peer of both, and how stable the median is: the per-round
 * ratios' median and range, and the ratio of medians over the odd and the even rounds alone.
 */
export function pairedSummary(ours: number[], theirs: number[]): {
  ours: { min: number; median: number };
  theirs: { min: number; median: number };
  ratioOfMins: number;
  ratioOfMedians: number;
  roundRatios: { median: number; min: number; max: number };
  halves: [number, number];
} {
  const rr = ours.map((o, i) => o / theirs[i]);
  const half = (h: number) => {
    const idx = ours.map((_, i) => i).filter((i) => i % 2 === h);
    return median(idx.map((i) => ours[i])) / median(idx.map((i) => theirs[i]));
  };
  return {
    ours: { min: Math.min(...ours), median: median(ours) },
    theirs: { min: Math.min(...theirs), median: median(theirs) },
    ratioOfMins: Math.min(...ours) / Math.min(...theirs),
    ratioOfMedians: median(ours) / median(theirs),
    roundRatios: { median: median(rr), min: Math.min(...rr), max: Math.max(...rr) },
    halves: ours.length > 1 ? [half(0), half(1)] : [NaN, NaN],
  };
}
