import assert from "node:assert/strict";
import { join } from "node:path";
import { Command } from "@commander-js/extra-typings";
import { DEFAULT_CONFIG } from "../../src/config.ts";
import { UserError } from "../../src/errors.ts";
import { buildProgram, main } from "../../src/cli/main.ts";
import { makeTrainCommand, parseTrainArgs, timestampName } from "../../src/cli/train.ts";
import { writeConfig } from "../../src/run/rundir.ts";
import { rejectsUserError, withTemp } from "../helpers/check.ts";
import { captureIo } from "../helpers/cli.ts";

Deno.test("no arguments: DEFAULT_CONFIG and a timestamped run directory", async () => {
  const { cfg, opts } = await parseTrainArgs([]);
  assert.deepEqual(cfg, DEFAULT_CONFIG);
  assert.match(opts.outDir, /^runs\/\d{8}-\d{6}$/);
  assert.equal(opts.resume, false);
  assert.equal(opts.overwrite, false);
  assert.equal(opts.progress, Deno.stdout.isTerminal());
  assert.equal(timestampName(new Date(2026, 10, 24, 13, 15, 0)), "20261124-131500");
});

Deno.test("precedence: defaults < --config < --set < flags", async () => {
  await withTemp(async (dir) => {
    const file = join(dir, "c.yaml");
    await Deno.writeTextFile(
      file,
      "steps: 100\nlr: 0.001\nl1: 0.5\nbatch: 64\nsynthetic:\n  n_features: 300\n  seed: 7\n",
    );
    const { cfg } = await parseTrainArgs([
      "--config",
      file,
      "--set",
      "steps=200",
      "--set",
      "lr=0.002",
      "--set",
      "synthetic.n_features=400",
      "--steps",
      "300",
    ]);
    assert.equal(cfg.steps, 300, "a flag beats --set and the file");
    assert.equal(cfg.lr, 0.002, "--set beats the file");
    assert.equal(cfg.synthetic.n_features, 400, "--set reaches nested keys");
    assert.equal(cfg.synthetic.seed, 7, "the file's other nested keys survive");
    assert.equal(cfg.l1, 0.5, "the file beats the defaults");
    assert.equal(cfg.batch, 64, "the file beats the defaults of keys that have a flag");
    assert.equal(cfg.d_sae, DEFAULT_CONFIG.d_sae);
    assert.equal(cfg.synthetic.mean_l0, DEFAULT_CONFIG.synthetic.mean_l0);
  });
});

Deno.test("every named flag sets its key", async () => {
  const { cfg, opts } = await parseTrainArgs([
    "--steps=11",
    "--seed=12",
    "--d-in=13",
    "--d-sae=14",
    "--batch=15",
    "--lr=0.5",
    "--l1=0.25",
    "--warmup-steps=16",
    "--checkpoint-every=17",
    "--log-every=18",
    "--data=123",
    "--out=somewhere",
    "--overwrite",
    "--no-progress",
  ]);
  assert.deepEqual(
    [cfg.steps, cfg.seed, cfg.d_in, cfg.d_sae, cfg.batch, cfg.lr, cfg.l1],
    [11, 12, 13, 14, 15, 0.5, 0.25],
  );
  assert.deepEqual([cfg.warmup_steps, cfg.checkpoint_every, cfg.log_every], [16, 17, 18]);
  assert.equal(cfg.data, "123", "a string key keeps its text");
  assert.deepEqual(opts, { outDir: "somewhere", resume: false, overwrite: true, progress: false });
  assert.equal((await parseTrainArgs(["--name", "exp1"])).opts.outDir, "runs/exp1");
});

Deno.test("bad values and usage errors become one-line UserErrors", async () => {
  await rejectsUserError(
    () => parseTrainArgs(["--steps", "abc"]),
    /^invalid value 'abc' for 'steps' in --steps \(expected an integer >= 1\)$/,
  );
  await rejectsUserError(() => parseTrainArgs(["--lr", "0"]), /'lr' in --lr/);
  await rejectsUserError(() => parseTrainArgs(["--batch", "70000"]), /65535/);
  await rejectsUserError(
    () => parseTrainArgs(["--set", "synthetic.n_feature=3"]),
    /unknown config key 'synthetic\.n_feature' in --set .*did you mean 'synthetic\.n_features'/,
  );
  await rejectsUserError(() => parseTrainArgs(["--set", "steps"]), /KEY=VALUE/);
  await rejectsUserError(() => parseTrainArgs(["--stepz", "3"]), /unknown option '--stepz'/);
  await rejectsUserError(() => parseTrainArgs(["--steps"]), /argument missing/);
  await rejectsUserError(() => parseTrainArgs(["extra"]), /too many arguments/);
  await rejectsUserError(() => parseTrainArgs(["--name", "a/b"]), /--name/);
  await rejectsUserError(() => parseTrainArgs(["--name", "a", "--out", "b"]), /--name/);
  await rejectsUserError(() => parseTrainArgs(["--config", "/nonexistent/x.yaml"]), /not found/);
});

