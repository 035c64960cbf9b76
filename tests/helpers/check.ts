/** Shared test helpers: random data, poisoned buffers, relative-error comparison. */
import assert from "node:assert/strict";
import { UserError } from "../../src/errors.ts";
import type { Rng } from "../../src/rng.ts";
import type { Gpu } from "../../src/gpu/device.ts";

/** Uniform random values in [lo, hi). */
export function randArray(rng: Rng, n: number, lo = -1, hi = 1): Float32Array<ArrayBuffer> {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rng.uniform();
  return out;
}

/** A GPU buffer of `n` f32 filled with NaN, so an unwritten output cannot pass a comparison. */
export function poisoned(gpu: Gpu, label: string, n: number): GPUBuffer {
  return gpu.upload(label, new Float32Array(n).fill(NaN));
}

/**
 * Asserts max |got − want| / (max |want| + tiny) ≤ tol over all elements, and that nothing is NaN.
 * Uses the max-norm of the reference as scale, the usual bound for sums of products.
 */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  what = "",
) {
  if (got.length < want.length) {
    throw new Error(`${what}: got ${got.length} values, want ${want.length}`);
  }
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  scale = Math.max(scale, 1e-30);
  let worst = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  if (!(worst / scale <= tol)) {
    throw new Error(
      `${what}: relative error ${(worst / scale).toExponential(2)} > ${tol} at ${at} ` +
        `(got ${got[at]}, want ${want[at]})`,
    );
  }
}

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
export async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Asserts `fn` rejects with a one-line UserError whose message matches `pattern`. */
export async function rejectsUserError(
  fn: () => Promise<unknown>,
  pattern: RegExp,
): Promise<void> {
  await assert.rejects(fn, (err: unknown) => {
    assert.ok(err instanceof UserError, `expected UserError, got ${err}`);
    assert.ok(!err.message.includes("\n"), `multi-line message: ${err.message}`);
    assert.match(err.message, pattern);
    return true;
  });
}

/** Runs `fn` with the environment variable `name` set to `value`, restoring it afterwards. */
export async function withEnv<T>(name: string, value: string, fn: () => Promise<T>): Promise<T> {
  const prev = Deno.env.get(name);
  Deno.env.set(name, value);
  try {
    return await fn();
  } finally {
    if (prev === undefined) Deno.env.delete(name);
    else Deno.env.set(name, prev);
  }
}
