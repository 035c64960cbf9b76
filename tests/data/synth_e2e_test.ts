import assert from "node:assert/strict";
import { main } from "../../src/cli/main.ts";
import { DEFAULT_CONFIG, mergeConfig } from "../../src/config.ts";
import { readNpyShard } from "../../src/data/npy.ts";
import { FileSource } from "../../src/data/files.ts";
import { SyntheticSource } from "../../src/data/synthetic.ts";
import { train } from "../../src/sae/trainer.ts";
import { refDecode } from "./files_helpers.ts";

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { writeOut: (t: string) => out.push(t), writeErr: (t: string) => err.push(t) },
  };
}

Deno.test("sae synth writes the generator's rows as .npy (f32 and f16) with its truth", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-synth-" });
  const args = ["--rows", "300", "--d-in", "16", "--set", "synthetic.n_features=64", "--seed", "3"];
  const small = { n_groups: 2, n_parents: 4 };
  for (const dtype of ["f32", "f16"] as const) {
    const file = `${dir}/acts-${dtype}.npy`;
    const sets = ["--set", "synthetic.n_groups=2", "--set", "synthetic.n_parents=4"];
    const c = io();
    const code = await main(["synth", "--out", file, ...args, ...sets, "--dtype", dtype], c.io);
    assert.equal(code, 0, c.err.join(""));
    const shard = await readNpyShard(file);
    assert.deepEqual([shard.rows, shard.d, shard.dtype], [300, 16, dtype]);
    const want = new Float32Array(300 * 16);
    const gen = new SyntheticSource(
      { ...DEFAULT_CONFIG.synthetic, n_features: 64, seed: 3, ...small },
      16,
    );
    await gen.nextBatch(want);
    const got = refDecode(await Deno.readFile(file), shard.dataOffset, 300 * 16, dtype);
    const expect = dtype === "f32" ? want : Float32Array.from(Float16Array.from(want));
    assert.deepEqual(got, expect);
    const truth = JSON.parse(await Deno.readTextFile(`${dir}/acts-${dtype}.truth.json`));
    assert.equal(truth.n_features, 64);
    assert.equal(truth.synthetic.seed, 3);
    assert.equal(truth.dictionary.length, 64);
    assert.deepEqual(truth.dictionary[5], Array.from(gen.truth.dictionary.subarray(80, 96)));
  }
  // Only the data is a .npy: a glob of *.npy must not pick up the truth.
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
    "acts-f16.npy",
    "acts-f16.truth.json",
    "acts-f32.npy",
    "acts-f32.truth.json",
  ]);
  const bad = io();
  assert.equal(await main(["synth", "--out", `${dir}/x.bin`], bad.io), 2);
  assert.match(bad.err.join(""), /must end in \.npy/);
  assert.equal(await main(["synth", "--out", `${dir}/x.npy`, "--set", "lr=1"], bad.io), 2);
  assert.match(bad.err.join(""), /only takes synthetic\.\* keys/);
  assert.equal(await main(["synth", "--out", `${dir}/no/such/x.npy`, "--rows", "2"], bad.io), 2);
  const help = io();
  assert.equal(await main(["synth", "--help"], help.io), 0);
  for (const flag of ["--rows", "--d-in", "--seed", "--dtype", "--set", "--config", "--no-truth"]) {
    const line = help.out.join("").split("\n").find((l) => l.includes(flag));
    assert.ok(line !== undefined, flag);
  }
  assert.equal((help.out.join("").match(/\(default/g) ?? []).length, 7); // all but --out
  await Deno.remove(dir, { recursive: true });
});

Deno.test("e2e: sae synth a file, then train 20 steps on it (streamed, shuffled)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sae-synth-e2e-" });
  const file = `${dir}/acts.npy`;
  const c = io();
  assert.equal(
    await main(["synth", "--out", file, "--rows", "1000", "--d-in", "16", "--no-truth"], c.io),
    0,
  );
  const cfg = mergeConfig(DEFAULT_CONFIG, {
    data: file,
    d_in: 16,
    d_sae: 32,
    batch: 32,
    steps: 20,
    log_every: 10,
    checkpoint_every: 10,
    init_rows: 256,
  });
  const { metrics } = await train(cfg, {
    outDir: `${dir}/run`,
    resume: false,
    overwrite: false,
    progress: false,
    report: false,
  });
  const saved = JSON.parse(await Deno.readTextFile(`${dir}/run/metrics.json`));
  assert.equal(saved.explained_variance, metrics.explained_variance);
  assert.ok(Number.isFinite(metrics.mse));
  assert.equal(saved.mmcs, undefined, "no ground truth for file data");
  // The checkpoint holds the file source's position under the shuffle buffer.
  const src = await FileSource.open(file, 16, { log: () => {} });
  assert.equal(src.totalRows, 1000);
  await Deno.remove(dir, { recursive: true });
});
