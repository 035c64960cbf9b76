import assert from "node:assert/strict";
import { UserError } from "../../src/errors.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  f32Tensor,
  type Tensor,
  tensorToF32,
} from "../../src/run/safetensors.ts";

/** A file built by hand from the spec: u64 LE header length, JSON header, byte buffer. */
function handmade(header: string, data: number[] | Uint8Array, lenOverride?: bigint): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lenOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function f32Bytes(values: number[]): number[] {
  return [...new Uint8Array(new Float32Array(values).buffer)];
}

function assertInvalid(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => decodeSafetensors(bytes), (err: unknown) => {
    assert.ok(err instanceof UserError, `expected UserError, got ${err}`);
    assert.ok(!err.message.includes("\n"));
    assert.match(err.message, /^invalid safetensors file: /);
    assert.match(err.message, pattern);
    return true;
  });
}

Deno.test("decodes a file written by hand from the spec", () => {
  // Two tensors, metadata, header padded with spaces, second tensor is I32.
  const header = '{"__metadata__":{"format":"pt"},' +
    '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"I32","shape":[1,1],"data_offsets":[8,12]}}    ';
  const data = [...f32Bytes([1.5, -2]), 7, 0, 0, 0];
  const { tensors, metadata } = decodeSafetensors(handmade(header, data));
  assert.deepEqual(metadata, { format: "pt" });
  assert.deepEqual(Object.keys(tensors).sort(), ["a", "b"]);
  assert.deepEqual(tensors.a.shape, [2]);
  assert.deepEqual([...tensorToF32(tensors.a)], [1.5, -2]);
  assert.equal(tensors.b.dtype, "I32");
  assert.deepEqual([...tensors.b.data], [7, 0, 0, 0]);
});

Deno.test("decodes tensors stored out of name order and a scalar", () => {
  const header = '{"z":{"dtype":"F32","shape":[],"data_offsets":[4,8]},' +
    '"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  const { tensors } = decodeSafetensors(handmade(header, f32Bytes([3, 4])));
  assert.deepEqual([...tensorToF32(tensors.y)], [3]);
  assert.deepEqual([...tensorToF32(tensors.z)], [4]);
});

Deno.test("encoder output follows the layout and round-trips", () => {
  const w = f32Tensor([2, 3], new Float32Array([1, 2, 3, 4, 5, 6]));
  const half: Tensor = { dtype: "F16", shape: [1], data: new Uint8Array([0x00, 0x3c]) };
  const f64: Tensor = {
    dtype: "F64",
    shape: [2],
    data: new Uint8Array(new Float64Array([0.25, -8]).buffer),
  };
  const empty: Tensor = { dtype: "U32", shape: [0, 4], data: new Uint8Array(0) };
  const bytes = encodeSafetensors({ w, half, f64, empty }, { step: "3", note: "é" });

  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(headerLen % 8, 0);
  const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + headerLen));
  assert.equal(headerText[0], "{");
  assert.match(headerText, /^\{.*\} *$/s);
  const header = JSON.parse(headerText);
  assert.deepEqual(header.__metadata__, { step: "3", note: "é" });
  assert.deepEqual(header.w.data_offsets, [0, 24]);
  assert.deepEqual(header.half.data_offsets, [24, 26]);
  assert.deepEqual(header.f64.data_offsets, [26, 42]);
  assert.equal(bytes.length, 8 + headerLen + 42);

  const back = decodeSafetensors(bytes);
  assert.deepEqual(back.metadata, { step: "3", note: "é" });
  assert.deepEqual([...tensorToF32(back.tensors.w)], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(back.tensors.w.shape, [2, 3]);
  assert.deepEqual([...tensorToF32(back.tensors.half)], [1]);
  assert.deepEqual([...tensorToF32(back.tensors.f64)], [0.25, -8]);
  assert.deepEqual(back.tensors.empty.shape, [0, 4]);
  assert.equal(back.tensors.empty.data.length, 0);
});

Deno.test("tensorToF32 converts F16 and BF16 bit patterns", () => {
  // F16: 1.0, -2.0, 65504 (max), smallest subnormal 2^-24, +inf.
  const f16 = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00]);
  const out = tensorToF32({ dtype: "F16", shape: [5], data: new Uint8Array(f16.buffer) });
  assert.deepEqual([...out], [1, -2, 65504, 2 ** -24, Infinity]);
  assert.ok(Number.isNaN(
    tensorToF32({ dtype: "F16", shape: [1], data: new Uint8Array([0x01, 0x7c]) })[0],
  ));
  // BF16: 1.0 = 0x3f80, -3.0 = 0xc040.
  const bf16 = new Uint16Array([0x3f80, 0xc040]);
  const out2 = tensorToF32({ dtype: "BF16", shape: [2], data: new Uint8Array(bf16.buffer) });
  assert.deepEqual([...out2], [1, -3]);
  assert.throws(
    () => tensorToF32({ dtype: "I32", shape: [1], data: new Uint8Array(4) }),
    UserError,
  );
});

