import assert from "node:assert/strict";
import { createGpu, getGpu, type Gpu } from "../../src/gpu/device.ts";
import { run } from "../../src/gpu/dispatch.ts";
import { health, healthKernel, healthReference, isBad } from "../../src/kernels/health.ts";
import { METRIC_INDEX, METRIC_WORDS } from "../../src/kernels/metrics.ts";
import { Rng } from "../../src/rng.ts";
import { randArray } from "../helpers/check.ts";

const I = METRIC_INDEX;
const LIMIT = 2048; // bytes per binding: W_enc and W_dec of the split cases take several parts

let tinyGpu: Gpu | null = null;
async function tiny(): Promise<Gpu> {
  tinyGpu ??= await createGpu({ maxStorageBufferBindingSize: LIMIT });
  return tinyGpu;
}

type Name = "wEnc" | "bEnc" | "wDec" | "bDec";

/**
 * Runs the check over random parameters with `bad` values placed at random elements of the named
 * parameters; the accumulators start with random sums and a poisoned params_bad word (the smallest
 * denormal, bits 0x1: below both codes as an integer, so the kernel's atomic max on the bits must
 * replace it when a value is bad and leave it when all are finite).
 */
async function check(gpu: Gpu, m: number, d: number, seed: number, bad: [Name, number][]) {
  const rng = new Rng(seed);
  const host: Record<Name, Float32Array<ArrayBuffer>> = {
    wEnc: randArray(rng, m * d, -3, 3),
    bEnc: randArray(rng, m, -3, 3),
    wDec: randArray(rng, m * d, -3, 3),
    bDec: randArray(rng, d, -3, 3),
  };
  const at: [Name, number][] = [];
  for (const [name, value] of bad) {
    const i = Math.floor(rng.uniform() * host[name].length);
    host[name][i] = value;
    at.push([name, i]);
  }
  const param = (name: Name, shape: number[]) => ({
    p: gpu.upload(name, host[name]),
    shape,
    size: host[name].length,
  });
  const params = {
    wEnc: param("wEnc", [m, d]),
    bEnc: param("bEnc", [m]),
    wDec: param("wDec", [m, d]),
    bDec: param("bDec", [d]),
  };
  const acc0 = randArray(rng, METRIC_WORDS, 1, 9);
  new Uint32Array(acc0.buffer)[I.params_bad] = 1;
  const poison = acc0[I.params_bad];
  const acc = gpu.upload("acc", acc0);
  const dispatches = await healthKernel(gpu, params, acc);
  run(gpu, dispatches);
  const got = await gpu.read(acc);
  const want = healthReference(host.wEnc, host.bEnc, host.wDec, host.bDec);
  const where = at.map(([n, i]) => `${n}[${i}]`).join(", ");
  assert.equal(got[I.params_bad], want === 0 ? poison : want, `params_bad with ${where}`);
  for (let k = 0; k < METRIC_WORDS; k++) {
    if (k !== I.params_bad) assert.equal(got[k], acc0[k], `word ${k} changed`);
  }
  return dispatches.length;
}

const CASES: [string, [Name, number][]][] = [
  ["finite", []],
  ["one NaN", [["wEnc", NaN]]],
  ["one ∞", [["wDec", Infinity]]],
  ["one −∞ in b_enc", [["bEnc", -Infinity]]],
  ["a NaN in b_dec", [["bDec", NaN]]],
  ["∞ and NaN", [["wDec", -Infinity], ["wEnc", NaN]]],
  ["NaN and ∞", [["bEnc", NaN], ["wDec", Infinity]]],
];

for (const [what, bad] of CASES) {
  Deno.test(`health check finds ${what} anywhere in the parameters, like the reference`, async () => {
    const gpu = await getGpu();
    for (let trial = 0; trial < 4; trial++) {
      // Awkward sizes, one of them past one workgroup's stride of 16 elements an invocation.
      for (const [m, d] of [[37, 13], [301, 77], [5, 1]]) {
        assert.equal(await check(gpu, m, d, trial * 1000 + m + bad.length, bad), 1);
      }
    }
  });

  Deno.test(`health check over split W_enc/W_dec parts finds ${what}`, async () => {
    const gpu = await tiny();
    for (let trial = 0; trial < 6; trial++) {
      const parts = await check(gpu, 53, 19, trial * 77 + bad.length, bad);
      assert.ok(parts > 1, `${parts} part(s)`);
    }
  });
}

Deno.test("health flags: parsed from the accumulator words, isBad when any is set", () => {
  const acc = new Float32Array(METRIC_WORDS);
  assert.deepEqual(health(acc), { recon: 0, l1: 0, params: 0, input: 0, firstStep: 0 });
  assert.equal(isBad(health(acc)), false);
  acc[I.recon_bad] = 1;
  acc[I.l1_bad] = 2;
  acc[I.params_bad] = 2;
  acc[I.input_bad] = 1;
  acc[I.first_bad_step] = 17;
  assert.deepEqual(health(acc), { recon: 1, l1: 2, params: 2, input: 1, firstStep: 17 });
  for (const k of [I.recon_bad, I.l1_bad, I.params_bad, I.input_bad]) {
    const one = new Float32Array(METRIC_WORDS);
    one[k] = 1;
    assert.equal(isBad(health(one)), true, `word ${k}`);
  }
});
