/**
 * `sae train`: resolve the configuration from defaults, a config file, --set overrides and flags,
 * then hand it to train().
 *
 * Precedence, lowest first: DEFAULT_CONFIG < --config FILE (or DIR/config.yaml with --resume DIR)
 * < --set KEY=VALUE < named flags. Commander is given no defaults for config values, so a value it
 * reports was typed by the user; the defaults appear only in the help text, read from
 * DEFAULT_CONFIG.
 */

import { Command, CommanderError } from "@commander-js/extra-typings";
import { resolve } from "node:path";
import {
  configKeys,
  DEFAULT_CONFIG,
  loadConfigFile,
  mergeConfig,
  parseScalar,
  type PartialConfig,
  setFlagLayer,
  type TrainConfig,
  validateConfig,
  validatePartialConfig,
} from "../config.ts";
import { UserError } from "../errors.ts";
import { dataWidth } from "../data/files.ts";
import { collect } from "./options.ts";
import { datasetPath, LIVE_DATA, modelWidth } from "../lm/live.ts";
import { readRunConfig } from "../run/rundir.ts";
import { train, type TrainOptions } from "../sae/trainer.ts";

/** The default of a config key, as shown in help. */
function def(key: Exclude<keyof TrainConfig, "synthetic">): string {
  return `(default: ${DEFAULT_CONFIG[key]})`;
}

/** Flags that set a config key: commander's attribute name → config key. */
const CONFIG_FLAGS = {
  steps: "steps",
  seed: "seed",
  dIn: "d_in",
  dSae: "d_sae",
  batch: "batch",
  lr: "lr",
  l1: "l1",
  warmupSteps: "warmup_steps",
  checkpointEvery: "checkpoint_every",
  logEvery: "log_every",
  data: "data",
  skipBadRows: "skip_bad_rows",
  model: "model",
  tokenizer: "tokenizer",
  hook: "hook_name",
  context: "context_size",
  lmBatch: "lm_batch",
  bufferContexts: "buffer_contexts",
} as const satisfies Record<string, Exclude<keyof TrainConfig, "synthetic">>;

/** Every config key with its default, for the end of `sae train --help`. */
function configKeysHelp(): string {
  const lines = configKeys().map((key) => {
    const [head, leaf] = key.split(".");
    const value = leaf === undefined
      ? DEFAULT_CONFIG[head as keyof TrainConfig]
      : DEFAULT_CONFIG.synthetic[leaf as keyof TrainConfig["synthetic"]];
    return `  ${key.padEnd(30)} ${value === "" ? '""' : value}`;
  });
  return [
    "",
    "Precedence: built-in defaults < --config FILE (or DIR/config.yaml with --resume DIR)",
    "< --set KEY=VALUE < the flags above.",
    "",
    "Config keys and their defaults (any of them works in a config file and with --set):",
    ...lines,
  ].join("\n");
}

/** The `train` command's options (no action attached). */
export function makeTrainCommand() {
  return new Command("train")
    .description("train a sparse autoencoder; writes config.yaml, checkpoints and metrics to --out")
    .option(
      "--config <file>",
      "YAML config file whose values replace the built-in defaults (default: none, built-in defaults)",
    )
    .option("--out <dir>", "run directory (default: runs/<name>)")
    .option(
      "--name <name>",
      "run name used by the default --out (default: a timestamp like 20261124-131500)",
    )
    .option("--steps <n>", `total optimizer steps ${def("steps")}`)
    .option("--seed <n>", `seed for initialisation and data order ${def("seed")}`)
    .option(
      "--d-in <n>",
      `activation width (default: the data's width; ${DEFAULT_CONFIG.d_in} for synthetic data)`,
    )
    .option("--d-sae <n>", `number of SAE latents ${def("d_sae")}`)
    .option("--batch <n>", `rows per training step ${def("batch")}`)
    .option("--lr <x>", `AdamW peak learning rate ${def("lr")}`)
    .option("--l1 <x>", `λ1, weight of the L1 sparsity penalty ${def("l1")}`)
    .option("--warmup-steps <n>", `linear LR warmup length in steps ${def("warmup_steps")}`)
    .option(
      "--checkpoint-every <n>",
      `write a checkpoint every N steps, 0: only the final one ${def("checkpoint_every")}`,
    )
    .option("--log-every <n>", `log metrics every N steps ${def("log_every")}`)
    .option("--data <path>", `"synthetic" or a path/glob of activation files ${def("data")}`)
    .option(
      "--tensor <name>",
      "tensor to read from .safetensors data (same as --data FILE#NAME) (default: the only 2-D one)",
    )
    .option(
      "--skip-bad-rows",
      "skip activation rows holding NaN/Inf (counted) instead of stopping (default: off)",
    )
    .option(
      "--model <dir|file.bin|owner/name>",
      "train live on a language model's activations at --hook, computed on the device from " +
        "--text (sets data to 'live'; not with --data) (default: none)",
    )
    .option("--hook <name>", "live: the hook point, e.g. blocks.2.hook_resid_pre (default: none)")
    .option(
      "--text <files...>",
      "live: the text, .txt, .jsonl or .parquet files, read in a loop (default: none)",
    )
    .option("--tokenizer <file>", "live: the tokenizer (default: the one beside the model)")
    .option("--context <n>", `live: tokens per context, BOS included ${def("context_size")}`)
    .option("--lm-batch <n>", `live: contexts per forward pass of the model ${def("lm_batch")}`)
    .option(
      "--buffer-contexts <n>",
      `live: contexts the mixing buffer holds, refilled half at a time ${def("buffer_contexts")}`,
    )
    .option(
      "--resume <dir>",
      "continue the run in DIR from its last good checkpoint, with DIR/config.yaml as the base " +
        "config; flags may still override keys, e.g. --steps to extend it (default: off)",
    )
    .option("--overwrite", "replace an existing run directory (default: off)")
    .option(
      "--profile [steps]",
      "time every kernel of the last N steps (GPU timestamps where available), print each " +
        "kernel's share and write profile.json (default: off; N defaults to 10)",
    )
    .option("--no-progress", "hide the progress bar (default: shown when stdout is a terminal)")
    .option(
      "--set <key=value>",
      "set any config key, nested ones too: --set synthetic.n_features=512; repeatable " +
        "(default: none)",
      collect,
    )
    .addHelpText("after", configKeysHelp());
}

