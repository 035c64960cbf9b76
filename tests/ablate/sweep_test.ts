import assert from "node:assert/strict";
import { join } from "node:path";
import {
  canonicalJson,
  CPU_BASE,
  defaultSweep,
  describeOverrides,
  loadSweepFile,
  PAPER_BASE,
  resolveSweep,
} from "../../src/ablate/sweep.ts";
import { loadConfigFile, validateConfig } from "../../src/config.ts";
import { rejectsUserError } from "../helpers/check.ts";

Deno.test("default sweep: the paper's ablations, mechanisms off and both λ1 frontiers", () => {
  const sweep = defaultSweep("cpu");
  const names = sweep.runs.map((r) => r.name);
  assert.deepEqual(names, [
    "baseline",
    "method",
    "lambda_ortho=0",
    "lambda_ortho=0.01",
    "lambda_ortho=0.05",
    "lambda_ortho=0.1",
    "ema_decay=0.99",
    "ema_decay=0.999",
    "tau_base=0.1",
    "tau_base=0.3",
    "tau_base=0.5",
    "no_threshold",
    "no_ortho",
    "no_ortho_importance",
    "no_importance_lr",
    "baseline_l1=0.075",
    "baseline_l1=0.15",
    "baseline_l1=0.3",
    "baseline_l1=0.6",
    "baseline_l1=1.2",
    "method_l1=0.075",
    "method_l1=0.15",
    "method_l1=0.3",
    "method_l1=0.6",
    "method_l1=1.2",
  ]);
  // The method runs carry the recon-only phase; the baselines do not.
  const M = { variant: "paper", recon_only_steps: 300 };
  const byName = Object.fromEntries(sweep.runs.map((r) => [r.name, r.overrides]));
  assert.deepEqual(byName.baseline, { variant: "baseline" });
  assert.deepEqual(byName.method, M);
  assert.deepEqual(byName["lambda_ortho=0.05"], { ...M, lambda_ortho: 0.05 });
  assert.deepEqual(byName["ema_decay=0.99"], { ...M, ema_decay: 0.99 });
  assert.deepEqual(byName["tau_base=0.5"], { ...M, tau_base: 0.5 });
  assert.deepEqual(byName.no_threshold, { ...M, adaptive_threshold: false });
  assert.deepEqual(byName.no_ortho, { ...M, lambda_ortho: 0 });
  assert.deepEqual(byName.no_ortho_importance, { ...M, ortho_importance: false });
  assert.deepEqual(byName.no_importance_lr, { ...M, importance_lr: 0 });
  assert.deepEqual(byName["baseline_l1=1.2"], { variant: "baseline", l1: 1.2 });
  assert.deepEqual(byName["method_l1=0.075"], { ...M, l1: 0.075 });
  assert.equal(
    describeOverrides(byName["method_l1=0.075"]),
    "variant=paper recon_only_steps=300 l1=0.075",
  );
});

Deno.test("default sweep: identical configs train once, under the first name", () => {
  const runs = resolveSweep(defaultSweep("cpu"));
  assert.equal(runs.length, 19);
  const aliases = Object.fromEntries(runs.map((r) => [r.name, r.aliases]));
  assert.deepEqual(aliases.method, [
    "lambda_ortho=0.1",
    "ema_decay=0.999",
    "tau_base=0.3",
    "method_l1=0.3",
  ]);
  assert.deepEqual(aliases.baseline, ["baseline_l1=0.3"]);
  assert.deepEqual(aliases["lambda_ortho=0"], ["no_ortho"]);
  assert.deepEqual(aliases.no_threshold, []);
  // Every resolved config is distinct and carries the scale's base.
  assert.equal(new Set(runs.map((r) => canonicalJson(r.cfg))).size, runs.length);
  for (const r of runs) {
    assert.equal(r.cfg.d_sae, CPU_BASE.d_sae);
    assert.equal(r.cfg.steps, CPU_BASE.steps);
    // The recon-only phase is the method's (§4.4); every baseline trains the full loss throughout.
    assert.equal(r.cfg.recon_only_steps, r.cfg.variant === "paper" ? 300 : 0, r.name);
  }
});

