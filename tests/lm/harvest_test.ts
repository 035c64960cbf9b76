import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../src/cli/main.ts";
import { readNpyShard } from "../../src/data/npy.ts";
import { ContextStream } from "../../src/lm/contexts.ts";
import {
  harvest,
  type HarvestManifest,
  type HarvestOptions,
  sha256File,
} from "../../src/lm/harvest.ts";
import type { Tokenizer } from "../../src/lm/tokenizer.ts";
import { inspectText, type TextSource } from "../../src/lm/text.ts";
import { Rng } from "../../src/rng.ts";
import { rejectsUserError, withTemp } from "../helpers/check.ts";

const BOS = 1;
const VOCAB = 40;
const D = 5;

/** Letters a..z are 10..35, '^' is BOS. */
const tokenizer: Tokenizer = {
  name: "test:letters",
  vocabSize: VOCAB,
  bos: BOS,
  eos: 2,
  encode: (text) => Array.from(text, (c) => (c === "^" ? BOS : c.charCodeAt(0) - 97 + 10)),
  decode: (ids) => ids.map((i) => (i === BOS ? "^" : String.fromCharCode(i - 10 + 97))).join(""),
};

/** A fixed random embedding E: [VOCAB, D]. */
const E = (() => {
  const rng = new Rng(99);
  return Float32Array.from({ length: VOCAB * D }, () => rng.normal());
})();

/**
 * The fake model: the activation at position p of a context is E[t_p] + 0.5·E[t_(p−1)] (so it
 * depends on the context, not only the token); rows for p = 1..C−1, context-major.
 */
function fakeActivations(tokens: Int32Array, C: number): Float32Array {
  const n = tokens.length / C;
  const out = new Float32Array(n * (C - 1) * D);
  for (let c = 0; c < n; c++) {
    for (let p = 1; p < C; p++) {
      const row = (c * (C - 1) + p - 1) * D;
      const t = tokens[c * C + p], prev = tokens[c * C + p - 1];
      for (let k = 0; k < D; k++) out[row + k] = E[t * D + k] + 0.5 * E[prev * D + k];
    }
  }
  return out;
}

async function corpus(dir: string, docs = 60): Promise<TextSource[]> {
  const rng = new Rng(5);
  const lines: string[] = [];
  for (let i = 0; i < docs; i++) {
    let s = "";
    const n = 1 + rng.int(25);
    for (let k = 0; k < n; k++) s += String.fromCharCode(97 + rng.int(26));
    lines.push(JSON.stringify({ text: s }));
  }
  const path = join(dir, "text.jsonl");
  await Deno.writeTextFile(path, lines.join("\n"));
  return inspectText([path]);
}

function options(
  sources: TextSource[],
  outDir: string,
  over: Partial<HarvestOptions> = {},
): HarvestOptions {
  const C = 8;
  return {
    contexts: { sources, tokenizer, context: C },
    activations: (t) => Promise.resolve(fakeActivations(t, C)),
    d: D,
    tokens: 100,
    shardRows: 30,
    dtype: "f32",
    outDir,
    batchContexts: 3,
    manifest: {
      model: { name: "fake-embedding" },
      hook: "blocks.0.hook_resid_pre",
      tokenizer: { name: tokenizer.name, sha256: null },
    },
    log: () => {},
    ...over,
  };
}

/** The raw data of an .npy file after its header, as the shard's element type. */
async function npyData(path: string): Promise<{ shape: number[]; data: Uint8Array }> {
  const bytes = await Deno.readFile(path);
  const headerLen = bytes[8] | (bytes[9] << 8);
  const header = new TextDecoder().decode(bytes.subarray(10, 10 + headerLen));
  const shape = /'shape': \((\d+), (\d+)\)/.exec(header)!.slice(1).map(Number);
  return { shape, data: bytes.slice(10 + headerLen) };
}

async function readManifest(dir: string): Promise<HarvestManifest> {
  return JSON.parse(await Deno.readTextFile(join(dir, "manifest.json")));
}

async function dirBytes(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) out.set(e.name, await Deno.readFile(join(dir, e.name)));
  return out;
}

