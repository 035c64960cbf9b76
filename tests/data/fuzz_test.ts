/**
 * Fuzzing both readers with mutated files: byte flips, truncations, lying length fields, edited
 * header text, huge numbers, appended junk. Every case must end in a UserError or in a read whose
 * values equal an independent decoding of the bytes, quickly and without big allocations.
 */
import assert from "node:assert/strict";
import { FileSource, readShard } from "../../src/data/files.ts";
import type { ShardInfo } from "../../src/data/npy.ts";
import { UserError } from "../../src/errors.ts";
import { Rng } from "../../src/rng.ts";
import { f32Bytes, npyFile, refDecode, sameValues, stFile, u16Bytes } from "./files_helpers.ts";

const CASES = 2000;
const VALUES = Array.from({ length: 12 }, (_, i) => 0.5 * i - 2.25);
const HALF = u16Bytes(new Uint16Array(Float16Array.from(VALUES).buffer));
const BF16 = u16Bytes(VALUES.map((v) => new Uint32Array(Float32Array.of(v).buffer)[0] >>> 16));

const NPY_BASES = [
  npyFile(f32Bytes(VALUES), { version: 1, shape: "(4, 3)" }),
  npyFile(HALF, { version: 2, descr: "<f2", shape: "(3, 4)" }),
  npyFile(f32Bytes(VALUES), { version: 3, shape: "(6, 2)" }),
];
const ST_BASES = [
  stFile({
    __metadata__: { note: "fuzz" },
    bias: { dtype: "F32", shape: [4], data_offsets: [0, 16] },
    acts: { dtype: "F32", shape: [4, 3], data_offsets: [16, 64] },
  }, new Uint8Array([...f32Bytes([1, 2, 3, 4]), ...f32Bytes(VALUES)])),
  stFile({ acts: { dtype: "BF16", shape: [2, 6], data_offsets: [0, 24] } }, BF16),
  stFile({ h: { dtype: "F16", shape: [6, 2], data_offsets: [0, 24] } }, HALF),
];

const TEXT_CHARS = "(){}[],:'\" \n<>fL0123456789-.eTrueFalsNn\\#";
const NUMBERS = [
  "0",
  "1",
  "-1",
  "2",
  "99999999999999999999",
  "4294967296",
  "9007199254740993",
  "1e3",
  "3.0",
  "18446744073709551615",
];

/** One mutated copy of `base`, whose header occupies bytes [0, headerEnd). */
function mutate(base: Uint8Array, headerEnd: number, lenAt: number, lenBytes: number, rng: Rng) {
  let b = base.slice();
  const kind = rng.int(8);
  const pick = (n: number) => rng.int(Math.max(1, n));
  switch (kind) {
    case 0: // flip bytes inside the header
      for (let k = 1 + rng.int(4); k > 0; k--) b[pick(headerEnd)] = rng.int(256);
      break;
    case 1: // truncate anywhere
      b = b.slice(0, pick(b.length));
      break;
    case 2: { // lie in the length field
      const size = b.length;
      const choices = [0, 1, 7, size, size - 8, headerEnd, headerEnd + 1, 0xffff, 2 ** 32 - 1];
      let v = BigInt(choices[rng.int(choices.length)] + (rng.int(3) - 1));
      if (rng.int(4) === 0) v = (1n << BigInt(8 * lenBytes)) - 1n - BigInt(rng.int(3));
      if (v < 0n) v = 0n;
      for (let i = 0; i < lenBytes; i++) {
        b[lenAt + i] = Number(v & 0xffn);
        v >>= 8n;
      }
      break;
    }
    case 3: // replace header characters
      for (let k = 1 + rng.int(3); k > 0; k--) {
        b[lenAt + lenBytes + pick(headerEnd - lenAt - lenBytes)] = TEXT_CHARS.charCodeAt(
          rng.int(TEXT_CHARS.length),
        );
      }
      break;
    case 4: { // insert or delete a header character (length field left as is)
      const at = lenAt + lenBytes + pick(headerEnd - lenAt - lenBytes);
      b = rng.int(2) === 0
        ? new Uint8Array([...b.subarray(0, at), ...b.subarray(at + 1)])
        : new Uint8Array([
          ...b.subarray(0, at),
          TEXT_CHARS.charCodeAt(rng.int(TEXT_CHARS.length)),
          ...b.subarray(at),
        ]);
      break;
    }
    case 5: { // replace one number in the header text by an odd one, same byte length if it fits
      const text = new TextDecoder("latin1").decode(b.subarray(0, headerEnd));
      const nums = [...text.matchAll(/\d+/g)].filter((m) => m.index! >= lenAt + lenBytes);
      if (nums.length === 0) break;
      const m = nums[rng.int(nums.length)];
      const rep = NUMBERS[rng.int(NUMBERS.length)];
      const head = new TextEncoder().encode(
        text.slice(0, m.index) + rep + text.slice(m.index! + m[0].length),
      );
      b = new Uint8Array([...head, ...b.subarray(headerEnd)]);
      break;
    }
    case 6: // junk at the end
      b = new Uint8Array([...b, ...Array.from({ length: 1 + rng.int(9) }, () => rng.int(256))]);
      break;
    default: // flip bytes of the data (NaN/Inf rows among them)
      for (let k = 1 + rng.int(3); k > 0; k--) {
        b[headerEnd + pick(b.length - headerEnd)] = rng.int(2) === 0 ? 0xff : rng.int(256);
      }
  }
  return b;
}

