/**
 * Finding and loading a model: `--model` is a Hugging Face directory (`config.json` and
 * `model.safetensors`, or shards `model-0000N-of-0000M.safetensors` listed by
 * `model.safetensors.index.json`; tokenizer in `tokenizer.json`), a llama2.c checkpoint `.bin`
 * (tokenizer from `--tokenizer`, else `tok<vocab>.bin` or `tokenizer.bin` beside it, as llama2.c's
 * run.c looks for), or a Hugging Face repo id (`openai-community/gpt2`), downloaded into the
 * Hugging Face cache (HF_HUB_CACHE, else ~/.cache/huggingface/hub) through npm `@huggingface/hub`
 * when the network allows.
 *
 * @example
 * ```ts
 * import { loadModel } from "./load.ts";
 * const m = await loadModel("../shared/lm/stories260K/stories260K.bin");
 * m.config.nLayers; // 5
 * m.tokenizer?.name; // "llama2c:tok512.bin"
 * ```
 */
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { UserError } from "../errors.ts";
import { decodeSafetensors, type Tensor } from "../run/safetensors.ts";
import { type LmConfig, parseHfConfig } from "./config.ts";
import { decodeLlama2c, isLlama2cPath } from "./llama2c.ts";
import { checkTokenizerFits, openTokenizer, type Tokenizer } from "./tokenizer.ts";
import {
  type LmWeights,
  type TensorSource,
  weightsFromTensors,
  type WeightStats,
} from "./weights.ts";

/** Where a model's files are. */
export interface ModelSource {
  /** What the user passed. */
  spec: string;
  format: "hf" | "llama2c";
  /** The directory (hf) or checkpoint file (llama2c). */
  path: string;
  /** config.json (hf) or the checkpoint (llama2c). */
  configFile: string;
  /** Files holding the weights. */
  weightFiles: string[];
  /** The tokenizer file to use, or null when none was given or found. */
  tokenizerFile: string | null;
}

/** A loaded model. */
export interface LmModel {
  config: LmConfig;
  weights: LmWeights;
  /** Null when loaded without one (see {@link LoadOptions.tokenizer}). */
  tokenizer: Tokenizer | null;
  source: ModelSource;
  stats: WeightStats;
}

/** Fetches files of a Hugging Face repo into a local cache. */
export interface HubClient {
  /** The local path of `path` in `repo`, downloaded if needed; null when the repo lacks it. */
  file(repo: string, path: string): Promise<string | null>;
}

/** Options of {@link resolveModel} and {@link loadModel}. */
export interface LoadOptions {
  /** Tokenizer file (default: the one beside the model, if any). */
  tokenizer?: string;
  /** Whether to open the tokenizer (default true); false leaves LmModel.tokenizer null. */
  openTokenizer?: boolean;
  /** Downloads repo ids (default: npm @huggingface/hub into the Hugging Face cache). */
  hub?: HubClient;
}

/** The default {@link HubClient}: npm @huggingface/hub, loaded only when a repo id is given. */
export const defaultHub: HubClient = {
  async file(repo, path) {
    const hub = await import("@huggingface/hub");
    const accessToken = Deno.env.get("HF_TOKEN") || undefined;
    if (!(await hub.fileExists({ repo, path, accessToken }))) return null;
    return await hub.downloadFileToCacheDir({ repo, path, accessToken });
  },
};

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Whether `spec` reads as a Hugging Face repo id (owner/name) rather than a path. */
export function isRepoId(spec: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/.test(spec) && !spec.includes("..");
}

const REPO_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json"];