/** What commander parsed for `train`. */
type TrainFlags = ReturnType<ReturnType<typeof makeTrainCommand>["opts"]>;

/** 20261124-131500 (local time). */
export function timestampName(d: Date = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-` +
    `${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** The run's config and options as the flags give them, and where d_in was set (null: nowhere). */
interface ResolvedTrain {
  cfg: TrainConfig;
  opts: TrainOptions;
  /** "--d-in 96", "--set d_in=96", "c.yaml", "runs/x/config.yaml", or null (the default). */
  dInFrom: string | null;
}

/** Turns parsed flags into the run's config and options (reads --config / DIR/config.yaml). */
async function resolveTrainFlags(flags: TrainFlags): Promise<ResolvedTrain> {
  let base: PartialConfig = {};
  let outDir: string;
  if (flags.resume !== undefined) {
    if (flags.config !== undefined) {
      throw new UserError(
        "--resume takes its config from DIR/config.yaml; drop --config (change keys with --set or flags)",
      );
    }
    if (flags.overwrite) {
      throw new UserError("--resume and --overwrite contradict each other; pass only one");
    }
    if (flags.out !== undefined && resolve(flags.out) !== resolve(flags.resume)) {
      throw new UserError("--resume DIR continues in DIR; drop --out");
    }
    if (flags.name !== undefined) {
      throw new UserError("--name has no effect with --resume; drop it");
    }
    outDir = flags.resume;
    base = await readRunConfig(flags.resume);
  } else {
    if (flags.config !== undefined) base = await loadConfigFile(flags.config);
    if (flags.name !== undefined && (flags.name === "" || /[/\\]/.test(flags.name))) {
      throw new UserError(`--name '${flags.name}' must be non-empty and contain no '/' or '\\'`);
    }
    if (flags.name !== undefined && flags.out !== undefined) {
      throw new UserError("--name only names the default --out directory; pass one of them");
    }
    outDir = flags.out ?? `runs/${flags.name ?? timestampName()}`;
  }

  const setTexts = flags.set ?? [];
  const sets = setTexts.map(setFlagLayer);

  const named: Record<string, unknown> = {};
  for (const [attr, key] of Object.entries(CONFIG_FLAGS)) {
    const raw = flags[attr as keyof typeof CONFIG_FLAGS];
    if (raw === undefined) continue;
    const value = typeof raw === "boolean" || typeof DEFAULT_CONFIG[key] === "string"
      ? raw
      : parseScalar(raw);
    validatePartialConfig(
      { [key]: value },
      `--${attr.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
    );
    named[key] = value;
  }

  if (flags.model !== undefined) {
    if (flags.data !== undefined) {
      throw new UserError(
        "--data and --model exclude each other: a run trains on activation files (--data) or " +
          "live on a model (--model, reading --text)",
      );
    }
    named.data = LIVE_DATA;
  }
  if (flags.text !== undefined) named.dataset_path = datasetPath(flags.text);
  const layers = [base, ...sets, named as PartialConfig];
  let cfg = validateConfig(mergeConfig(base, ...sets, named as PartialConfig), "the configuration");
  if (cfg.data === LIVE_DATA) {
    // d_in and model_name come from the model unless a layer sets them.
    const unset = (key: "d_in" | "model_name") => layers.every((l) => l[key] === undefined);
    if (flags.resume === undefined && (unset("d_in") || unset("model_name"))) {
      const { dModel, name } = await modelWidth(cfg.model);
      if (unset("d_in")) cfg = { ...cfg, d_in: dModel };
      if (unset("model_name")) cfg = { ...cfg, model_name: name };
    }
  } else {
    const liveOnly = [
      [flags.text, "--text"],
      [flags.hook, "--hook"],
      [flags.tokenizer, "--tokenizer"],
      [flags.context, "--context"],
      [flags.lmBatch, "--lm-batch"],
      [flags.bufferContexts, "--buffer-contexts"],
    ] as const;
    for (const [v, flag] of liveOnly) {
      if (v !== undefined) throw new UserError(`${flag} applies only to live training (--model)`);
    }
  }
  if (flags.tensor !== undefined) {
    if (!/\.safetensors$/i.test(cfg.data) || cfg.data.includes("#")) {
      throw new UserError(
        `--tensor needs --data naming .safetensors file(s) without '#NAME', got '${cfg.data}'`,
      );
    }
    cfg = { ...cfg, data: `${cfg.data}#${flags.tensor}` };
  }
  const opts: TrainOptions = {
    outDir,
    resume: flags.resume !== undefined,
    overwrite: flags.overwrite === true,
    progress: flags.progress !== false && Deno.stdout.isTerminal(),
  };
  if (flags.profile !== undefined) {
    const n = flags.profile === true ? 10 : Number(flags.profile);
    if (!Number.isInteger(n) || n < 1) {
      throw new UserError(
        `--profile takes a positive whole number of steps, got '${flags.profile}'`,
      );
    }
    opts.profile = n;
  }
  const lastSet = sets.findLastIndex((l) => l.d_in !== undefined);
  const dInFrom = named.d_in !== undefined
    ? `--d-in ${named.d_in}`
    : lastSet >= 0
    ? `--set ${setTexts[lastSet]}`
    : base.d_in !== undefined
    ? (flags.resume !== undefined ? `${flags.resume}/config.yaml` : flags.config!)
    : null;
  return { cfg, opts, dInFrom };
}

/**
 * The config with d_in taken from the activation files' width when no flag, --set or config file
 * set it (`dInFrom` null), or checked against it when one did: a mismatch stops with one line
 * naming both widths. Synthetic data keeps the config's d_in.
 */
export async function withDataWidth(
  cfg: TrainConfig,
  dInFrom: string | null,
): Promise<TrainConfig> {
  // Synthetic rows have the configured width; live rows the model's (checked by the source).
  if (cfg.data === "synthetic" || cfg.data === LIVE_DATA) return cfg;
  const { d, path } = await dataWidth(cfg.data);
  if (dInFrom === null) return validateConfig({ ...cfg, d_in: d }, "the configuration");
  if (d !== cfg.d_in) {
    throw new UserError(
      `d_in is ${cfg.d_in} (from ${dInFrom}) but the rows of ${path} are ${d} wide: pass --d-in ${d}, ` +
        `or leave d_in unset to take it from the data`,
    );
  }
  return cfg;
}

/**
 * Parses `sae train` arguments (those after "train") into the run's config and options, exactly
 * as the command does, up to reading the data: the command then fills in or checks d_in against
 * the activation files ({@link withDataWidth}, with `dInFrom`). Usage errors become UserErrors.
 *
 * @example
 * ```ts
 * const { cfg, opts } = await parseTrainArgs(["--steps", "10", "--set", "synthetic.n_features=512"]);
 * ```
 */
export async function parseTrainArgs(argv: string[]): Promise<ResolvedTrain> {
  const cmd = makeTrainCommand()
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} });
  try {
    cmd.parse(argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      throw new UserError(err.message.replace(/^error: /, "").replace(/\s*\n\s*/g, " "));
    }
    throw err;
  }
  return await resolveTrainFlags(cmd.opts());
}

/**
 * `sae train`, ready to register on the program. SIGINT/SIGTERM end it after a checkpoint with one
 * line on stderr and status 130/143 (128 + the signal's number), as a shell reports a killed job.
 */
export function trainCommand() {
  return makeTrainCommand().action(async (flags) => {
    const { cfg, opts, dInFrom } = await resolveTrainFlags(flags);
    await train(await withDataWidth(cfg, dInFrom), opts);
  });
}
