import assert from "node:assert/strict";
import { join } from "node:path";
import {
  configKeys,
  configToYaml,
  DEFAULT_CONFIG,
  hasExplicitRule,
  loadConfigFile,
  mergeConfig,
  overridesToPartial,
  parseOverride,
  parseScalar,
  validateConfig,
  validatePartialConfig,
} from "../src/config.ts";
import { UserError } from "../src/errors.ts";
import { parse as parseYaml } from "yaml";

/** Asserts that `fn` throws a one-line UserError matching every pattern. */
function assertUserError(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UserError, `expected UserError, got ${err}`);
    assert.ok(!err.message.includes("\n"), `not one line: ${err.message}`);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

async function assertRejectsUserError(fn: () => Promise<unknown>, ...patterns: RegExp[]) {
  await assert.rejects(fn, (err: unknown) => {
    assert.ok(err instanceof UserError, `expected UserError, got ${err}`);
    assert.ok(!err.message.includes("\n"), `not one line: ${err.message}`);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

Deno.test("validateConfig fills every missing key from DEFAULT_CONFIG, sharing nothing", () => {
  const cfg = validateConfig({ steps: 10, synthetic: { n_features: 512 } }, "test");
  assert.equal(cfg.steps, 10);
  assert.equal(cfg.lr, DEFAULT_CONFIG.lr);
  assert.equal(cfg.synthetic.n_features, 512);
  assert.equal(cfg.synthetic.mean_l0, DEFAULT_CONFIG.synthetic.mean_l0);
  cfg.synthetic.seed = 99;
  assert.notEqual(DEFAULT_CONFIG.synthetic.seed, 99);
  assert.deepEqual(validateConfig({}, "test"), DEFAULT_CONFIG);
});

Deno.test("every default key has an explicit validation rule", () => {
  for (const key of configKeys()) assert.ok(hasExplicitRule(key), `no rule for '${key}'`);
});

Deno.test("unknown keys are named with the closest known key", () => {
  assertUserError(
    () => validateConfig({ d_sea: 3 }, "configs/x.yaml"),
    /^unknown config key 'd_sea' in configs\/x\.yaml \(did you mean 'd_sae'\?\)$/,
  );
  assertUserError(
    () => validateConfig({ synthetic: { n_featurs: 3 } }, "f.yaml"),
    /'synthetic\.n_featurs'.*did you mean 'synthetic\.n_features'/,
  );
  // A nested key written at the top level points to its section.
  assertUserError(
    () => validateConfig({ mean_l0: 3 }, "f.yaml"),
    /did you mean 'synthetic\.mean_l0'/,
  );
});

Deno.test("wrong types are rejected with key, value and what is allowed", () => {
  assertUserError(
    () => validateConfig({ steps: "many" }, "f.yaml"),
    /invalid value 'many' for 'steps' in f\.yaml \(expected an integer >= 1\)/,
  );
  assertUserError(() => validateConfig({ apply_b_dec_to_input: 1 }, "f"), /true or false/);
  assertUserError(() => validateConfig({ data: 5 }, "f"), /'data'.*non-empty string/);
  assertUserError(() => validateConfig({ data: "" }, "f"), /'data'.*non-empty string/);
  assertUserError(() => validateConfig({ lr: null }, "f"), /invalid value null for 'lr'/);
  assertUserError(() => validateConfig({ synthetic: 5 }, "f"), /'synthetic'.*mapping/);
  assertUserError(() => validateConfig([1, 2], "f.yaml"), /f\.yaml must be a mapping.*a list/);
  assertUserError(() => validateConfig("lr", "f.yaml"), /f\.yaml must be a mapping/);
});

Deno.test("out-of-range numbers are rejected", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ lr: 0 }, /'lr'.*a number > 0/],
    [{ lr: -1e-3 }, /'lr'/],
    [{ batch: 0 }, /'batch'.*an integer in \[1, 65535\]/],
    [{ batch: 65536 }, /invalid value 65536 for 'batch'/],
    [{ d_in: 0 }, /'d_in'.*>= 1/],
    [{ steps: 0 }, /'steps'/],
    [{ steps: 1.5 }, /'steps'.*integer/],
    [{ dense_threshold: 1.5 }, /'dense_threshold'.*\[0, 1\]/],
    [{ synthetic: { parent_probability: -0.1 } }, /'synthetic\.parent_probability'.*\[0, 1\]/],
    [{ synthetic: { group_correlation: 2 } }, /'synthetic\.group_correlation'/],
    [{ beta2: 1 }, /'beta2'.*\[0, 1\)/],
    [{ seed: -1 }, /'seed'/],
    [{ l1: Number.NaN }, /'l1'/],
  ];
  for (const [obj, re] of cases) assertUserError(() => validateConfig(obj, "f"), re);
  // The edges that are allowed.
  validateConfig({ batch: 65535, dense_threshold: 1, checkpoint_every: 0, l1: 0 }, "f");
});

Deno.test("enum values are checked", () => {
  assertUserError(
    () => validateConfig({ recon_loss: "l1" }, "f"),
    /invalid value 'l1' for 'recon_loss' in f \(expected one of 'l2', 'squared'\)/,
  );
  assertUserError(() => validateConfig({ variant: "gated" }, "f"), /'variant'.*'baseline'/);
  assertUserError(() => validateConfig({ normalize_activations: "yes" }, "f"), /'none'/);
});

Deno.test("validatePartialConfig keeps missing keys missing", () => {
  assert.deepEqual(validatePartialConfig({ synthetic: { seed: 3 } }, "f"), {
    synthetic: { seed: 3 },
  });
});

