/**
 * `sae synth`: writes the synthetic generator's rows to a .npy file (version 1.0 header, '<f4' or
 * '<f2', C order, [rows, d_in]) so any tool can read them, streaming in chunks into a temporary
 * file that is renamed over the target at the end. Next to it, FILE.truth.json holds the settings
 * and the ground truth (dictionary [n_features, d_in], offset, firing probabilities, structure);
 * it is JSON rather than .npy so that `--data 'dir/*.npy'` does not pick it up as a shard.
 *
 * @example
 * ```sh
 * deno task sae synth --out acts.npy --rows 100000 --d-in 64 --set synthetic.n_features=512
 * deno task sae train --data acts.npy --d-in 64
 * ```
 */

import { Command, Option } from "@commander-js/extra-typings";
import {
  DEFAULT_CONFIG,
  DEFAULT_SYNTHETIC,
  loadConfigFile,
  mergeConfig,
  parseOverride,
  parseScalar,
  type PartialConfig,
  setFlagLayer,
  type SyntheticConfig,
  validatePartialConfig,
} from "../config.ts";
import { UserError } from "../errors.ts";
import { collect } from "./options.ts";
import { encodeNpyHeader } from "../data/npy.ts";
import { SyntheticSource } from "../data/synthetic.ts";
import { AtomicFile } from "../run/atomic.ts";
import { checkOutputFile, writingTo } from "../run/output.ts";

/** Default number of rows written. */
const SYNTH_DEFAULT_ROWS = 65536;

/** Rows generated and written per chunk. */
const CHUNK_ROWS = 4096;

/** The `synth` command's options (no action attached). */
function makeSynthCommand() {
  return new Command("synth")
    .description(
      "write synthetic activations (with known ground truth) to a .npy file, plus FILE.truth.json " +
        "(settings, true directions and structure)",
    )
    .requiredOption("--out <file.npy>", "the .npy file to write (required; replaced if it exists)")
    .option("--rows <n>", `number of rows (default: ${SYNTH_DEFAULT_ROWS})`)
    .option("--d-in <n>", `row width (default: ${DEFAULT_CONFIG.d_in}, or d_in of --config)`)
    .option("--seed <n>", `generator seed, synthetic.seed (default: ${DEFAULT_SYNTHETIC.seed})`)
    .addOption(
      new Option("--dtype <type>", "element type: f32 ('<f4') or f16 ('<f2') (default: f32)")
        .choices(["f32", "f16"] as const),
    )
    .option(
      "--config <file>",
      "YAML config whose d_in and synthetic section are used (default: none, built-in defaults)",
    )
    .option(
      "--set <key=value>",
      "set a generator key: --set synthetic.n_features=512; repeatable (default: none)",
      collect,
    )
    .option("--no-truth", "skip FILE.truth.json (default: written)");
}

/** What commander parsed for `synth`. */
type SynthFlags = ReturnType<ReturnType<typeof makeSynthCommand>["opts"]>;

/** Everything `sae synth` needs, resolved and validated. */
interface SynthPlan {
  out: string;
  rows: number;
  dIn: number;
  dtype: "f32" | "f16";
  synthetic: SyntheticConfig;
  truth: boolean;
}

function positiveInt(raw: string, flag: string): number {
  const v = parseScalar(raw);
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
    throw new UserError(`${flag} must be a positive integer (got '${raw}')`);
  }
  return v;
}

/** Turns parsed flags into a plan (reads --config). */
async function resolveSynthFlags(flags: SynthFlags): Promise<SynthPlan> {
  if (!/\.npy$/i.test(flags.out)) {
    throw new UserError(`--out '${flags.out}' must end in .npy`);
  }
  const layers: PartialConfig[] = [];
  if (flags.config !== undefined) layers.push(await loadConfigFile(flags.config));
  for (const text of flags.set ?? []) {
    const { path } = parseOverride(text);
    if (path[0] !== "synthetic" && path.join(".") !== "d_in") {
      throw new UserError(
        `--set ${text}: sae synth only takes synthetic.* keys and d_in (e.g. synthetic.n_features=512)`,
      );
    }
    layers.push(setFlagLayer(text));
  }
  if (flags.seed !== undefined) {
    layers.push(
      validatePartialConfig(
        { synthetic: { seed: parseScalar(flags.seed) } } as PartialConfig,
        "--seed",
      ),
    );
  }
  const cfg = mergeConfig(DEFAULT_CONFIG, ...layers);
  await checkOutputFile(flags.out, "--out");
  return {
    out: flags.out,
    rows: flags.rows === undefined ? SYNTH_DEFAULT_ROWS : positiveInt(flags.rows, "--rows"),
    dIn: flags.dIn === undefined ? cfg.d_in : positiveInt(flags.dIn, "--d-in"),
    dtype: flags.dtype ?? "f32",
    synthetic: cfg.synthetic,
    truth: flags.truth !== false,
  };
}

