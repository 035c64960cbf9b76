/** Checks of one GEMM against the reference, on any path, with inputs fit for every epilogue. */
import { getGpu, type Gpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { fits } from "../../src/gpu/split.ts";
import {
  type Epilogue,
  gemm,
  gemmDispatches,
  type GemmOptions,
  gemmPath,
  gemmReference,
  type GemmSpec,
} from "../../src/kernels/gemm/mod.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose, poisoned, randArray } from "./check.ts";

const h16 = new Float16Array(1), u16 = new Uint16Array(h16.buffer);
/** x rounded to f16 toward zero. */
export function f16Toward0(x: number): number {
  h16[0] = x;
  if (Math.abs(h16[0]) > Math.abs(x)) u16[0]--; // sign-magnitude: one step toward zero
  return h16[0];
}

/**
 * Random epilogue operands for a GEMM: E and S as each epilogue reads them (a signed mask [M,N]
 * for relu_grad, bias and signed thresholds [N] for bias_threshold, importances over the global
 * rows and columns and positive constants for ortho_coef), and C's values before for the
 * accumulating epilogues.
 */
export function epilogueInputs(
  rng: Rng,
  spec: GemmSpec,
): { e: Float32Array; s: Float32Array; cIn?: Float32Array } {
  const { M, N } = spec;
  switch (spec.epilogue) {
    case "relu_grad":
      return { e: randArray(rng, M * N), s: new Float32Array([0.5, 0.125, 2]) };
    case "bias_threshold":
      return { e: randArray(rng, N), s: randArray(rng, N, -0.5, 1) };
    case "ortho_coef":
      return {
        e: randArray(rng, Math.max((spec.row0 ?? 0) + M, N), 0.1, 2),
        s: new Float32Array([0.7, 0.05]),
      };
    case "accumulate":
      return { e: new Float32Array(1), s: new Float32Array(1), cIn: randArray(rng, M * N) };
    case "bias_accumulate":
      return { e: randArray(rng, N), s: new Float32Array(1), cIn: randArray(rng, M * N) };
    default:
      return { e: randArray(rng, N), s: new Float32Array([0.5, 0.125, 2]) };
  }
}

/**
 * Runs one GEMM on random data into a NaN-poisoned C (random values for the accumulating ones) and
 * compares with the reference: f32 to 1e-5; f16 storage to f32 accuracy on the operands rounded
 * to f16 (to nearest, or toward zero: how a conversion rounds is the adapter's choice), to ~1e-3
 * on the unrounded ones and measurably not to f32 accuracy. Single-dispatch paths run through
 * `gemm`, the others through `gemmDispatches`.
 */
export async function checkGemm(
  name: string,
  [M, N, K]: number[],
  transA: boolean,
  transB: boolean,
  epilogue: Epilogue,
  opts: GemmOptions = {},
  gpu?: Gpu,
): Promise<void> {
  gpu ??= await getGpu();
  const rng = new Rng(M * 7919 + N * 31 + K);
  const spec: GemmSpec = { label: name, M, N, K, transA, transB, epilogue, scalarIdx: 1 };
  const a = randArray(rng, M * K);
  const b = randArray(rng, K * N);
  const { e, s, cIn } = epilogueInputs(rng, spec);
  const bufs = {
    a: gpu.upload("a", a),
    b: gpu.upload("b", b),
    c: cIn ? gpu.upload("c", cIn) : poisoned(gpu, "c", M * N),
    e: gpu.upload("e", e),
    s: gpu.upload("s", s),
  };
  const path = gemmPath(gpu, spec, opts);
  // `gemm` builds one dispatch: no packing, no conversions, no parts over views.
  const single = !opts.f16 && ["tiled", "vec4", "scalar"].includes(path) &&
    Object.values(bufs).every((buf) => fits(gpu, buf));
  run(
    gpu,
    single ? [await gemm(gpu, spec, bufs, opts)] : await gemmDispatches(gpu, spec, bufs, opts),
  );
  const got = await gpu.read(bufs.c, M * N * 4);
  const tiles = { ...opts.tiledTile, ...opts.tile, ...opts.texTile, ...opts.bcTile };
  const tile = Object.keys(tiles).length || opts.texWidth
    ? ` ${JSON.stringify({ ...tiles, texWidth: opts.texWidth })}`
    : "";
  const what = `${name} ${M}x${N}x${K} ${path}${tile}${opts.f16 ? " f16" : ""}`;
  const ref = (a: Float32Array, b: Float32Array) => gemmReference(spec, a, b, e, s, cIn);
  if (!opts.f16) {
    assertClose(got, ref(a, b), 1e-5, what);
  } else {
    const refs = [Math.f16round, f16Toward0].map((r) => ref(a.map(r), b.map(r)));
    const errs = refs.map((want) => {
      try {
        assertClose(got, want, 1e-5, what);
        return null;
      } catch (err) {
        return (err as Error).message;
      }
    });
    if (errs.every((m) => m !== null)) throw new Error(errs.join("; "));
    const exact = ref(a, b);
    // Not where the epilogue amplifies the operands' rounding: bias_threshold (an entry may move
    // across its threshold), ortho_coef (c/(|c| + ε) near c = 0).
    if (!["bias_threshold", "ortho_coef"].includes(epilogue)) {
      assertClose(got, exact, 1e-2, `${what} vs f32`);
    }
    let worst = 0;
    for (let i = 0; i < exact.length; i++) worst = Math.max(worst, Math.abs(got[i] - exact[i]));
    if (!(worst > 1e-4)) throw new Error(`${what}: f16 result equals the f32 one (${worst})`);
  }
  for (const buf of Object.values(bufs)) buf.destroy();
}