Deno.test("--resume uses DIR/config.yaml as the base; flags still override", async () => {
  await withTemp(async (dir) => {
    await writeConfig(dir, { ...DEFAULT_CONFIG, steps: 1000, lr: 0.01 });
    const { cfg, opts } = await parseTrainArgs(["--resume", dir, "--steps", "2000"]);
    assert.equal(cfg.steps, 2000);
    assert.equal(cfg.lr, 0.01);
    assert.deepEqual(opts, { outDir: dir, resume: true, overwrite: false, progress: false });
    await rejectsUserError(() => parseTrainArgs(["--resume", dir, "--config", "x"]), /--config/);
    await rejectsUserError(() => parseTrainArgs(["--resume", dir, "--overwrite"]), /contradict/);
    await rejectsUserError(() => parseTrainArgs(["--resume", dir, "--out", "elsewhere"]), /--out/);
    await rejectsUserError(
      () => parseTrainArgs(["--resume", join(dir, "nothing")]),
      /no config\.yaml there/,
    );
  });
});

Deno.test("help lists every option with its default, taken from DEFAULT_CONFIG", () => {
  const cmd = makeTrainCommand();
  const help = cmd.helpInformation();
  for (const opt of cmd.options) {
    assert.match(opt.description, /\(default: [^)]+\)/, `${opt.flags} shows no default`);
    assert.ok(help.includes(opt.long!), `${opt.long} missing from help`);
    assert.equal(opt.defaultValue, undefined, `${opt.flags}: commander must inject no default`);
  }
  const flags = cmd.options.map((o) => o.long);
  for (
    const f of [
      "--config",
      "--out",
      "--name",
      "--steps",
      "--seed",
      "--d-in",
      "--d-sae",
      "--batch",
      "--lr",
      "--l1",
      "--warmup-steps",
      "--checkpoint-every",
      "--log-every",
      "--data",
      "--resume",
      "--overwrite",
      "--no-progress",
      "--set",
    ]
  ) assert.ok(flags.includes(f), `${f} missing`);
  assert.match(
    help,
    new RegExp(`--steps <n> +total optimizer steps \\(default: ${DEFAULT_CONFIG.steps}\\)`),
  );
});

Deno.test("main: --help exits 0 and prints the program's and the command's help", async () => {
  for (const argv of [["--help"], ["train", "--help"], ["help", "train"]]) {
    const io = captureIo();
    assert.equal(await main(argv, io), 0, argv.join(" "));
    assert.match(io.out.join(""), argv.length === 1 ? /Commands:\n +train/ : /--checkpoint-every/);
  }
  // The command's help ends with every config key and its default.
  const io = captureIo();
  await main(["train", "--help"], io);
  assert.match(io.out.join(""), /synthetic\.n_features +256\n/);
  assert.match(io.out.join(""), new RegExp(`\n +weight_decay +${DEFAULT_CONFIG.weight_decay}\n`));
});

Deno.test("main: usage errors exit 2, UserErrors print one line and exit 2", async () => {
  let io = captureIo();
  assert.equal(await main(["train", "--bogus"], io), 2);
  assert.match(io.err.join(""), /^error: unknown option '--bogus'/);
  io = captureIo();
  assert.equal(await main(["nope"], io), 2);
  assert.match(io.err.join(""), /unknown command 'nope'/);
  io = captureIo();
  assert.equal(await main(["train", "--d-in", "0"], io), 2);
  assert.deepEqual(io.err, [
    "error: invalid value 0 for 'd_in' in --d-in (expected an integer >= 1)\n",
  ]);
});

Deno.test("main: any other error prints its stack and exits 1", async () => {
  const io = captureIo();
  const program = buildProgram(io);
  const boom = new Command("boom").action(() => {
    throw new Error("kaboom");
  });
  boom.copyInheritedSettings(program);
  program.addCommand(boom);
  assert.equal(await main(["boom"], io, program), 1);
  assert.match(io.err.join(""), /Error: kaboom\n\s+at /);
});

Deno.test("the real entry point exits 2 with one line on stderr", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", "src/cli/main.ts", "train", "--set", "d_sea=3"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 2);
  assert.equal(new TextDecoder().decode(stdout), "");
  assert.equal(
    new TextDecoder().decode(stderr),
    "error: unknown config key 'd_sea' in --set d_sea=3 (did you mean 'd_sae'?)\n",
  );
});

Deno.test("--skip-bad-rows sets skip_bad_rows; without it the default (false) holds", async () => {
  const on = await parseTrainArgs(["--skip-bad-rows", "--out", "/tmp/x-skip"]);
  assert.equal(on.cfg.skip_bad_rows, true);
  const off = await parseTrainArgs(["--out", "/tmp/x-skip"]);
  assert.equal(off.cfg.skip_bad_rows, false);
});

Deno.test("--tensor names the safetensors tensor; it needs safetensors data", async () => {
  const { cfg } = await parseTrainArgs([
    "--data",
    "acts/*.safetensors",
    "--tensor",
    "resid",
    "--out",
    "/tmp/x",
  ]);
  assert.equal(cfg.data, "acts/*.safetensors#resid");
  await assert.rejects(
    () => parseTrainArgs(["--data", "acts.npy", "--tensor", "resid", "--out", "/tmp/x"]),
    (e: Error) =>
      e instanceof UserError && /--tensor needs --data naming \.safetensors/.test(e.message),
  );
});
