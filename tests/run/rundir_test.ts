import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_CONFIG, mergeConfig, validateConfig } from "../../src/config.ts";
import {
  createRunDir,
  MetricsLog,
  planRunDir,
  readRunConfig,
  replaceRun,
  truncateMetrics,
  writeConfig,
  writeJson,
} from "../../src/run/rundir.ts";
import { rejectsUserError, withTemp } from "../helpers/check.ts";

const FRESH = { resume: false, overwrite: false };

/** planRunDir then createRunDir, as the trainer does once the inputs are checked. */
async function prepare(dir: string, flags: { resume: boolean; overwrite: boolean }) {
  const plan = await planRunDir(dir, flags);
  await createRunDir(plan);
  return plan;
}

Deno.test("planRunDir: a new or empty directory is a fresh run, created only by createRunDir", async () => {
  await withTemp(async (tmp) => {
    const dir = join(tmp, "runs", "a");
    const plan = await planRunDir(dir, FRESH);
    assert.deepEqual(plan, { dir, target: dir, resume: false, create: true });
    await assert.rejects(Deno.stat(dir), Deno.errors.NotFound, "planning writes nothing");
    await createRunDir(plan);
    assert.ok((await Deno.stat(dir)).isDirectory);
    await Deno.writeTextFile(join(dir, ".lock"), "{}"); // a lock alone leaves it empty
    assert.equal((await prepare(dir, FRESH)).create, false);
  });
});

Deno.test("planRunDir refuses a non-empty directory and names the flags", async () => {
  await withTemp(async (dir) => {
    await Deno.writeTextFile(join(dir, "config.yaml"), "steps: 1\n");
    await rejectsUserError(
      () => planRunDir(dir, FRESH),
      /already exists and is not empty; pass --resume to continue it or --overwrite to replace it/,
    );
    await rejectsUserError(
      () => planRunDir(dir, { resume: true, overwrite: true }),
      /contradict/,
    );
  });
});

Deno.test("--overwrite plans a replacement beside the run, never a foreign one; replaceRun swaps", async () => {
  await withTemp(async (tmp) => {
    const run = join(tmp, "run");
    await Deno.mkdir(join(run, "checkpoints"), { recursive: true });
    await Deno.writeTextFile(join(run, "config.yaml"), "steps: 1\n");
    await Deno.writeTextFile(join(run, "checkpoints", "x"), "x");
    const plan = await prepare(run, { resume: false, overwrite: true });
    assert.deepEqual(plan, { dir: `${run}.new`, target: run, resume: false, create: true });
    assert.equal(
      await Deno.readTextFile(join(run, "checkpoints", "x")),
      "x",
      "the old run is kept",
    );
    await rejectsUserError(
      () => planRunDir(run, { resume: false, overwrite: true }),
      /run\.new exists \(an unfinished replacement of it\?\); continue it with --resume/,
    );
    // Resuming the replacement still targets the run it replaces.
    await writeConfig(plan.dir, DEFAULT_CONFIG);
    assert.deepEqual(await planRunDir(plan.dir, { resume: true, overwrite: false }), {
      dir: plan.dir,
      target: run,
      resume: true,
      create: false,
    });
    await Deno.writeTextFile(join(plan.dir, "sae.safetensors"), "new");
    await replaceRun(plan);
    assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name), ["run"]);
    assert.equal(await Deno.readTextFile(join(run, "sae.safetensors")), "new");
    assert.equal((await planRunDir(run, { resume: true, overwrite: false })).target, run);

    const foreign = join(tmp, "home");
    await Deno.mkdir(foreign);
    await Deno.writeTextFile(join(foreign, "thesis.tex"), "precious");
    await rejectsUserError(
      () => planRunDir(foreign, { resume: false, overwrite: true }),
      /refusing to --overwrite .*no config\.yaml/,
    );
    assert.equal(await Deno.readTextFile(join(foreign, "thesis.tex")), "precious");

    const file = join(tmp, "file");
    await Deno.writeTextFile(file, "");
    await rejectsUserError(() => planRunDir(file, FRESH), /not a directory/);
  });
});

