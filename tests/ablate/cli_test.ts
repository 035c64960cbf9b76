import assert from "node:assert/strict";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { buildProgram, main } from "../../src/cli/main.ts";
import { listRuns, makeAblateCommand, resolveAblateFlags } from "../../src/cli/ablate.ts";
import { resolveSweep } from "../../src/ablate/sweep.ts";
import { withTemp } from "../helpers/check.ts";
import { captureIo } from "../helpers/cli.ts";

function parseFlags(argv: string[]) {
  const cmd = makeAblateCommand().exitOverride();
  cmd.parse(argv, { from: "user" });
  return cmd.opts();
}

Deno.test("sae ablate --help: every option shows its default", async () => {
  const io = captureIo();
  assert.equal(await main(["ablate", "--help"], io, buildProgram(io)), 0);
  const help = io.out.join("");
  const options = help.slice(help.indexOf("Options:")).split(/\n(?= {2}-)/).slice(1);
  const names = options.map((o) => o.trim().split(/[ ,]/)[0]);
  assert.deepEqual(names, [
    "--sweep",
    "--scale",
    "--preset",
    "--corpus",
    "--out",
    "--only",
    "--set",
    "--list",
    "--no-progress",
    "-h",
  ]);
  for (const o of options.filter((o) => !o.trim().startsWith("-h"))) {
    assert.match(o, /\(default/, o);
  }
});

Deno.test("sae ablate: flags pick the sweep, the directory and the runs", async () => {
  let r = await resolveAblateFlags(parseFlags([]));
  assert.equal(r.outDir, "runs/ablate-cpu");
  assert.equal(r.sweep.runs.length, 25);
  assert.equal(r.only, undefined);
  r = await resolveAblateFlags(
    parseFlags(["--scale", "paper", "--only", "baseline, method", "--set", "data=acts"]),
  );
  assert.equal(r.outDir, "runs/ablate-paper");
  assert.deepEqual(r.only, ["baseline", "method"]);
  assert.equal(r.sweep.base.d_sae, 2304);
  assert.equal(r.sweep.base.data, "acts");
  await withTemp(async (dir) => {
    const file = join(dir, "mine.yaml");
    await Deno.writeTextFile(file, "base: { steps: 7 }\nruns: { x: {}, y: { l1: 0.5 } }\n");
    r = await resolveAblateFlags(parseFlags(["--sweep", file, "--out", join(dir, "o")]));
    assert.equal(r.outDir, join(dir, "o"));
    assert.deepEqual(r.sweep.runs.map((x) => x.name), ["x", "y"]);
    r = await resolveAblateFlags(parseFlags(["--sweep", file]));
    assert.equal(r.outDir, "runs/ablate-mine");

    const list = await listRuns(r.sweep, join(dir, "o"), file);
    assert.match(list, /^2 runs \(2 names\)/);
    assert.match(list, /base: steps=7/);
    assert.match(list, /\n {2}x {2}\[todo\] {2}-\n {2}y {2}\[todo\] {2}l1=0\.5\n$/);

    const io = captureIo();
    assert.equal(
      await main(["ablate", "--sweep", file, "--scale", "cpu"], io, buildProgram(io)),
      2,
    );
    assert.match(io.err.join(""), /^error: --scale picks the built-in sweep/);
    const io2 = captureIo();
    const argv = ["ablate", "--sweep", file, "--out", join(dir, "o"), "--only", "x,z"];
    assert.equal(await main(argv, io2, buildProgram(io2)), 2);
    assert.match(
      io2.err.join(""),
      /^error: --only: no run named 'z' in the sweep \(runs: x, y\)\n$/,
    );
    const io3 = captureIo();
    assert.equal(await main(["ablate", "--scale", "huge"], io3, buildProgram(io3)), 2);
    assert.match(io3.err.join(""), /Allowed choices are cpu, paper/);
  });
});

Deno.test("--scale paper trains every run on configs/paper.yaml's sizes and hyperparameters", async () => {
  // A missing or unreadable file fails here (and the sweep module cannot load without it).
  const paper = parseYaml(
    await Deno.readTextFile(new URL("../../configs/paper.yaml", import.meta.url)),
  ) as Record<string, unknown>;
  const { sweep } = await resolveAblateFlags(parseFlags(["--scale", "paper"]));
  const runs = resolveSweep(sweep);
  assert.ok(runs.length > 0);
  const swept = new Set(runs.flatMap((r) => Object.keys(r.overrides)));
  for (const r of runs) {
    for (const [k, v] of Object.entries(paper)) {
      if (!swept.has(k)) assert.deepEqual(r.cfg[k as keyof typeof r.cfg], v, `${r.name}: ${k}`);
    }
  }
});
