import assert from "node:assert/strict";
import {
  defaultShardRows,
  HARVEST_DEFAULTS,
  parseCount,
  parseHarvestFlags,
} from "../../src/cli/harvest_options.ts";
import { UserError } from "../../src/errors.ts";

const BASE = { model: "m/", hook: "blocks.2.hook_resid_pre", text: ["a.txt"], out: "acts" };

function throwsUser(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UserError, `expected UserError, got ${err}`);
    assert.ok(!err.message.includes("\n"));
    assert.match(err.message, pattern);
    return true;
  });
}

Deno.test("parseCount: plain, underscores, exponents and k/M/G suffixes", () => {
  assert.equal(parseCount("2000000", "--tokens"), 2_000_000);
  assert.equal(parseCount("2_000_000", "--tokens"), 2_000_000);
  assert.equal(parseCount("2e6", "--tokens"), 2_000_000);
  assert.equal(parseCount("2M", "--tokens"), 2_000_000);
  assert.equal(parseCount("500k", "--tokens"), 500_000);
  assert.equal(parseCount("1.5G", "--tokens"), 1_500_000_000);
  for (const bad of ["0", "-5", "1.5", "2X", "", "M", "1e400"]) {
    throwsUser(() => parseCount(bad, "--tokens"), /--tokens .* is not a positive whole number/);
  }
});

Deno.test("parseHarvestFlags: defaults, values, and one-line errors naming the flag", () => {
  const plan = parseHarvestFlags(BASE);
  assert.equal(plan.context, HARVEST_DEFAULTS.context);
  assert.equal(plan.tokens, HARVEST_DEFAULTS.tokens);
  assert.equal(plan.dtype, "f32");
  assert.equal(plan.shardRows, null);
  assert.equal(plan.resume, false);
  const full = parseHarvestFlags({
    ...BASE,
    context: "37",
    tokens: "3M",
    dtype: "f16",
    shardRows: "64k",
    batch: "4",
    shuffleSeed: "9",
    resume: true,
    progress: false,
    tokenizer: "tok.bin",
  });
  assert.deepEqual(
    [
      full.context,
      full.tokens,
      full.dtype,
      full.shardRows,
      full.batch,
      full.shuffleSeed,
      full.resume,
    ],
    [37, 3_000_000, "f16", 64_000, 4, 9, true],
  );
  assert.equal(full.tokenizer, "tok.bin");
  throwsUser(() => parseHarvestFlags({ ...BASE, model: undefined }), /--model is required/);
  throwsUser(() => parseHarvestFlags({ ...BASE, hook: "" }), /--hook is required/);
  throwsUser(() => parseHarvestFlags({ ...BASE, out: undefined }), /--out is required/);
  throwsUser(() => parseHarvestFlags({ ...BASE, text: [] }), /--text is required/);
  throwsUser(
    () => parseHarvestFlags({ ...BASE, context: "1" }),
    /--context 1 must be a whole number of at least 2/,
  );
  throwsUser(() => parseHarvestFlags({ ...BASE, context: "12.5" }), /--context 12\.5/);
  throwsUser(() => parseHarvestFlags({ ...BASE, dtype: "bf16" }), /--dtype bf16 is not supported/);
  throwsUser(() => parseHarvestFlags({ ...BASE, batch: "0" }), /--batch 0/);
  assert.equal(defaultShardRows(768, "f32"), Math.floor((256 << 20) / (768 * 4)));
  assert.equal(defaultShardRows(768, "f16"), 2 * defaultShardRows(768, "f32"));
});