Deno.test("harvest: shards hold the recomputed activations, BOS rows left out, tokens beside", async () => {
  await withTemp(async (dir) => {
    const sources = await corpus(dir);
    const out = join(dir, "acts");
    const { manifest, written } = await harvest(options(sources, out));
    // 100 tokens at 7 rows per context: 15 contexts; 30 rows per shard: 4 contexts per shard.
    assert.equal(written, 4);
    assert.equal(manifest.contexts, 15);
    assert.equal(manifest.tokens, 105);
    assert.deepEqual(manifest.shards.map((s) => s.contexts), [4, 4, 4, 3]);
    assert.equal(manifest.complete, true);
    assert.equal(manifest.text_exhausted, false);
    assert.equal(manifest.context_size, 8);
    assert.equal(manifest.bos_token_id, BOS);
    assert.match(manifest.excluded, /position 0 of every context/);
    assert.equal(manifest.text[0].sha256, sources[0].sha256);
    assert.equal(manifest.tool.name, "sae");
    assert.match(manifest.tool.version, /^\d+\.\d+\.\d+/);
    assert.deepEqual(await readManifest(out), manifest);

    // The contexts, as the stream gives them, and the activations recomputed from them.
    const stream = ContextStream.open({ sources, tokenizer, context: 8 });
    const all = (await stream.next(15))!;
    let ctx = 0;
    for (const [i, s] of manifest.shards.entries()) {
      assert.equal(s.acts, `acts-${i}.npy`);
      assert.equal(await sha256File(join(out, s.acts)), s.acts_sha256);
      assert.equal(await sha256File(join(out, s.tokens)), s.tokens_sha256);
      const info = await readNpyShard(join(out, s.acts));
      assert.deepEqual([info.rows, info.d, info.dtype], [s.rows, D, "f32"]);
      const toks = await npyData(join(out, s.tokens));
      assert.deepEqual(toks.shape, [s.contexts, 8]);
      const ids = new Int32Array(toks.data.buffer, 0, s.contexts * 8);
      assert.deepEqual(ids, all.tokens.subarray(ctx * 8, (ctx + s.contexts) * 8));
      for (let c = 0; c < s.contexts; c++) assert.equal(ids[c * 8], BOS);
      const acts = await npyData(join(out, s.acts));
      const got = new Float32Array(acts.data.buffer, 0, s.rows * D);
      assert.deepEqual(got, fakeActivations(ids, 8));
      assert.equal(s.rows, s.contexts * 7, "one row per non-BOS position");
      ctx += s.contexts;
    }
    // Nothing else was left behind.
    assert.deepEqual(
      [...(await dirBytes(out)).keys()].sort(),
      ["manifest.json", ...[0, 1, 2, 3].flatMap((i) => [`acts-${i}.npy`, `tokens-${i}.npy`])]
        .sort(),
    );
  });
});

Deno.test("harvest: f16 shards hold the activations rounded to f16; out-of-range values refused", async () => {
  await withTemp(async (dir) => {
    const sources = await corpus(dir);
    const out = join(dir, "h");
    const { manifest } = await harvest(options(sources, out, { dtype: "f16", tokens: 20 }));
    const s = manifest.shards[0];
    assert.equal((await readNpyShard(join(out, s.acts))).dtype, "f16");
    const ids = new Int32Array((await npyData(join(out, s.tokens))).data.buffer);
    const got = new Float16Array((await npyData(join(out, s.acts))).data.buffer);
    assert.deepEqual(got, new Float16Array(fakeActivations(ids.subarray(0, s.contexts * 8), 8)));
    await rejectsUserError(
      () =>
        harvest(options(sources, join(dir, "big"), {
          dtype: "f16",
          activations: (t) => Promise.resolve(fakeActivations(t, 8).map((v) => v * 1e6)),
        })),
      /acts-0\.npy: activation value .* is outside f16's range \(±65504\); harvest with --dtype f32/,
    );
  });
});

Deno.test("harvest: killed after k shards and resumed gives the files of an uninterrupted run", async () => {
  await withTemp(async (dir) => {
    const sources = await corpus(dir);
    const whole = join(dir, "whole");
    await harvest(options(sources, whole));
    const want = await dirBytes(whole);
    for (const k of [0, 1, 2, 3]) {
      const out = join(dir, `killed-${k}`);
      // The model fails in shard k (in its second batch, after one was written; the last shard
      // has one batch), as a crash would stop it. Shards of 4 contexts in batches of 3: 2 calls.
      let calls = 0;
      const failAt = k < 3 ? 2 * k + 2 : 2 * k + 1;
      await assert.rejects(
        harvest(options(sources, out, {
          activations: (t) => {
            if (++calls === failAt) throw new Error("killed");
            return Promise.resolve(fakeActivations(t, 8));
          },
        })),
        /killed/,
      );
      const m = await readManifest(out).catch(() => null);
      assert.equal(m?.shards.length ?? 0, k, `manifest lists the ${k} complete shards`);
      // As if the kill came after shard k's files were renamed but before the manifest listed
      // them: a stray shard file that must be written again, and a stale temporary file.
      await Deno.writeTextFile(join(out, `acts-${k}.npy`), "stray");
      await Deno.writeTextFile(join(out, `acts-${k}.npy.tmp-0123456789ab`), "half");
      if (k === 0) {
        // No shard recorded: the stray file is not overwritten; without it --resume starts afresh.
        await rejectsUserError(
          () => harvest(options(sources, out, { resume: true })),
          /holds acts-0\.npy but no manifest\.json .*move them away or choose another --out/,
        );
        await Deno.remove(join(out, "acts-0.npy"));
        await harvest(options(sources, out, { resume: true }));
      } else {
        const r = await harvest(options(sources, out, { resume: true }));
        assert.equal(r.written, 4 - k);
      }
      assert.deepEqual(await dirBytes(out), want, `resumed after ${k} shards`);
    }
    // Resuming a finished harvest changes nothing.
    const r = await harvest(options(sources, whole, { resume: true }));
    assert.equal(r.written, 0);
    assert.deepEqual(await dirBytes(whole), want);
  });
});

