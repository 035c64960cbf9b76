/** Shared pieces of the reliability tests: a tiny problem, subprocess runs, file helpers. */
import { DEFAULT_CONFIG, mergeConfig, type TrainConfig } from "../../src/config.ts";
import { main } from "../../src/cli/main.ts";
import { encodeNpyHeader } from "../../src/data/npy.ts";
import { SyntheticSource } from "../../src/data/synthetic.ts";

/** CLI flags of a tiny run (about 130 steps/s on the 2-core CPU adapter). */
export const TINY_ARGS = ["--d-in", "16", "--d-sae", "32", "--batch", "32", "--no-progress"];

/** The same tiny problem as a config, for in-process runs. */
export const TINY: TrainConfig = mergeConfig(DEFAULT_CONFIG, {
  d_in: 16,
  d_sae: 32,
  batch: 32,
  steps: 60,
  log_every: 10,
  checkpoint_every: 20,
});

export { QUIET } from "../helpers/runs.ts";

/** A child `sae train` process with its stderr collected as it comes. */
export interface TrainChild {
  child: Deno.ChildProcess;
  /** Everything written to stderr so far. */
  stderr: () => string;
  /** Waits for the exit; resolves with the status and the whole stderr. */
  done: Promise<{ status: Deno.CommandStatus; stderr: string }>;
}

/** Starts `deno run -A src/cli/main.ts train ARGS`. */
export function spawnTrain(args: string[]): TrainChild {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "src/cli/main.ts", "train", ...args],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const reading = (async () => {
    const dec = new TextDecoder();
    for await (const chunk of child.stderr) text += dec.decode(chunk, { stream: true });
  })();
  const done = (async () => {
    const status = await child.status;
    await reading;
    return { status, stderr: text };
  })();
  return { child, stderr: () => text, done };
}

/** Number of complete lines in a file (0 if it does not exist yet). */
export async function lineCount(path: string): Promise<number> {
  try {
    return (await Deno.readTextFile(path)).split("\n").length - 1;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return 0;
    throw err;
  }
}

/** Polls until `path` has at least `n` complete lines; throws after `timeoutMs`. */
export async function waitForLines(path: string, n: number, timeoutMs = 30_000): Promise<void> {
  const t0 = performance.now();
  while ((await lineCount(path)) < n) {
    if (performance.now() - t0 > timeoutMs) {
      throw new Error(`${path} did not reach ${n} lines in ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Fields of metrics.jsonl that are timings (a live run adds the model's and the SAE's rates). */
const TIMING_FIELDS = [
  "steps_per_s",
  "lm_tokens_per_s",
  "sae_steps_per_s",
  "lm_time_share",
  "bound",
];

/** metrics.jsonl as records, without the timing fields. */
export async function metricsLines(path: string): Promise<Record<string, unknown>[]> {
  return (await Deno.readTextFile(path)).trim().split("\n").map((l) => {
    const record = JSON.parse(l);
    for (const f of TIMING_FIELDS) delete record[f];
    return record;
  });
}

/** Whether two files hold the same bytes. */
export async function sameBytes(a: string, b: string): Promise<boolean> {
  const [x, y] = [await Deno.readFile(a), await Deno.readFile(b)];
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Runs `fn` with console.error captured; returns what it printed along with its result. */
export async function captureStderr<T>(
  fn: () => Promise<T>,
): Promise<{ lines: string[]; result?: T; error?: unknown }> {
  const lines: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => lines.push(a.map(String).join(" "));
  try {
    return { lines, result: await fn() };
  } catch (error) {
    return { lines, error };
  } finally {
    console.error = orig;
  }
}

/**
 * Writes `rows` rows of the synthetic generator (width `d`, generator seed `seed`) times `gain` to
 * an f32 .npy file: realistic activations for runs on files.
 */
export async function writeRowsNpy(
  path: string,
  rows: number,
  d: number,
  { seed = 1, gain = 1 }: { seed?: number; gain?: number } = {},
): Promise<Float32Array> {
  const x = new Float32Array(rows * d);
  await new SyntheticSource({ ...TINY.synthetic, seed }, d).nextBatch(x);
  if (gain !== 1) { for (let i = 0; i < x.length; i++) x[i] *= gain; }
  await writeNpy(path, x, d);
  return x;
}

/** Writes `x` ([rows, d] f32) as a .npy file. */
export async function writeNpy(path: string, x: Float32Array, d: number): Promise<void> {
  const header = encodeNpyHeader(x.length / d, d, "f32");
  const bytes = new Uint8Array(header.length + x.byteLength);
  bytes.set(header);
  bytes.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), header.length);
  await Deno.writeFile(path, bytes);
}

/** Runs `sae ARGS` in this process; returns the exit status and what it printed. */
export async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { writeOut: (t) => out.push(t), writeErr: (t) => err.push(t) });
  return { code, out: out.join(""), err: err.join("") };
}

/** Checks that a failed command printed exactly one line, `error: ...`, and no stack. */
export function assertOneLineError(err: string, pattern?: RegExp): void {
  const lines = err.trimEnd().split("\n");
  const errors = lines.filter((l) => l.startsWith("error: "));
  if (errors.length !== 1 || /\n\s+at /.test(err)) {
    throw new Error(`expected one 'error:' line and no stack, got:\n${err}`);
  }
  if (pattern && !pattern.test(errors[0])) {
    throw new Error(`${errors[0]} does not match ${pattern}`);
  }
}