Deno.test("paper scale: baseline is configs/baseline.yaml, method configs/paper.yaml; λ1 sweeps around its λ1", async () => {
  const sweep = defaultSweep("paper");
  assert.equal(sweep.base, PAPER_BASE);
  const runs = resolveSweep(sweep);
  assert.equal(runs.length, 19);
  const paper = validateConfig(await loadConfigFile("configs/paper.yaml"), "configs/paper.yaml");
  const baseline = validateConfig(
    await loadConfigFile("configs/baseline.yaml"),
    "configs/baseline.yaml",
  );
  assert.deepEqual(runs.find((r) => r.name === "method")!.cfg, paper);
  // The paper's baseline: l2 + λ1·L1 from step 1, no recon-only phase.
  const base = runs.find((r) => r.name === "baseline")!.cfg;
  assert.deepEqual(base, baseline);
  assert.equal(base.recon_only_steps, 0);
  assert.equal(paper.recon_only_steps, 1000);
  const l1s = runs.filter((r) => r.name.startsWith("baseline")).map((r) => r.cfg.l1);
  assert.deepEqual(l1s, [1, 0.25, 0.5, 2, 4].map((f) => Number((paper.l1 * f).toPrecision(6))));
});

Deno.test("resolveSweep: bad overrides name the run", () => {
  assert.throws(
    () => resolveSweep({ base: {}, runs: [{ name: "x", overrides: { lamda_ortho: 1 } as never }] }),
    /unknown config key 'lamda_ortho' in the sweep: run 'x' \(did you mean 'lambda_ortho'\?\)/,
  );
  assert.throws(
    () => resolveSweep({ base: {}, runs: [{ name: "y", overrides: { ema_decay: 1 } }] }),
    /invalid value 1 for 'ema_decay' in the sweep: run 'y'/,
  );
  assert.throws(
    () =>
      resolveSweep({
        base: {},
        runs: [{ name: "a", overrides: {} }, { name: "a", overrides: {} }],
      }),
    /run 'a' appears twice/,
  );
  assert.throws(
    () => resolveSweep({ base: {}, runs: [{ name: "../up", overrides: {} }] }),
    /run name '..\/up'/,
  );
});

Deno.test("loadSweepFile: base and runs from YAML; empty runs mean no overrides", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "s.yaml");
    await Deno.writeTextFile(
      file,
      "base:\n  steps: 20\n  synthetic:\n    n_features: 64\nruns:\n  a:\n  b: { l1: 0.5 }\n" +
        "  c: { steps: 20 }\n",
    );
    const sweep = await loadSweepFile(file);
    assert.deepEqual(sweep.base, { steps: 20, synthetic: { n_features: 64 } });
    assert.deepEqual(sweep.runs, [
      { name: "a", overrides: {} },
      { name: "b", overrides: { l1: 0.5 } },
      { name: "c", overrides: { steps: 20 } },
    ]);
    const runs = resolveSweep(sweep, file);
    assert.deepEqual(runs.map((r) => [r.name, r.aliases]), [["a", ["c"]], ["b", []]]);
    assert.equal(runs[1].cfg.synthetic.n_features, 64);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadSweepFile: one-line errors for bad structure", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, RegExp][] = [
      ["", /must be a mapping with 'runs'.*an empty file/],
      ["- a\n- b\n", /must be a mapping with 'runs'.*a list/],
      ["base: {}\n", /'runs' in .* must be a non-empty mapping/],
      ["runs: [a, b]\n", /'runs' in .* must be a non-empty mapping/],
      ["runs: {}\n", /'runs' in .* must be a non-empty mapping/],
      ["runz: {a: {}}\n", /unknown key 'runz'.*only 'base' and 'runs'/],
      ["base: 3\nruns: {a: {}}\n", /'base' in .* must be a mapping/],
      ["runs:\n  a: 5\n", /run 'a' in .* must be a mapping/],
      ["runs:\n  a: { d_sea: 3 }\n", /unknown config key 'd_sea' in .*s\.yaml: run 'a'/],
      ["base: { lr: -1 }\nruns: { a: {} }\n", /invalid value -1 for 'lr' in .*s\.yaml: base/],
      ["runs:\n  'a/b': {}\n", /run name 'a\/b'/],
      ["runs: {a: {l1: [}\n", /s\.yaml:\d+:\d+: YAML syntax error/],
    ];
    const file = join(dir, "s.yaml");
    for (const [text, pattern] of cases) {
      await Deno.writeTextFile(file, text);
      await rejectsUserError(() => loadSweepFile(file), pattern);
    }
    await rejectsUserError(() => loadSweepFile(join(dir, "nope.yaml")), /sweep file not found/);
    await rejectsUserError(() => loadSweepFile(dir), /is a directory/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