Deno.test("harvest: an aborted run stops between batches and resumes to the same files", async () => {
  await withTemp(async (dir) => {
    const sources = await corpus(dir);
    const whole = join(dir, "whole");
    await harvest(options(sources, whole));
    const out = join(dir, "aborted");
    const ac = new AbortController();
    let calls = 0;
    const r = await harvest(options(sources, out, {
      signal: ac.signal,
      activations: (t) => {
        if (++calls === 5) ac.abort();
        return Promise.resolve(fakeActivations(t, 8));
      },
    }));
    assert.equal(r.interrupted, true);
    assert.equal(r.manifest.complete, false);
    assert.equal(r.manifest.shards.length, 2);
    await harvest(options(sources, out, { resume: true }));
    assert.deepEqual(await dirBytes(out), await dirBytes(whole));
  });
});

Deno.test("harvest resume: checks the settings and every listed shard first", async () => {
  await withTemp(async (dir) => {
    const sources = await corpus(dir);
    const out = join(dir, "h");
    await harvest(options(sources, out, { tokens: 60 }));
    await rejectsUserError(
      () => harvest(options(sources, out, { tokens: 60 })),
      /already holds a harvest .*pass --resume/,
    );
    // Bad context settings stop before anything is created.
    const nowhere = join(dir, "never");
    await rejectsUserError(
      () =>
        harvest(options(sources, nowhere, {
          contexts: { sources, tokenizer: { ...tokenizer, bos: null }, context: 8 },
        })),
      /names no BOS token/,
    );
    await assert.rejects(() => Deno.stat(nowhere), Deno.errors.NotFound);
    const other = {
      model: { name: "fake-embedding" },
      hook: "blocks.1.hook_resid_pre",
      tokenizer: { name: tokenizer.name, sha256: null },
    };
    await rejectsUserError(
      () => harvest(options(sources, out, { tokens: 60, resume: true, manifest: other })),
      /was made with hook "blocks\.0\.hook_resid_pre" but now "blocks\.1\.hook_resid_pre"; resume with the same settings/,
    );
    await rejectsUserError(
      () => harvest(options(sources, out, { tokens: 90, resume: true })),
      /made with --tokens 60 but now 90/,
    );
    const before = await dirBytes(out);
    // A damaged shard is refused, nothing is written.
    const acts1 = join(out, "acts-1.npy");
    const bytes = await Deno.readFile(acts1);
    bytes[bytes.length - 1] ^= 1;
    await Deno.writeFile(acts1, bytes);
    await rejectsUserError(
      () => harvest(options(sources, out, { tokens: 60, resume: true })),
      /acts-1\.npy does not match the SHA-256 manifest\.json lists .*delete it and the shards after it/,
    );
    // Deleted shards are written again.
    await Deno.remove(acts1);
    await Deno.remove(join(out, "acts-2.npy"));
    await harvest(options(sources, out, { tokens: 60, resume: true }));
    assert.deepEqual(await dirBytes(out), before);
    await Deno.writeTextFile(join(out, "manifest.json"), "{ damaged");
    await rejectsUserError(
      () => harvest(options(sources, out, { tokens: 60, resume: true })),
      /not valid JSON/,
    );
  });
});

Deno.test("harvest: text shorter than asked ends with what it gives, recorded", async () => {
  await withTemp(async (dir) => {
    const sources = await corpus(dir, 5);
    const notes: string[] = [];
    const { manifest } = await harvest(options(sources, join(dir, "h"), {
      tokens: 10_000,
      log: (l) => notes.push(l),
    }));
    assert.equal(manifest.text_exhausted, true);
    assert.equal(manifest.complete, true);
    assert.ok(manifest.contexts > 0 && manifest.tokens === manifest.contexts * 7);
    const last = manifest.shards[manifest.shards.length - 1];
    assert.equal((await readNpyShard(join(dir, "h", last.acts))).rows, last.rows);
    assert.equal(await sha256File(join(dir, "h", last.acts)), last.acts_sha256);
    assert.match(notes.join("\n"), /the text ended after \d+ tokens/);
  });
});

Deno.test("harvest: the shards train with sae train --data DIR", async () => {
  await withTemp(async (dir) => {
    const sources = await corpus(dir, 200);
    const out = join(dir, "acts");
    await harvest(options(sources, out, { tokens: 700, shardRows: 200 }));
    const run = join(dir, "run");
    const err: string[] = [];
    const code = await main(
      [
        "train",
        "--data",
        out,
        "--d-in",
        String(D),
        "--d-sae",
        "16",
        "--batch",
        "32",
        "--steps",
        "20",
        "--log-every",
        "10",
        "--out",
        run,
        "--no-progress",
      ],
      { writeOut: () => {}, writeErr: (t) => err.push(t) },
    );
    assert.equal(code, 0, err.join(""));
    const lines = (await Deno.readTextFile(join(run, "metrics.jsonl"))).trim().split("\n");
    assert.equal(JSON.parse(lines[lines.length - 1]).step, 20);
  });
});
