/**
 * `sae train --model DIR --hook H --text FILE...`: a live run on a tiny random llama writes the
 * model's keys into config.yaml and the SAELens export, logs the model's and the SAE's rates, and
 * is evaluated with the model spliced in; every bad input is one line with exit status 2.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { runCli } from "../helpers/cli.ts";
import { withTemp } from "../helpers/check.ts";
import { tinyTokenizer } from "../eval/lm_helpers.ts";
import { LIVE_HOOK, liveFixture, randomText } from "../lm/live_fixture.ts";

const sae = (argv: string[]) => runCli(argv, { consoleError: true });

Deno.test("sae train --model: a live run records the model's keys, logs both rates, exports and evaluates", async () => {
  await withTemp(async (dir) => {
    const fx = await liveFixture(dir);
    const run = join(dir, "run");
    const r = await sae(["train", ...fx.args, "--steps", "40", "--out", run]);
    assert.equal(r.code, 0, r.err);
    assert.match(
      r.err,
      /step 40\/40 .*\| LM [\d,]+ tok\/s \(\d+% of the time\) \| SAE [\d.]+ steps\/s \| (LM|SAE)-bound/,
    );
    const cfg = parseYaml(await Deno.readTextFile(join(run, "config.yaml")));
    assert.equal(cfg.data, "live");
    assert.equal(cfg.model, fx.model);
    assert.equal(cfg.model_name, "m");
    assert.equal(cfg.hook_name, LIVE_HOOK);
    assert.equal(cfg.context_size, 16);
    assert.equal(cfg.prepend_bos, true);
    assert.equal(cfg.dataset_path, fx.text);
    assert.equal(cfg.d_in, 36, "d_in comes from the hook");
    const lines = (await Deno.readTextFile(join(run, "metrics.jsonl"))).trim().split("\n");
    const last = JSON.parse(lines[lines.length - 1]);
    assert.ok(last.lm_tokens_per_s > 0 && last.sae_steps_per_s > 0, lines[lines.length - 1]);
    assert.ok(["lm", "sae"].includes(last.bound));

    const sl = join(dir, "sl");
    const e = await sae(["export", run, "--format", "saelens", "--out", sl]);
    assert.equal(e.code, 0, e.err);
    const exported = JSON.parse(await Deno.readTextFile(join(sl, "cfg.json")));
    const meta = exported.metadata ?? exported;
    assert.equal(meta.model_name, "m");
    assert.equal(meta.hook_name, LIVE_HOOK);
    assert.equal(meta.context_size, 16);
    assert.equal(meta.prepend_bos, true);
    assert.equal(meta.dataset_path, fx.text);

    // sae eval --model finds the hook in config.yaml.
    const v = await sae([
      "eval",
      run,
      "--model",
      fx.model,
      "--tokenizer",
      fx.tokenizer,
      "--text",
      fx.text,
      "--context",
      "16",
      "--batch",
      "2",
      "--recon-batches",
      "2",
    ]);
    assert.equal(v.code, 0, v.err);
    const report = JSON.parse(await Deno.readTextFile(join(run, "eval.json")));
    assert.equal(report.lm.hook, LIVE_HOOK);
  });
});

Deno.test("sae train --model: each bad input is one line and exit status 2", async () => {
  await withTemp(async (dir) => {
    const fx = await liveFixture(dir);
    const tok50 = join(dir, "tok50.bin");
    await Deno.writeFile(tok50, tinyTokenizer(50));
    const tiny = join(dir, "tiny.txt");
    await Deno.writeTextFile(tiny, "a b c.");
    const short = join(dir, "short.txt");
    await Deno.writeTextFile(short, randomText(60, 2));
    const swap = (flag: string, value: string) => {
      const a = [...fx.args];
      a[a.indexOf(flag) + 1] = value;
      return a;
    };
    const cases: [string[], RegExp][] = [
      [
        swap("--hook", "blocks.2.hook_mlp_out"),
        /hook 'blocks\.2\.hook_mlp_out' does not exist .*valid hooks are blocks\.L\.\{hook_resid_pre,hook_attn_out,hook_mlp_out,hook_resid_post\} for L in 0\.\.1/,
      ],
      [[...fx.args, "--d-in", "32"], /d_in is 32 but blocks\.1\.hook_resid_pre of m is 36 wide/],
      [swap("--tokenizer", tok50), /the tokenizer has 50 tokens but the model's vocabulary/],
      [swap("--text", tiny), /shorter than one context of 16 tokens/],
      [swap("--text", short), /fewer than the 8 contexts of 16 tokens the mixing buffer holds/],
      [[...fx.args, "--data", "acts/"], /--data and --model exclude each other/],
      [["--text", fx.text, "--no-progress"], /--text applies only to live training \(--model\)/],
      [
        swap("--buffer-contexts", "6"),
        /--buffer-contexts 6 must be a multiple of 2 × --lm-batch 2/,
      ],
    ];
    for (const [i, [args, want]] of cases.entries()) {
      const r = await sae(["train", ...args, "--steps", "5", "--out", join(dir, `bad${i}`)]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
      const errLine = r.err.split("\n").filter((l) => l.startsWith("error: "));
      assert.equal(errLine.length, 1, r.err);
      assert.match(errLine[0], want);
    }
  });
});