Deno.test("--resume needs an existing directory with config.yaml", async () => {
  await withTemp(async (tmp) => {
    const resume = { resume: true, overwrite: false };
    await rejectsUserError(() => planRunDir(join(tmp, "missing"), resume), /does not exist/);
    await Deno.writeTextFile(join(tmp, "metrics.jsonl"), "");
    await rejectsUserError(() => planRunDir(tmp, resume), /no config\.yaml there/);
    await rejectsUserError(() => readRunConfig(tmp), /no config\.yaml there/);
    await writeConfig(tmp, DEFAULT_CONFIG);
    await planRunDir(tmp, resume);
  });
});

Deno.test("writeConfig writes config.yaml that reads back to the same config", async () => {
  await withTemp(async (dir) => {
    const cfg = mergeConfig(DEFAULT_CONFIG, { steps: 17, synthetic: { n_features: 99 } });
    await writeConfig(dir, cfg);
    assert.deepEqual(validateConfig(await readRunConfig(dir), "config.yaml"), cfg);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["config.yaml"]);
  });
});

Deno.test("writeJson writes pretty JSON atomically", async () => {
  await withTemp(async (dir) => {
    await writeJson(dir, "metrics.json", { l0: 12.5, nested: [1, 2] });
    const text = await Deno.readTextFile(join(dir, "metrics.json"));
    assert.deepEqual(JSON.parse(text), { l0: 12.5, nested: [1, 2] });
    assert.ok(text.endsWith("}\n"));
  });
});

Deno.test("MetricsLog appends lines; resume truncates to the checkpoint's step", async () => {
  await withTemp(async (dir) => {
    const log = await MetricsLog.open(dir, null);
    for (const step of [50, 100, 150, 200]) await log.append({ step, loss: step / 10 });
    log.close();
    // A crash mid-write leaves a partial line at the end.
    await Deno.writeTextFile(join(dir, "metrics.jsonl"), '{"step":250,"lo', { append: true });

    // Resume from the checkpoint of step 100, then log as an uninterrupted run would.
    const resumed = await MetricsLog.open(dir, 100);
    for (const step of [150, 200, 250]) await resumed.append({ step, loss: step / 10 });
    resumed.close();

    const lines = (await Deno.readTextFile(join(dir, "metrics.jsonl"))).trimEnd().split("\n");
    assert.deepEqual(lines.map((l) => JSON.parse(l).step), [50, 100, 150, 200, 250]);

    // A fresh open starts an empty log.
    (await MetricsLog.open(dir, null)).close();
    assert.equal(await Deno.readTextFile(join(dir, "metrics.jsonl")), "");
  });
});

Deno.test("truncateMetrics cuts at the first later step; a damaged line alone is dropped", () => {
  const text = [
    '{"step":0,"event":"start"}',
    '{"step":10}',
    '{"event":"note"}',
    '{"step":20}',
    '{"step":15}',
    "",
  ].join("\n");
  assert.equal(
    truncateMetrics(text, 10),
    '{"step":0,"event":"start"}\n{"step":10}\n{"event":"note"}\n',
  );
  assert.equal(truncateMetrics(text, 0), '{"step":0,"event":"start"}\n');
  const dropped: number[] = [];
  const damaged = '{"step":1}\nnot json\n{"step":2}\n{"step":9\n{"step":3}\n{"step":4}\n{"ste';
  assert.equal(
    truncateMetrics(damaged, 3, (n) => dropped.push(n)),
    '{"step":1}\n{"step":2}\n{"step":3}\n',
  );
  assert.deepEqual(dropped, [2, 4], "the damaged lines, not the last one cut short");
  assert.equal(truncateMetrics("", 5), "");
});

Deno.test("MetricsLog resuming without an existing log starts one", async () => {
  await withTemp(async (dir) => {
    const log = await MetricsLog.open(dir, 500);
    await log.append({ step: 550 });
    log.close();
    assert.equal(await Deno.readTextFile(join(dir, "metrics.jsonl")), '{"step":550}\n');
  });
});
