/** `sae train` takes d_in from the activation files when nothing sets it, and checks it when set. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { type CliIo, main } from "../../src/cli/main.ts";
import { parseTrainArgs, withDataWidth } from "../../src/cli/train.ts";
import { encodeNpyHeader } from "../../src/data/npy.ts";
import { Rng } from "../../src/rng.ts";
import { rejectsUserError, withTemp } from "../helpers/check.ts";

/** Writes a [rows, d] f32 .npy of random values. */
async function writeNpy(path: string, rows: number, d: number, seed: number): Promise<string> {
  const rng = new Rng(seed);
  const x = Float32Array.from({ length: rows * d }, () => rng.normal());
  const header = encodeNpyHeader(rows, d, "f32");
  const bytes = new Uint8Array(header.length + x.byteLength);
  bytes.set(header);
  bytes.set(new Uint8Array(x.buffer), header.length);
  await Deno.writeFile(path, bytes);
  return path;
}

/** d_in as `sae train argv` would run with it. */
async function resolvedDIn(argv: string[]): Promise<number> {
  const { cfg, dInFrom } = await parseTrainArgs(argv);
  return (await withDataWidth(cfg, dInFrom)).d_in;
}

Deno.test("sae train --data X.npy: d_in is the data's width unless set; set, it must match", async () => {
  await withTemp(async (dir) => {
    const data = await writeNpy(join(dir, "x.npy"), 64, 96, 1);
    const out = ["--out", join(dir, "r")];
    assert.equal(await resolvedDIn(["--data", data, ...out]), 96);
    assert.equal(await resolvedDIn(["--data", data, "--d-in", "96", ...out]), 96);
    assert.equal(await resolvedDIn(["--data", data, "--set", "d_in=96", ...out]), 96);
    // Synthetic data keeps the config's width.
    assert.equal(await resolvedDIn(["--d-in", "24", ...out]), 24);
    assert.equal(await resolvedDIn(out), 64);

    await rejectsUserError(
      () => resolvedDIn(["--data", data, "--d-in", "64", ...out]),
      /^d_in is 64 \(from --d-in 64\) but the rows of .*x\.npy are 96 wide: pass --d-in 96/,
    );
    await rejectsUserError(
      () => resolvedDIn(["--data", data, "--set", "d_in=32", ...out]),
      /d_in is 32 \(from --set d_in=32\) but the rows of .*x\.npy are 96 wide/,
    );
    const config = join(dir, "c.yaml");
    await Deno.writeTextFile(config, "d_in: 50\nd_sae: 128\n");
    await rejectsUserError(
      () => resolvedDIn(["--config", config, "--data", data, ...out]),
      /d_in is 50 \(from .*c\.yaml\) but the rows of .*x\.npy are 96 wide/,
    );
    // Shards of different widths are named before any d_in is chosen.
    await writeNpy(join(dir, "y.npy"), 8, 40, 2);
    await rejectsUserError(
      () => resolvedDIn(["--data", `${dir}/*.npy`, ...out]),
      /shard .*y\.npy has d=40 but .*x\.npy has d=96/,
    );
  });
});

Deno.test("sae train --data X.npy without --d-in trains at the data's width (was: 'pass --d-in 96')", async () => {
  await withTemp(async (dir) => {
    const data = await writeNpy(join(dir, "x.npy"), 64, 96, 3);
    const err: string[] = [];
    const io: CliIo = { writeOut: () => {}, writeErr: (t) => err.push(t) };
    const run = join(dir, "run");
    const code = await main(
      [
        "train",
        "--data",
        data,
        "--d-sae",
        "32",
        "--batch",
        "16",
        "--steps",
        "2",
        "--out",
        run,
        "--no-progress",
      ],
      io,
    );
    assert.equal(code, 0, err.join(""));
    assert.equal(
      (parse(await Deno.readTextFile(join(run, "config.yaml"))) as { d_in: number }).d_in,
      96,
    );
    const bad: string[] = [];
    const badIo: CliIo = { writeOut: () => {}, writeErr: (t) => bad.push(t) };
    assert.equal(
      await main(["train", "--data", data, "--d-in", "64", "--out", join(dir, "r2")], badIo),
      2,
    );
    assert.equal(bad.length, 1);
    assert.match(bad[0], /^error: d_in is 64 \(from --d-in 64\) but the rows of .* are 96 wide/);
  });
});