Deno.test("mergeConfig deep-merges left to right without touching its inputs", () => {
  const a = { lr: 1, synthetic: { seed: 1, n_features: 10 } };
  const b = { synthetic: { seed: 2 }, steps: undefined };
  const merged = mergeConfig(a, b, { lr: 3 });
  assert.deepEqual(merged, { lr: 3, synthetic: { seed: 2, n_features: 10 } });
  assert.deepEqual(a, { lr: 1, synthetic: { seed: 1, n_features: 10 } });
  const full = mergeConfig(DEFAULT_CONFIG, { synthetic: { n_features: 7 } });
  assert.equal(full.synthetic.n_features, 7);
  assert.equal(full.synthetic.mean_l0, DEFAULT_CONFIG.synthetic.mean_l0);
  assert.equal(DEFAULT_CONFIG.synthetic.n_features, 256);
});

Deno.test("parseOverride types values and splits dotted keys", () => {
  assert.deepEqual(parseOverride("synthetic.n_features=512"), {
    path: ["synthetic", "n_features"],
    value: 512,
    raw: "512",
  });
  assert.equal(parseOverride("lr=3e-4").value, 3e-4);
  assert.equal(parseOverride("lr=.5").value, 0.5);
  assert.equal(parseOverride("apply_b_dec_to_input=false").value, false);
  assert.equal(parseOverride("recon_loss=squared").value, "squared");
  assert.equal(parseOverride("data=a=b.npy").value, "a=b.npy");
  assert.deepEqual(parseOverride("warmup-steps=5").path, ["warmup_steps"]);
  assert.equal(parseScalar("'12'"), "12");
  assert.equal(parseScalar("0x10"), "0x10");
  assert.equal(parseScalar(""), "");
  assertUserError(() => parseOverride("lr"), /--set expects KEY=VALUE.*'lr'/);
  assertUserError(() => parseOverride("=3"), /not a config key/);
  assertUserError(() => parseOverride("a..b=3"), /not a config key/);
});

Deno.test("overridesToPartial nests values and keeps string keys as typed", () => {
  const layer = overridesToPartial([
    parseOverride("synthetic.n_features=512"),
    parseOverride("data=123"),
    parseOverride("lr=0.1"),
  ]);
  assert.deepEqual(layer, { synthetic: { n_features: 512 }, data: "123", lr: 0.1 });
  assertUserError(
    () => validatePartialConfig(overridesToPartial([parseOverride("lr.x=1")]), "--set lr.x=1"),
    /'lr' in --set lr\.x=1/,
  );
});

Deno.test("configToYaml round-trips through YAML and validation", () => {
  const cfg = validateConfig({
    lr: 1.2345678e-7,
    data: "true",
    recon_loss: "squared",
    synthetic: { noise_std: 0.1 + 0.2 },
  }, "t");
  const text = configToYaml(cfg);
  assert.deepEqual(validateConfig(parseYaml(text), "config.yaml"), cfg);
  // Keys in DEFAULT_CONFIG's order.
  const firstKeys = text.split("\n").filter((l) => /^[a-z_0-9]+:/.test(l)).map((l) =>
    l.split(":")[0]
  );
  assert.deepEqual(firstKeys, Object.keys(DEFAULT_CONFIG));
});

Deno.test("loadConfigFile: missing file, YAML syntax error with file:line, bad content", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assertRejectsUserError(
      () => loadConfigFile(join(dir, "nope.yaml")),
      /^config file not found: .*nope\.yaml$/,
    );
    const broken = join(dir, "broken.yaml");
    await Deno.writeTextFile(broken, "steps: 10\nlr: [1, 2\nl1: 3\n");
    await assertRejectsUserError(
      () => loadConfigFile(broken),
      /broken\.yaml:\d+:\d+: YAML syntax error/,
    );
    const dup = join(dir, "dup.yaml");
    await Deno.writeTextFile(dup, "steps: 10\nsteps: 20\n");
    await assertRejectsUserError(() => loadConfigFile(dup), /dup\.yaml:2:1: YAML syntax error/);
    const list = join(dir, "list.yaml");
    await Deno.writeTextFile(list, "- 1\n- 2\n");
    await assertRejectsUserError(() => loadConfigFile(list), /list\.yaml must be a mapping/);
    const typo = join(dir, "typo.yaml");
    await Deno.writeTextFile(typo, "d_sea: 3\n");
    await assertRejectsUserError(() => loadConfigFile(typo), /'d_sea' in .*typo\.yaml/);
    const empty = join(dir, "empty.yaml");
    await Deno.writeTextFile(empty, "# nothing\n");
    assert.deepEqual(await loadConfigFile(empty), {});
    await assertRejectsUserError(() => loadConfigFile(dir), /directory/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("configs/default.yaml restates DEFAULT_CONFIG", async () => {
  const layer = await loadConfigFile("configs/default.yaml");
  assert.ok(Object.keys(layer).length >= 20);
  assert.deepEqual(validateConfig(layer, "configs/default.yaml"), DEFAULT_CONFIG);
});

Deno.test("configs/baseline.yaml and configs/paper.yaml: one variant each, the same shared values", async () => {
  const baseline = await loadConfigFile("configs/baseline.yaml");
  const paper = await loadConfigFile("configs/paper.yaml");
  assert.equal(validateConfig(baseline, "configs/baseline.yaml").variant, "baseline");
  assert.equal(validateConfig(paper, "configs/paper.yaml").variant, "paper");
  // The paper trains both on the same sizes and optimiser: a key both files set agrees.
  const shared = Object.keys(baseline).filter((k) => k !== "variant" && k in paper);
  assert.ok(shared.length >= 10, `only ${shared.length} shared keys`);
  for (const k of shared) {
    assert.deepEqual(
      baseline[k as keyof typeof baseline],
      paper[k as keyof typeof paper],
      `${k} differs between baseline.yaml and paper.yaml`,
    );
  }
});
