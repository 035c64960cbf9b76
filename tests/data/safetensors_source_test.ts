import assert from "node:assert/strict";
import { FileSource } from "../../src/data/files.ts";
import { readSafetensorsShard } from "../../src/data/safetensors_source.ts";
import { UserError } from "../../src/errors.ts";
import { f32Bytes, sameValues, stFile, u16Bytes } from "./files_helpers.ts";

async function withFile<T>(bytes: Uint8Array, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "sae-st-" });
  try {
    const p = `${dir}/acts.safetensors`;
    await Deno.writeFile(p, bytes);
    return await fn(p);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function readRows(spec: string, d: number, rows: number): Promise<Float32Array> {
  const src = await FileSource.open(spec, d, { log: () => {} });
  const out = new Float32Array(rows * d);
  await src.nextBatch(out);
  return out;
}

async function rejects(bytes: Uint8Array, pattern: RegExp, tensor?: string) {
  await withFile(bytes, async (p) => {
    await assert.rejects(readSafetensorsShard(p, tensor), (e) => {
      assert.ok(e instanceof UserError, `not a UserError: ${e}`);
      assert.match(e.message, pattern);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  });
}

const X = [1, -2, 3.5, 0.25, -0, 7, 8, 9]; // [2, 4]

Deno.test("safetensors source: F32, F16 and BF16 tensors read exactly", async () => {
  const f16 = u16Bytes([0x3c00, 0xc000, 0x4300, 0x3400, 0x8000, 0x4700, 0x4800, 0x4880]);
  const bf16 = u16Bytes([0x3f80, 0xc000, 0x4060, 0x3e80, 0x8000, 0x40e0, 0x4100, 0x4110]);
  for (
    const [dtype, data] of [["F32", f32Bytes(X)], ["F16", f16], ["BF16", bf16]] as const
  ) {
    const bytes = stFile({
      __metadata__: { source: "test" },
      acts: { dtype, shape: [2, 4], data_offsets: [0, data.length] },
    }, data);
    await withFile(bytes, async (p) => {
      const s = await readSafetensorsShard(p);
      assert.deepEqual([s.tensor, s.rows, s.d, s.dtype], ["acts", 2, 4, dtype.toLowerCase()]);
      assert.ok(sameValues(await readRows(p, 4, 2), X), dtype);
    });
  }
});

Deno.test("safetensors source: the only 2-D tensor, or the one named after '#'", async () => {
  const a = f32Bytes(X);
  const b = f32Bytes(X.map((v) => v * 10));
  const bias = f32Bytes([1, 2, 3, 4]);
  const one2d = stFile({
    bias: { dtype: "F32", shape: [4], data_offsets: [0, 16] },
    tokens: { dtype: "I64", shape: [2], data_offsets: [16, 32] },
    acts: { dtype: "F32", shape: [2, 4], data_offsets: [32, 64] },
  }, new Uint8Array([...bias, ...new Uint8Array(16), ...a]));
  await withFile(one2d, async (p) => {
    assert.ok(sameValues(await readRows(p, 4, 2), X));
  });
  const two2d = stFile({
    resid_pre: { dtype: "F32", shape: [2, 4], data_offsets: [0, 32] },
    resid_post: { dtype: "F32", shape: [2, 4], data_offsets: [32, 64] },
  }, new Uint8Array([...a, ...b]));
  await rejects(two2d, /has 2 2-D tensors \('resid_pre' F32\[2, 4\], 'resid_post'.*#NAME/);
  await withFile(two2d, async (p) => {
    assert.ok(sameValues(await readRows(`${p}#resid_post`, 4, 2), X.map((v) => v * 10)));
    assert.ok(sameValues(await readRows(`${p}#resid_pre`, 4, 2), X));
    const glob = p.replace("acts.safetensors", "*.safetensors");
    assert.ok(sameValues(await readRows(`${glob}#resid_post`, 4, 2), X.map((v) => v * 10)));
    await assert.rejects(
      FileSource.open(`${p}#nope`, 4),
      /has no tensor 'nope'; it holds 'resid_pre'/,
    );
  });
  await rejects(
    stFile({ bias: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, bias),
    /has no 2-D tensor to read rows from \(it holds 'bias' F32\[4\]\)/,
  );
  await rejects(stFile({}, new Uint8Array(0)), /no 2-D tensor.*no tensors/);
  await rejects(
    stFile({ bias: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, bias),
    /tensor 'bias' F32\[4\] is not 2-D/,
    "bias",
  );
});

Deno.test("safetensors source: header errors are one-line UserErrors", async () => {
  const ok = { acts: { dtype: "F32", shape: [2, 4], data_offsets: [0, 32] } };
  const data = f32Bytes(X);
  await rejects(
    stFile({ acts: { dtype: "I32", shape: [2, 4], data_offsets: [0, 32] } }, data),
    /tensor 'acts' has dtype I32; supported: F32, F16, BF16/,
  );
  await rejects(
    stFile({ acts: { dtype: "F64", shape: [2, 2], data_offsets: [0, 32] } }, data),
    /dtype F64; supported/,
  );
  await rejects(
    stFile({ acts: { dtype: "Q4", shape: [2, 4], data_offsets: [0, 32] } }, data),
    /unknown dtype "Q4"/,
  );
  await rejects(
    stFile(ok, data.subarray(0, 20)),
    /is truncated: its header needs \d+ bytes but the file is \d+/,
  );
  await rejects(
    stFile({ acts: { dtype: "F32", shape: [3, 4], data_offsets: [0, 32] } }, data),
    /does not fit its data_offsets span of 32 bytes/,
  );
  await rejects(
    stFile({ acts: { dtype: "F32", shape: [2, 4], data_offsets: [32, 0] } }, data),
    /end before begin/,
  );
  await rejects(stFile({ acts: [1] }, data), /entry is not an object/);
  await rejects(stFile([1], data), /does not start with '\{'/);
  const good = stFile(ok, data);
  const lying = good.slice();
  lying[6] = 1; // header length 2^48 + ...
  await rejects(lying, /exceeds the 100000000-byte limit/);
  const past = good.slice();
  past[0] = 0xf0;
  past[1] = 0x0f;
  await rejects(past, /header length 4080 runs past the end of the \d+-byte file/);
  await rejects(good.subarray(0, 5), /shorter than the 8-byte header length/);
  const notJson = good.slice();
  notJson[9] = 0x7b;
  await rejects(notJson, /not valid JSON/);
  await withFile(good, async (p) => {
    await assert.rejects(FileSource.open(p, 16), /has d=4 but d_in is 16; pass --d-in 4/);
  });
});