Deno.test("tensorToF32 handles unaligned F32 data", () => {
  const buf = new Uint8Array(9);
  buf.set(new Uint8Array(new Float32Array([2.5, -1]).buffer), 1);
  const t: Tensor = { dtype: "F32", shape: [2], data: buf.subarray(1) };
  assert.deepEqual([...tensorToF32(t)], [2.5, -1]);
});

Deno.test("rejects a file shorter than 8 bytes", () => {
  assertInvalid(new Uint8Array(5), /5 bytes, shorter than the 8-byte header length/);
});

Deno.test("rejects a header length past EOF or absurd, before allocating", () => {
  const h = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  assertInvalid(handmade(h, f32Bytes([1]), 10_000n), /runs past the end/);
  assertInvalid(handmade(h, f32Bytes([1]), 2n ** 63n), /exceeds the 100000000-byte limit/);
  // A valid file cut short inside the data: offsets point past the buffer.
  const whole = handmade(h, f32Bytes([1]));
  assertInvalid(whole.subarray(0, whole.length - 2), /outside the 2-byte data buffer/);
});

Deno.test("rejects a header that is not JSON", () => {
  assertInvalid(handmade('{"a": nope}', []), /not valid JSON/);
  assertInvalid(handmade("[1, 2]", []), /does not start with '\{'/);
  assertInvalid(handmade("{}", []).fill(0xff, 9, 10), /not valid JSON/);
});

Deno.test("rejects an unknown dtype", () => {
  const h = '{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}';
  assertInvalid(handmade(h, new Array(8).fill(0)), /unsupported dtype "I64"/);
});

Deno.test("rejects shapes that do not match their offsets", () => {
  const h = '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}';
  assertInvalid(handmade(h, f32Bytes([1, 2])), /F32\[3\] needs 12 bytes but data_offsets span 8/);
  // A shape whose product overflows is caught without computing it exactly.
  const big = '{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}';
  assertInvalid(handmade(big, f32Bytes([1, 2])), /data_offsets span 8/);
});

Deno.test("rejects non-integer or negative shapes", () => {
  for (const shape of ["[1.5]", "[-1]", '"2"', '["2"]']) {
    const h = `{"a":{"dtype":"F32","shape":${shape},"data_offsets":[0,4]}}`;
    assertInvalid(handmade(h, f32Bytes([1])), /shape .* is not a list of integers/);
  }
});

Deno.test("rejects overlapping, out-of-range, backwards and gappy offsets", () => {
  const overlap = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}';
  assertInvalid(handmade(overlap, f32Bytes([1, 2, 3])), /overlaps/);
  const outside = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}';
  assertInvalid(handmade(outside, f32Bytes([1, 2])), /outside the 8-byte data buffer/);
  const backwards = '{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}';
  assertInvalid(handmade(backwards, f32Bytes([1])), /outside/);
  const hole = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
  assertInvalid(handmade(hole, f32Bytes([1, 2])), /hole in the data buffer/);
  const tail = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  assertInvalid(handmade(tail, f32Bytes([1, 2])), /data buffer is 8 bytes but the tensors cover 4/);
  const badOffsets = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}';
  assertInvalid(handmade(badOffsets, f32Bytes([1])), /data_offsets \[0\] is not \[begin, end\]/);
});

Deno.test("rejects malformed metadata and entries", () => {
  assertInvalid(handmade('{"__metadata__":{"a":1}}', []), /__metadata__ value 'a' is not a string/);
  assertInvalid(handmade('{"__metadata__":[]}', []), /__metadata__ is not an object/);
  assertInvalid(handmade('{"a":5}', []), /tensor 'a' entry is not an object/);
  assertInvalid(
    handmade('{"__proto__":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}', []),
    /'__proto__' is not allowed/,
  );
});

Deno.test("encoder rejects inconsistent tensors as bugs", () => {
  assert.throws(
    () => encodeSafetensors({ a: { dtype: "F32", shape: [3], data: new Uint8Array(8) } }),
    /need 12/,
  );
  assert.throws(() => f32Tensor([2, 2], new Float32Array(3)), /4 elements/);
});
