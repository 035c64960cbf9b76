import assert from "node:assert/strict";
import { encodeNpyHeader, parsePyLiteral, readNpyShard } from "../../src/data/npy.ts";
import { FileSource } from "../../src/data/files.ts";
import { UserError } from "../../src/errors.ts";
import { f32Bytes, npyFile, sameValues, u16Bytes } from "./files_helpers.ts";

async function withFile<T>(bytes: Uint8Array, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "sae-npy-" });
  try {
    const p = `${dir}/a.npy`;
    await Deno.writeFile(p, bytes);
    return await fn(p);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function readAll(path: string, d: number, rows: number): Promise<Float32Array> {
  const src = await FileSource.open(path, d, { log: () => {} });
  const out = new Float32Array(rows * d);
  await src.nextBatch(out);
  return out;
}

async function rejects(bytes: Uint8Array, pattern: RegExp) {
  await withFile(bytes, async (p) => {
    await assert.rejects(readNpyShard(p), (e) => {
      assert.ok(e instanceof UserError, `not a UserError: ${e}`);
      assert.match(e.message, pattern);
      assert.ok(!e.message.includes("\n"), "multi-line message");
      return true;
    });
  });
}

const VALUES = Array.from({ length: 12 }, (_, i) => (i - 5) * 0.75);

for (const version of [1, 2, 3]) {
  Deno.test(`npy v${version}.0: '<f4' (3, 4) parses and reads back exactly`, async () => {
    const bytes = npyFile(f32Bytes(VALUES), { version, shape: "(3, 4)" });
    await withFile(bytes, async (p) => {
      const s = await readNpyShard(p);
      assert.deepEqual(
        { dtype: s.dtype, rows: s.rows, d: s.d, off: s.dataOffset, size: s.fileSize },
        { dtype: "f32", rows: 3, d: 4, off: bytes.length - 48, size: bytes.length },
      );
      assert.equal(s.dataOffset % 64, 0);
      assert.ok(sameValues(await readAll(p, 4, 3), VALUES));
    });
  });

  Deno.test(`npy v${version}.0: '<f2' converts to f32 exactly`, async () => {
    // 1, -2, 65504 (max), 2^-24 (min subnormal), -0, 1/3 rounded, 0.5, 1024
    const bits = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x3555, 0x3800, 0x6400];
    const want = [1, -2, 65504, 2 ** -24, -0, 0.333251953125, 0.5, 1024];
    const bytes = npyFile(u16Bytes(bits), { version, descr: "<f2", shape: "(2, 4)" });
    await withFile(bytes, async (p) => {
      const s = await readNpyShard(p);
      assert.equal(s.dtype, "f16");
      assert.ok(sameValues(await readAll(p, 4, 2), want));
    });
  });
}

Deno.test("npy: header variants numpy has written parse (spacing, Python 2 longs, key order)", async () => {
  const dicts = [
    "{'descr':'<f4','fortran_order':False,'shape':(3,4)}",
    "{'shape': (3L, 4L), 'fortran_order': False, 'descr': '<f4'}",
    '{"descr": "<f4", "fortran_order": False, "shape": (3, 4,), }',
  ];
  for (const dict of dicts) {
    await withFile(npyFile(f32Bytes(VALUES), { dict }), async (p) => {
      const s = await readNpyShard(p);
      assert.equal(s.rows * 10 + s.d, 34, dict);
    });
  }
});

