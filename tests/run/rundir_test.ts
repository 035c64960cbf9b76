import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_CONFIG, mergeConfig, validateConfig } from "../../src/config.ts";
import {
  MetricsLog,
  prepareRunDir,
  readRunConfig,
  truncateMetrics,
  writeConfig,
  writeJson,
} from "../../src/run/rundir.ts";
import { rejectsUserError, withTemp } from "../helpers/check.ts";

const FRESH = { resume: false, overwrite: false };

Deno.test("prepareRunDir creates a new or empty directory", async () => {
  await withTemp(async (tmp) => {
    const dir = join(tmp, "runs", "a");
    await prepareRunDir(dir, FRESH);
    assert.ok((await Deno.stat(dir)).isDirectory);
    await prepareRunDir(dir, FRESH); // still empty: fine
  });
});

Deno.test("prepareRunDir refuses a non-empty directory and names the flags", async () => {
  await withTemp(async (dir) => {
    await Deno.writeTextFile(join(dir, "config.yaml"), "steps: 1\n");
    await rejectsUserError(
      () => prepareRunDir(dir, FRESH),
      /already exists and is not empty; pass --resume to continue it or --overwrite to replace it/,
    );
    await rejectsUserError(
      () => prepareRunDir(dir, { resume: true, overwrite: true }),
      /contradict/,
    );
  });
});

Deno.test("prepareRunDir --overwrite empties a run directory but never a foreign one", async () => {
  await withTemp(async (tmp) => {
    const run = join(tmp, "run");
    await Deno.mkdir(join(run, "checkpoints"), { recursive: true });
    await Deno.writeTextFile(join(run, "config.yaml"), "steps: 1\n");
    await Deno.writeTextFile(join(run, "checkpoints", "x"), "x");
    await prepareRunDir(run, { resume: false, overwrite: true });
    assert.deepEqual([...Deno.readDirSync(run)], []);

    const foreign = join(tmp, "home");
    await Deno.mkdir(foreign);
    await Deno.writeTextFile(join(foreign, "thesis.tex"), "precious");
    await rejectsUserError(
      () => prepareRunDir(foreign, { resume: false, overwrite: true }),
      /refusing to --overwrite .*no config\.yaml/,
    );
    assert.equal(await Deno.readTextFile(join(foreign, "thesis.tex")), "precious");

    const file = join(tmp, "file");
    await Deno.writeTextFile(file, "");
    await rejectsUserError(() => prepareRunDir(file, FRESH), /not a directory/);
  });
});

Deno.test("--resume needs an existing directory with config.yaml", async () => {
  await withTemp(async (tmp) => {
    const resume = { resume: true, overwrite: false };
    await rejectsUserError(() => prepareRunDir(join(tmp, "missing"), resume), /does not exist/);
    await Deno.writeTextFile(join(tmp, "metrics.jsonl"), "");
    await rejectsUserError(() => prepareRunDir(tmp, resume), /no config\.yaml there/);
    await rejectsUserError(() => readRunConfig(tmp), /no config\.yaml there/);
    await writeConfig(tmp, DEFAULT_CONFIG);
    await prepareRunDir(tmp, resume);
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

Deno.test("truncateMetrics cuts at the first later step or broken line", () => {
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
  assert.equal(truncateMetrics('{"step":1}\nnot json\n{"step":2}\n', 5), '{"step":1}\n');
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