/**
 * Writes `plan.rows` synthetic rows to `plan.out` as .npy, chunk by chunk into a temporary file
 * renamed over the target once complete (and synced), then the truth files.
 */
async function writeSynth(plan: SynthPlan): Promise<void> {
  const src = new SyntheticSource(plan.synthetic, plan.dIn);
  const base = plan.out.replace(/\.npy$/i, "");
  const truthPath = `${base}.truth.json`;
  const file = await writingTo(plan.out, "--out", () => AtomicFile.create(plan.out));
  let truth: AtomicFile | null = null;
  try {
    await writingTo(plan.out, "--out", async () => {
      await file.write(encodeNpyHeader(plan.rows, plan.dIn, plan.dtype));
      const chunk = new Float32Array(Math.min(CHUNK_ROWS, plan.rows) * plan.dIn);
      const half = plan.dtype === "f16" ? new Float16Array(chunk.length) : null;
      for (let done = 0; done < plan.rows;) {
        const n = Math.min(CHUNK_ROWS, plan.rows - done);
        const x = chunk.subarray(0, n * plan.dIn);
        await src.nextBatch(x);
        const values = half ? half.subarray(0, x.length) : x;
        if (half) half.set(x);
        await file.write(new Uint8Array(values.buffer, 0, values.byteLength));
        done += n;
      }
    });
    if (plan.truth) {
      truth = await writingTo(truthPath, "--out", () => AtomicFile.create(truthPath));
      const t = truth;
      const text = JSON.stringify(truthInfo(plan, src)) + "\n";
      await writingTo(truthPath, "--out", () => t.write(new TextEncoder().encode(text)));
    }
    // Both files are complete before either replaces an earlier one.
    await writingTo(plan.out, "--out", () => file.commit());
    if (truth) await writingTo(truthPath, "--out", () => truth!.commit());
  } catch (err) {
    await file.abort();
    await truth?.abort();
    throw err;
  }
}

/** FILE.truth.json: the settings and the generator's ground truth. */
function truthInfo(plan: SynthPlan, src: SyntheticSource): Record<string, unknown> {
  const t = src.truth;
  const nFeatures = t.dictionary.length / plan.dIn;
  return {
    generator: "sae synth (src/data/synthetic.ts)",
    data: plan.out.slice(plan.out.lastIndexOf("/") + 1),
    rows: plan.rows,
    d_in: plan.dIn,
    dtype: plan.dtype === "f32" ? "<f4" : "<f2",
    synthetic: plan.synthetic,
    n_features: nFeatures,
    offset: Array.from(t.offset),
    firing_probability: Array.from(t.firingProbability),
    groups: t.groups,
    parents: t.parents,
    concepts: t.concepts,
    concept_joint: t.conceptJoint,
    // [n_features, d_in], unit-norm rows: the true feature directions.
    dictionary: Array.from(
      { length: nFeatures },
      (_, i) => Array.from(t.dictionary.subarray(i * plan.dIn, (i + 1) * plan.dIn)),
    ),
  };
}

/** `sae synth`, ready to register on the program. */
export function synthCommand() {
  return makeSynthCommand().action(async (flags) => {
    const plan = await resolveSynthFlags(flags);
    const t0 = performance.now();
    await writeSynth(plan);
    const mb = (plan.rows * plan.dIn * (plan.dtype === "f32" ? 4 : 2)) / 2 ** 20;
    console.error(
      `wrote ${plan.out}: (${plan.rows}, ${plan.dIn}) ${plan.dtype}, ${mb.toFixed(1)} MiB in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s${plan.truth ? " (+ .truth.json)" : ""}`,
    );
  });
}