Deno.test("npy: encodeNpyHeader output matches the spec byte for byte", () => {
  const h = encodeNpyHeader(7, 5, "f16");
  assert.equal(h.length % 64, 0);
  assert.deepEqual([...h.subarray(0, 8)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  assert.equal(h[8] | (h[9] << 8), h.length - 10);
  const text = new TextDecoder().decode(h.subarray(10));
  assert.match(text, /^\{'descr': '<f2', 'fortran_order': False, 'shape': \(7, 5\), \} *\n$/);
});

Deno.test("npy: every header error is a one-line UserError naming the file", async () => {
  const data = f32Bytes(VALUES);
  await rejects(npyFile(data, { descr: ">f4", shape: "(3, 4)" }), /dtype '>f4'.*'<f4'.*'<f2'/);
  await rejects(npyFile(data, { descr: "|f4", shape: "(3, 4)" }), /dtype '\|f4' is not supported/);
  await rejects(npyFile(data, { descr: "<f8", shape: "(3, 2)" }), /'<f8' is not supported/);
  await rejects(npyFile(data, { descr: "<i4", shape: "(3, 4)" }), /'<i4'/);
  await rejects(
    npyFile(data, { dict: "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,)}" }),
    /structured dtype/,
  );
  await rejects(npyFile(data, { fortran: "True", shape: "(3, 4)" }), /Fortran/);
  await rejects(npyFile(data, { shape: "(12,)" }), /shape \(12,\) is not \(N, d\)/);
  await rejects(npyFile(data, { shape: "(2, 2, 3)" }), /is not \(N, d\)/);
  await rejects(npyFile(data, { shape: "(3, 0)" }), /impossible row width/);
  // Truncated data: expected vs actual bytes.
  const full = npyFile(data, { shape: "(3, 4)" });
  await rejects(
    full.subarray(0, full.length - 5),
    /a\.npy is truncated.*should be \d+ bytes, but it is \d+/,
  );
  await rejects(npyFile(data, { shape: "(4, 4)" }), /truncated: header says \(4, 4\)/);
  await rejects(npyFile(data, { shape: "(2, 4)" }), /has trailing bytes/);
  await rejects(npyFile(data, { shape: "(99999999999999999999, 4)" }), /truncated/);
  // Header length past the end of the file.
  const lying = full.slice(0, 200);
  lying[8] = 0xff;
  lying[9] = 0xff;
  await rejects(
    lying,
    new RegExp(`header length 65535 runs past the end of the ${lying.length}-byte file`),
  );
  const v2 = npyFile(data, { version: 2, shape: "(3, 4)" });
  v2.set([0xff, 0xff, 0xff, 0x7f], 8);
  await rejects(v2, /exceeds the 1048576-byte limit/);
  await rejects(full.subarray(0, 8), /shorter than its preamble/);
  const magic = full.slice();
  magic[1] = 0x4f;
  await rejects(magic, /not a \.npy file/);
  const ver = full.slice();
  ver[6] = 4;
  await rejects(ver, /unsupported \.npy format version 4\.0/);
  await rejects(
    npyFile(data, { dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), 'x': 1}" }),
    /unexpected key 'x'/,
  );
  await rejects(
    npyFile(data, { dict: "{'descr': '<f4', 'shape': (3, 4)}" }),
    /lacks 'fortran_order'/,
  );
  await rejects(
    npyFile(data, { dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)" }),
    /not a Python dict literal/,
  );
  await rejects(npyFile(data, { dict: "[1, 2]" }), /not a dict/);
  await withFile(full, async (path) => {
    await assert.rejects(
      FileSource.open(path, 8),
      /shard .*a\.npy has d=4 but d_in is 8; pass --d-in 4/,
    );
  });
});

Deno.test("npy: the Python literal parser", () => {
  assert.deepEqual(parsePyLiteral(" (1, -2L, ) "), [1n, -2n]);
  assert.deepEqual(parsePyLiteral("(7)"), 7n);
  assert.deepEqual(parsePyLiteral("()"), []);
  assert.deepEqual(parsePyLiteral("[True, False, None, 'a\\'b']"), [true, false, null, "a'b"]);
  assert.deepEqual(parsePyLiteral("{'a': {}}"), new Map([["a", new Map()]]));
  for (
    const bad of [
      "(1 2)",
      "{'a' 1}",
      "'abc",
      "((((((((((((((((((1))))))))))))))))))",
      "1 2",
      "{[]: 1}",
    ]
  ) {
    assert.throws(() => parsePyLiteral(bad), Error, bad);
  }
});