/** Downloads what a model needs from a repo, returning the local snapshot directory. */
async function download(repo: string, hub: HubClient): Promise<string> {
  const get = async (path: string) => {
    try {
      return await hub.file(repo, path);
    } catch (e) {
      const why = ((e as Error).message ?? String(e)).split("\n")[0];
      const offline = e instanceof TypeError || e instanceof Deno.errors.NotCapable ||
        e instanceof Deno.errors.PermissionDenied;
      throw new UserError(
        offline
          ? `cannot download '${repo}' from the Hugging Face Hub: offline (${why}): download it ` +
            `elsewhere and pass its directory with --model DIR`
          : `cannot download '${repo}/${path}' from the Hugging Face Hub (${why}): check the ` +
            `repo id and HF_TOKEN, or pass a local directory with --model DIR`,
      );
    }
  };
  const config = await get(REPO_FILES[0]);
  if (!config) {
    throw new UserError(
      `'${repo}' has no config.json on the Hugging Face Hub: pass a model repo id or --model DIR`,
    );
  }
  for (const f of REPO_FILES.slice(1)) await get(f);
  const index = await get("model.safetensors.index.json");
  if (index) {
    for (const shard of shardFiles(JSON.parse(await Deno.readTextFile(index)), index)) {
      await get(shard);
    }
  } else if (!(await get("model.safetensors"))) {
    throw new UserError(
      `'${repo}' has no model.safetensors on the Hugging Face Hub (only safetensors weights are ` +
        `read): pick a repo that has them`,
    );
  }
  return dirname(config);
}

/** The shard files an index names, each once, in order of first appearance. */
function shardFiles(index: unknown, file: string): string[] {
  const map = (index as { weight_map?: unknown })?.weight_map;
  if (typeof map !== "object" || map === null) {
    throw new UserError(`${file}: no weight_map: the index is not a safetensors index`);
  }
  const files = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const f of files) {
    if (typeof f !== "string" || f.includes("/") || f.includes("\\")) {
      throw new UserError(`${file}: weight_map names ${JSON.stringify(f)}, not a file beside it`);
    }
  }
  return files as string[];
}

/** Finds a model's files (downloading a repo id first); reads no weights. */
export async function resolveModel(spec: string, opts: LoadOptions = {}): Promise<ModelSource> {
  let info = await statOrNull(spec);
  let path = spec;
  if (!info && isRepoId(spec)) {
    path = await download(spec, opts.hub ?? defaultHub);
    info = await statOrNull(path);
  }
  if (!info) {
    throw new UserError(
      `${spec}: no such file or directory: pass a Hugging Face model directory, a llama2.c .bin ` +
        `or a Hugging Face repo id (owner/name)`,
    );
  }
  const tokenizerGiven = opts.tokenizer ?? null;
  if (info.isFile) {
    if (!isLlama2cPath(path)) {
      throw new UserError(
        `${spec}: not a model: pass a Hugging Face model directory or a llama2.c checkpoint (.bin)`,
      );
    }
    return {
      spec,
      format: "llama2c",
      path,
      configFile: path,
      weightFiles: [path],
      tokenizerFile: tokenizerGiven ?? await besideLlama2c(path),
    };
  }
  const configFile = join(path, "config.json");
  if (!(await statOrNull(configFile))) {
    throw new UserError(
      `${path}: no config.json: pass a Hugging Face model directory (config.json + ` +
        `model.safetensors) or a llama2.c .bin with --tokenizer`,
    );
  }
  const single = join(path, "model.safetensors");
  const indexFile = join(path, "model.safetensors.index.json");
  let weightFiles: string[];
  if (await statOrNull(single)) weightFiles = [single];
  else if (await statOrNull(indexFile)) {
    const index = JSON.parse(await Deno.readTextFile(indexFile));
    weightFiles = shardFiles(index, indexFile).map((f) => join(path, f));
  } else {
    const bin = await statOrNull(join(path, "pytorch_model.bin"));
    throw new UserError(
      `${path}: no model.safetensors or model.safetensors.index.json` +
        (bin ? " (only safetensors weights are read, not pytorch_model.bin)" : "") +
        `: save the model with safetensors (save_pretrained's default)`,
    );
  }
  const tokJson = join(path, "tokenizer.json");
  return {
    spec,
    format: "hf",
    path,
    configFile,
    weightFiles,
    tokenizerFile: tokenizerGiven ?? ((await statOrNull(tokJson)) ? tokJson : null),
  };
}

/** `tok<vocab>.bin` or `tokenizer.bin` next to a llama2.c checkpoint, or null. */
async function besideLlama2c(ckpt: string): Promise<string | null> {
  const header = new Int32Array(7);
  const f = await Deno.open(ckpt);
  try {
    await f.read(new Uint8Array(header.buffer));
  } finally {
    f.close();
  }
  for (const name of [`tok${Math.abs(header[5])}.bin`, "tokenizer.bin"]) {
    const p = join(dirname(ckpt), name);
    if (p !== ckpt && (await statOrNull(p))?.isFile) return p;
  }
  return null;
}