/** Checks one case: a UserError, or a shard whose rows equal the reference decoding. */
async function check(path: string, bytes: Uint8Array, tally: Record<string, number>) {
  let shard: ShardInfo;
  try {
    shard = await readShard(path);
  } catch (e) {
    if (!(e instanceof UserError)) throw new Error(`not a UserError: ${e}`);
    assert.ok(!e.message.includes("\n"), `multi-line: ${e.message}`);
    tally.rejected++;
    return;
  }
  const item = shard.dtype === "f32" ? 4 : 2;
  const n = shard.rows * shard.d;
  assert.ok(shard.dataOffset + n * item <= bytes.length, "layout runs past the file");
  if (shard.format === "npy") assert.equal(shard.dataOffset + n * item, bytes.length);
  const want = refDecode(bytes, shard.dataOffset, n, shard.dtype);
  let src: FileSource;
  try {
    src = new FileSource([shard], "fuzz", { log: () => {} });
  } catch (e) {
    assert.ok(e instanceof UserError && shard.rows === 0, String(e));
    tally.empty++;
    return;
  }
  const out = new Float32Array(n);
  const badRow = want.findIndex((v) => !Number.isFinite(v));
  try {
    await src.nextBatch(out);
  } catch (e) {
    assert.ok(e instanceof UserError, String(e));
    const row = Math.floor(badRow / shard.d);
    assert.ok(badRow >= 0 && e.message.includes(`row ${row} has NaN/Inf`), e.message);
    tally.nonFinite++;
    return;
  }
  assert.equal(badRow, -1);
  assert.ok(sameValues(out, want), "values differ from the reference decoding");
  tally.read++;
}

async function fuzz(
  bases: Uint8Array[],
  ext: string,
  layout: (b: Uint8Array) => { headerEnd: number; lenAt: number; lenBytes: number },
  seed: number,
) {
  const dir = await Deno.makeTempDir({ prefix: "sae-fuzz-" });
  const path = `${dir}/case.${ext}`;
  const rng = new Rng(seed);
  const tally = { rejected: 0, read: 0, empty: 0, nonFinite: 0 };
  const rss0 = Deno.memoryUsage().rss;
  const t0 = performance.now();
  let worst = 0;
  try {
    for (let c = 0; c < CASES; c++) {
      const base = bases[c % bases.length];
      const { headerEnd, lenAt, lenBytes } = layout(base);
      const bytes = mutate(base, headerEnd, lenAt, lenBytes, rng);
      Deno.writeFileSync(path, bytes);
      const t = performance.now();
      try {
        await check(path, bytes, tally);
      } catch (e) {
        throw new Error(`case ${c} (${bytes.length} bytes): ${(e as Error).message}`);
      }
      worst = Math.max(worst, performance.now() - t);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const grew = (Deno.memoryUsage().rss - rss0) / 2 ** 20;
  console.log(
    `${ext}: ${JSON.stringify(tally)}, ${(performance.now() - t0).toFixed(0)} ms, ` +
      `slowest case ${worst.toFixed(1)} ms, rss +${grew.toFixed(0)} MiB`,
  );
  assert.ok(worst < 1000, `a case took ${worst} ms`);
  assert.ok(grew < 256, `memory grew by ${grew} MiB`);
  assert.ok(
    tally.rejected > CASES / 4 && tally.read > CASES / 20 && tally.nonFinite > 0,
    JSON.stringify(tally),
  );
}

Deno.test("fuzz: 2000 mutated .npy files end in a UserError or a correct read", async () => {
  await fuzz(NPY_BASES, "npy", (b) => {
    const v1 = b[6] === 1;
    const len = v1 ? b[8] | (b[9] << 8) : b[8] | (b[9] << 8) | (b[10] << 16);
    return { headerEnd: (v1 ? 10 : 12) + len, lenAt: 8, lenBytes: v1 ? 2 : 4 };
  }, 11);
});

Deno.test("fuzz: 2000 mutated .safetensors files end in a UserError or a correct read", async () => {
  await fuzz(ST_BASES, "safetensors", (b) => {
    return { headerEnd: 8 + (b[0] | (b[1] << 8)), lenAt: 0, lenBytes: 8 };
  }, 12);
});
