/**
 * SIGINT during `sae harvest`: exit 130 with one line naming --resume, every finished shard kept,
 * and the resumed harvest writes the same files as an uninterrupted one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { llama2cTokenizerBytes, randomTensors, TINY_CONFIGS, writeHfDir } from "../lm/fixtures.ts";
import { sameBytes } from "./helpers.ts";

function harvestChild(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "src/cli/main.ts", "harvest", ...args],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const done = (async () => {
    const text = new TextDecoder().decode((await child.output()).stderr);
    return { code: (await child.status).code, stderr: text };
  })();
  return { child, done };
}

async function shardsIn(dir: string): Promise<number> {
  try {
    return JSON.parse(await Deno.readTextFile(join(dir, "manifest.json"))).shards.length;
  } catch {
    return 0;
  }
}

Deno.test("SIGINT during sae harvest keeps finished shards, exits 130, and --resume completes it exactly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-harvest-sig-" });
  try {
    const cfg = TINY_CONFIGS.llama;
    const model = await writeHfDir(join(dir, "m"), cfg, randomTensors(cfg, 5));
    const tok = join(dir, "tok61.bin");
    await Deno.writeFile(tok, llama2cTokenizerBytes(61));
    const words = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
    const docs = Array.from(
      { length: 4000 },
      (_, i) =>
        Array.from(
          { length: 3 + (i % 7) },
          (_, w) => words.slice((i * 7 + w * 3) % 30, ((i * 7 + w * 3) % 30) + 2),
        ).join(" ") + ".",
    );
    const text = join(dir, "a.txt");
    await Deno.writeTextFile(text, docs.join("\n\n") + "\n");
    // 2 contexts of 37 tokens per shard, one context per forward: many small shards.
    const args = (out: string) => [
      "--model",
      model,
      "--tokenizer",
      tok,
      "--hook",
      "blocks.1.hook_resid_pre",
      "--text",
      text,
      "--context",
      "37",
      "--tokens",
      "4000",
      "--shard-rows",
      "72",
      "--batch",
      "1",
      "--out",
      out,
      "--no-progress",
    ];
    const out = join(dir, "cut");
    const run = harvestChild(args(out));
    const t0 = Date.now();
    while ((await shardsIn(out)) < 2) {
      assert.ok(Date.now() - t0 < 120_000, "no shard after 120 s");
      await new Promise((r) => setTimeout(r, 50));
    }
    run.child.kill("SIGINT");
    const cut = await run.done;
    assert.equal(cut.code, 130, cut.stderr);
    const last = cut.stderr.trim().split("\n").at(-1)!;
    assert.match(last, /^harvest interrupted after \d+ complete shard\(s\) in .*--resume$/);
    const kept = await shardsIn(out);
    assert.ok(kept >= 2 && kept < 56, `${kept} shards kept`);
    for (const e of Deno.readDirSync(out)) assert.ok(!/tmp/.test(e.name), `left ${e.name}`);

    const resumed = await harvestChild([...args(out), "--resume"]).done;
    assert.equal(resumed.code, 0, resumed.stderr);
    const full = await harvestChild(args(join(dir, "full"))).done;
    assert.equal(full.code, 0, full.stderr);
    const m = JSON.parse(await Deno.readTextFile(join(out, "manifest.json")));
    const f = JSON.parse(await Deno.readTextFile(join(dir, "full", "manifest.json")));
    assert.equal(m.shards.length, f.shards.length);
    for (const s of f.shards) {
      assert.ok(await sameBytes(join(out, s.acts), join(dir, "full", s.acts)), s.acts);
      assert.ok(await sameBytes(join(out, s.tokens), join(dir, "full", s.tokens)), s.tokens);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