async function readFileOrUserError(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    throw new UserError(`${path}: cannot read (${(e as Error).message})`);
  }
}

/** A {@link TensorSource} over safetensors files (tensor names must be unique across them). */
async function safetensorsSource(files: string[]): Promise<TensorSource> {
  const where = new Map<string, { file: string; t: Tensor }>();
  for (const file of files) {
    let tensors: Record<string, Tensor>;
    try {
      tensors = decodeSafetensors(await readFileOrUserError(file)).tensors;
    } catch (e) {
      if (e instanceof UserError) throw new UserError(`${file}: ${e.message}`);
      throw e;
    }
    for (const [name, t] of Object.entries(tensors)) {
      if (where.has(name)) {
        throw new UserError(`${file}: tensor '${name}' is also in ${where.get(name)!.file}`);
      }
      where.set(name, { file, t });
    }
  }
  const only = files.length === 1 ? files[0] : `${dirname(files[0])}/model-*.safetensors`;
  return {
    get: (name) => where.get(name)?.t,
    fileOf: (name) => where.get(name)?.file ?? only,
    names: () => [...where.keys()],
  };
}

/**
 * Loads a model: its configuration, its weights as f32, and (unless `openTokenizer` is false) its
 * tokenizer, checked against the vocabulary.
 */
export async function loadModel(spec: string, opts: LoadOptions = {}): Promise<LmModel> {
  const source = await resolveModel(spec, opts);
  let config: LmConfig, weights: LmWeights, stats: WeightStats;
  if (source.format === "llama2c") {
    ({ config, weights, stats } = decodeLlama2c(
      await readFileOrUserError(source.path),
      source.path,
    ));
  } else {
    let json: unknown;
    try {
      json = JSON.parse(await Deno.readTextFile(source.configFile));
    } catch (e) {
      throw new UserError(`${source.configFile}: not valid JSON (${(e as Error).message})`);
    }
    config = parseHfConfig(json as Record<string, unknown>, source.configFile);
    ({ weights, stats } = weightsFromTensors(config, await safetensorsSource(source.weightFiles)));
  }
  let tokenizer: Tokenizer | null = null;
  if (opts.openTokenizer !== false && source.tokenizerFile) {
    tokenizer = await openTokenizer(source.tokenizerFile);
    checkTokenizerFits(tokenizer, config);
  }
  return { config, weights, tokenizer, source, stats };
}

/** The model's name for manifests and logs: the repo id or the directory/file's base name. */
export function modelName(source: ModelSource): string {
  return isRepoId(source.spec) ? source.spec : basename(source.path);
}

/** One file of a model, identified by content. */
export interface ModelFile {
  /** Base name (config.json, model.safetensors, stories260K.bin, ...). */
  file: string;
  bytes: number;
  /** SHA-256 of its bytes, hex. */
  sha256: string;
}

/** A model's identity by content: its config and weight files and one hash over them. */
export interface ModelFingerprint {
  files: ModelFile[];
  /** SHA-256 of the lines `<sha256>  <file>` of {@link files}, in order (as sha256sum prints). */
  sha256: string;
}

/**
 * The content fingerprint of a model: SHA-256 of its config.json (Hugging Face) and of every
 * weight file, read in 4 MiB chunks (a manifest records it; a resume compares it).
 */
export async function modelFingerprint(source: ModelSource): Promise<ModelFingerprint> {
  const paths = source.format === "hf"
    ? [source.configFile, ...source.weightFiles]
    : source.weightFiles;
  const files: ModelFile[] = [];
  const buf = new Uint8Array(4 << 20);
  for (const path of paths) {
    const hash = createHash("sha256");
    let bytes = 0;
    const f = await Deno.open(path);
    try {
      for (;;) {
        const n = await f.read(buf);
        if (n === null) break;
        hash.update(buf.subarray(0, n));
        bytes += n;
      }
    } finally {
      f.close();
    }
    files.push({ file: basename(path), bytes, sha256: hash.digest("hex") });
  }
  const all = createHash("sha256");
  for (const f of files) all.update(`${f.sha256}  ${f.file}\n`);
  return { files, sha256: all.digest("hex") };
}
