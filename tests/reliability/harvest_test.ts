/**
 * The harvest's resume, by the rules: the text it depends on is identified by its
 * content (moved files resume; changed ones are refused before anything is written).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { harvest, type HarvestOptions } from "../../src/lm/harvest.ts";
import { inspectText } from "../../src/lm/text.ts";
import type { Tokenizer } from "../../src/lm/tokenizer.ts";
import { UserError } from "../../src/errors.ts";

const tokenizer: Tokenizer = {
  name: "test:letters",
  vocabSize: 40,
  bos: 1,
  eos: 2,
  encode: (s) => Array.from(s, (c) => (c.charCodeAt(0) % 30) + 3),
  decode: () => "",
};

/** Rows that depend on the tokens (context-major, BOS rows left out), width 2. */
function activations(tokens: Int32Array): Promise<Float32Array> {
  const C = 6, n = tokens.length / C;
  const out = new Float32Array(n * (C - 1) * 2);
  for (let c = 0; c < n; c++) {
    for (let p = 1; p < C; p++) {
      const r = (c * (C - 1) + p - 1) * 2;
      out[r] = tokens[c * C + p];
      out[r + 1] = tokens[c * C + p - 1];
    }
  }
  return Promise.resolve(out);
}

async function options(text: string, outDir: string, over: Partial<HarvestOptions> = {}) {
  return {
    contexts: { sources: await inspectText([text]), tokenizer, context: 6 },
    activations,
    d: 2,
    tokens: 200,
    shardRows: 25,
    dtype: "f32",
    outDir,
    batchContexts: 2,
    manifest: {
      model: { name: "fake" },
      hook: "blocks.0.hook_resid_pre",
      tokenizer: { name: "t", sha256: null },
    },
    log: () => {},
    ...over,
  } satisfies HarvestOptions;
}

async function files(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const e of Deno.readDirSync(dir)) {
    if (e.name !== "manifest.json") out.set(e.name, await Deno.readFile(join(dir, e.name)));
  }
  return out;
}

Deno.test("harvest resume: moved text files resume; text with other content is refused before any write", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-harvest-text-" });
  const text = join(dir, "a.jsonl");
  const docs = Array.from(
    { length: 80 },
    (_, i) => JSON.stringify({ text: `doc ${i} ${"xyz".repeat(i % 7)}` }),
  );
  await Deno.writeTextFile(text, docs.join("\n") + "\n");
  await harvest(await options(text, join(dir, "whole")));

  const out = join(dir, "out");
  const ac = new AbortController();
  let calls = 0;
  const r = await harvest(
    await options(text, out, {
      signal: ac.signal,
      activations: (t) => {
        if (++calls === 6) ac.abort();
        return activations(t);
      },
    }),
  );
  assert.equal(r.interrupted, true);
  const moved = join(dir, "moved.jsonl");
  await Deno.rename(text, moved);

  const changed = join(dir, "changed.jsonl");
  await Deno.writeTextFile(changed, docs.reverse().join("\n") + "\n");
  const before = await files(out);
  const err = await harvest(await options(changed, out, { resume: true })).then(
    () => null,
    (e) => e,
  );
  assert.ok(err instanceof UserError, String(err));
  assert.match(
    err.message,
    /cannot resume: .*manifest\.json was made with text \(SHA-256 of each file\)/,
  );
  assert.deepEqual(await files(out), before, "nothing written");

  const notes: string[] = [];
  await harvest(await options(moved, out, { resume: true, log: (l) => notes.push(l) }));
  assert.ok(notes.some((l) => /other paths than manifest\.json records, the same content/.test(l)));
  assert.deepEqual(await files(out), await files(join(dir, "whole")));
  await Deno.remove(dir, { recursive: true });
});
