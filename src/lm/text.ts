/**
 * Text a language model reads: streaming document readers over `.txt`, `.jsonl` and `.parquet`
 * files, several in order, holding at most one read chunk (`.txt`, `.jsonl`) or one row group's
 * `text` column (`.parquet`) plus one document piece in memory however large the files are.
 *
 * - `.txt`: documents are separated by the end-of-text marker when the file contains one (the
 *   tokenizer's EOS text, or `<|endoftext|>`, the marker of TinyStories' and GPT-2's text dumps),
 *   otherwise by blank lines (lines holding only spaces, tabs or `\r`). Each document is trimmed
 *   of surrounding whitespace; empty ones are skipped.
 * - `.jsonl`: one JSON object per line with a string `text` field, used as is; blank lines and
 *   empty texts are skipped.
 * - `.parquet`: the string column `text`, one document per row (uncompressed or snappy pages, as
 *   npm `hyparquet` reads them); null and empty texts are skipped.
 *
 * A document longer than `maxChars` (default 1 Mi characters) is handed out in pieces of at most
 * that many characters, cut at the last line break (else space) before the limit, so no file can
 * make one document fill memory; the pieces of one document are packed without a separator
 * between them. Every piece carries its {@link TextPosition}, from which reading can start again
 * and yield exactly the pieces that followed: `.txt` and `.jsonl` are read in chunks aligned to
 * multiples of the chunk size from the file's start, so where reading began never changes what is
 * read.
 *
 * {@link inspectText} reads every file once before anything else happens: it checks each one
 * (exists, UTF-8, has text, has a `text` field on every line / a `text` column) and records its
 * size and SHA-256, which identify the text by content in manifests and resume states.
 *
 * @example
 * ```ts
 * import { inspectText, readPieces } from "./text.ts";
 * const sources = await inspectText(["corpus.txt", "more.jsonl"], { markers: ["<|endoftext|>"] });
 * for await (const piece of readPieces(sources)) console.log(piece.at, piece.text.length);
 * ```
 * @module
 */

import { createHash } from "node:crypto";
import { parquetMetadataAsync, parquetReadObjects } from "hyparquet";
import type { AsyncBuffer, FileMetaData } from "hyparquet";
import { UserError } from "../errors.ts";
import { printable } from "../data/npy.ts";

/** File formats read as text. */
export type TextFormat = "txt" | "jsonl" | "parquet";

/** One text file as {@link inspectText} found it. */
export interface TextSource {
  /** The path as given (used in every message). */
  path: string;
  /** By extension. */
  format: TextFormat;
  /** Size in bytes. */
  bytes: number;
  /** SHA-256 of the file's bytes, hex. */
  sha256: string;
  /** Non-empty documents found. */
  documents: number;
  /** `.txt` only: what separates documents: an end-of-text marker, or "blank lines". */
  separator?: string;
}

/** Where a piece of text starts; reading from it yields that piece and every one after it. */
export interface TextPosition {
  /** Index of the file in the sources. */
  file: number;
  /**
   * Document number in the file: `.txt`, the count of non-empty documents before it; `.jsonl`,
   * the 0-based line; `.parquet`, the 0-based row.
   */
  doc: number;
  /**
   * `.txt`: byte offset of the piece's first character; `.jsonl`: byte offset of the line;
   * `.parquet`: the row.
   */
  offset: number;
  /** Index of the piece within its document (0: the document's start). */
  piece: number;
}

/** A piece of a document: its text and where it starts. */
export interface TextPiece {
  text: string;
  at: TextPosition;
}

/** Options of {@link inspectText} and {@link readPieces}. */
export interface TextOptions {
  /** End-of-text markers that separate `.txt` documents when a file contains one (first found wins). */
  markers?: string[];
  /** Longest piece handed out, in UTF-16 code units (default 1 Mi). */
  maxChars?: number;
  /** Bytes per read (default 1 MiB); reads are aligned to multiples of it. */
  chunkBytes?: number;
}

/** The default end-of-text marker looked for besides the tokenizer's. */
const END_OF_TEXT = "<|endoftext|>";

const DEFAULT_MAX_CHARS = 1 << 20;
const DEFAULT_CHUNK_BYTES = 1 << 20;
/** Longest `.jsonl` line accepted, in UTF-16 code units. */
const MAX_LINE_CHARS = 1 << 28;

/**
 * The end-of-text markers to separate `.txt` documents by: the text of the tokenizer's EOS token
 * (trimmed; llama2.c's is "\n</s>\n") when it has one, and {@link END_OF_TEXT}.
 */
export function endOfTextMarkers(
  tok: { eos: number | null; decode(ids: number[]): string },
): string[] {
  const out: string[] = [];
  if (tok.eos !== null) {
    const t = tok.decode([tok.eos]).trim();
    if (t.length > 0) out.push(t);
  }
  if (!out.includes(END_OF_TEXT)) out.push(END_OF_TEXT);
  return out;
}

/** The format of `path` by its extension, or a UserError. */
function textFormat(path: string): TextFormat {
  const m = /\.(txt|jsonl|parquet)$/i.exec(path);
  if (m === null) {
    throw new UserError(
      `${path}: unsupported text file (expected .txt, .jsonl with a "text" field, or .parquet with a "text" column)`,
    );
  }
  return m[1].toLowerCase() as TextFormat;
}

/**
 * Reads every file once, in order, checking it and recording its size, SHA-256 and document
 * count; throws a one-line UserError naming the file and the fix for a missing file, one with no
 * text, bytes that are not UTF-8 (with the offset), a `.jsonl` line without a string `text`, or a
 * `.parquet` file without a string `text` column.
 */
export async function inspectText(paths: string[], opts: TextOptions = {}): Promise<TextSource[]> {
  if (paths.length === 0) throw new UserError("no text files given; pass --text FILE...");
  const out: TextSource[] = [];
  for (const path of paths) {
    const format = textFormat(path);
    const bytes = await fileSize(path);
    if (format === "parquet") out.push(await inspectParquet(path, bytes));
    else out.push(await inspectStream(path, format, bytes, opts));
  }
  return out;
}

async function fileSize(path: string): Promise<number> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new UserError(`text file not found: ${path} (check the path given to --text)`);
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new UserError(`cannot read text file ${path}: permission denied`);
    }
    throw err;
  }
  if (!info.isFile) throw new UserError(`${path} is not a file (give text files to --text)`);
  return info.size;
}

/** One pass over a .txt / .jsonl file: hash, UTF-8 check, marker search, document count. */
async function inspectStream(
  path: string,
  format: "txt" | "jsonl",
  size: number,
  opts: TextOptions,
): Promise<TextSource> {
  const hash = createHash("sha256");
  const utf8 = new Utf8Validator(path);
  const markers = format === "txt" ? (opts.markers ?? [END_OF_TEXT]) : [];
  const found = new Set<string>();
  const longest = markers.reduce((n, m) => Math.max(n, m.length), 0);
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  let tail = ""; // last characters of the previous chunk, so markers across chunks are found
  let sawText = false;
  // .jsonl: the unfinished line and its number.
  let line = "";
  let lineNo = 0;
  let docs = 0;
  const checkLine = (text: string) => {
    const t = text.endsWith("\r") ? text.slice(0, -1) : text;
    if (t.trim().length > 0 && jsonlText(t, path, lineNo).length > 0) docs++;
    lineNo++;
  };
  const file = await openText(path);
  try {
    let first = true;
    for await (const chunk of alignedChunks(file, 0, opts.chunkBytes ?? DEFAULT_CHUNK_BYTES)) {
      hash.update(chunk);
      utf8.push(chunk);
      const text = decoder.decode(first ? stripBom(chunk) : chunk, { stream: true });
      first = false;
      if (format === "txt") {
        if (!sawText && /\S/.test(text)) sawText = true;
        const hay = tail + text;
        for (const m of markers) if (!found.has(m) && hay.includes(m)) found.add(m);
        tail = hay.slice(Math.max(0, hay.length - longest));
      } else {
        let start = 0;
        let nl: number;
        while ((nl = text.indexOf("\n", start)) >= 0) {
          checkLine(line + text.slice(start, nl));
          line = "";
          start = nl + 1;
        }
        line += text.slice(start);
        if (line.length > MAX_LINE_CHARS) {
          throw new UserError(
            `${path} line ${
              lineNo + 1
            } is longer than ${MAX_LINE_CHARS} characters; split the record`,
          );
        }
      }
    }
    utf8.end();
    if (format === "jsonl" && line.length > 0) checkLine(line + decoder.decode());
  } finally {
    file.close();
  }
  const src: TextSource = { path, format, bytes: size, sha256: hash.digest("hex"), documents: 0 };
  if (format === "txt") {
    src.separator = markers.find((m) => found.has(m)) ?? "blank lines";
    if (sawText) {
      // Counting needs the separator; a second pass reads the file as readPieces does.
      for await (const p of txtPieces(src, 0, null, opts)) if (p.at.piece === 0) docs++;
    }
  }
  src.documents = docs;
  if (docs === 0) {
    throw new UserError(
      format === "txt"
        ? `${path} holds no text (only whitespace${
          src.separator === "blank lines" ? "" : " and end-of-text markers"
        }); give a file with documents`
        : `${path} holds no text (no line has a non-empty "text"); give a file with documents`,
    );
  }
  return src;
}

/** The `text` field of one .jsonl line, or a UserError naming the file and line. */
function jsonlText(line: string, path: string, lineNo: number): string {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    throw new UserError(
      `${path} line ${lineNo + 1} is not JSON (${(err as Error).message}): ${
        printable(line)
      }; each line must be an object with a "text" field`,
    );
  }
  if (v === null || typeof v !== "object" || Array.isArray(v) || !("text" in v)) {
    throw new UserError(
      `${path} line ${lineNo + 1} has no "text" field: ${
        printable(line)
      }; each line must be an object with a "text" string (rename the field holding the text)`,
    );
  }
  const text = (v as { text: unknown }).text;
  if (typeof text !== "string") {
    throw new UserError(
      `${path} line ${lineNo + 1}: "text" is ${
        text === null ? "null" : typeof text
      }, not a string; give each line's text as a JSON string`,
    );
  }
  return text;
}

/** A parquet file as hyparquet reads it, through Deno file reads. */
async function parquetFile(path: string, size: number): Promise<AsyncBuffer> {
  const file = await openText(path);
  file.close();
  return {
    byteLength: size,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const stop = end ?? size;
      const buf = new Uint8Array(stop - start);
      const f = await openText(path);
      try {
        await f.seek(start, Deno.SeekMode.Start);
        let done = 0;
        while (done < buf.length) {
          const n = await f.read(buf.subarray(done));
          if (n === null) {
            throw new UserError(
              `${path} ended at byte ${start + done} (was it changed while read?)`,
            );
          }
          done += n;
        }
      } finally {
        f.close();
      }
      return buf.buffer;
    },
  };
}

async function parquetMeta(
  path: string,
  size: number,
): Promise<{ file: AsyncBuffer; meta: FileMetaData }> {
  const file = await parquetFile(path, size);
  let meta: FileMetaData;
  try {
    meta = await parquetMetadataAsync(file);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`${path} is not a readable parquet file (${(err as Error).message})`);
  }
  const col = meta.schema.find((s, i) => i > 0 && s.name === "text");
  if (col === undefined) {
    const names = meta.schema.slice(1).map((s) => s.name).join(", ");
    throw new UserError(
      `${path} has no "text" column (columns: ${names}); write the documents to a column named "text"`,
    );
  }
  if (col.type !== "BYTE_ARRAY" || (col.num_children ?? 0) > 0) {
    throw new UserError(
      `${path}: the "text" column is ${
        col.type ?? "a group"
      }, not strings; store the documents as strings`,
    );
  }
  return { file, meta };
}

async function inspectParquet(path: string, size: number): Promise<TextSource> {
  const hash = createHash("sha256");
  const f = await openText(path);
  try {
    for await (const chunk of alignedChunks(f, 0, DEFAULT_CHUNK_BYTES)) hash.update(chunk);
  } finally {
    f.close();
  }
  const { file, meta } = await parquetMeta(path, size);
  let docs = 0;
  for (const g of parquetGroups(meta)) {
    for (const t of await parquetTexts(file, path, g.start, g.end)) if (t.length > 0) docs++;
  }
  if (docs === 0) {
    throw new UserError(
      `${path} holds no text (every "text" is empty or null); give a file with documents`,
    );
  }
  return { path, format: "parquet", bytes: size, sha256: hash.digest("hex"), documents: docs };
}

/** Row ranges [start, end) of the file's row groups. */
function parquetGroups(meta: FileMetaData): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  let start = 0;
  for (const g of meta.row_groups) {
    const n = Number(g.num_rows);
    out.push({ start, end: start + n });
    start += n;
  }
  return out;
}

/** The `text` values of rows [start, end) ("" for null). */
async function parquetTexts(
  file: AsyncBuffer,
  path: string,
  start: number,
  end: number,
): Promise<string[]> {
  let rows: Record<string, unknown>[];
  try {
    rows = await parquetReadObjects({ file, columns: ["text"], rowStart: start, rowEnd: end });
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(
      `${path}: cannot read rows ${start}..${end} (${
        (err as Error).message
      }); hyparquet reads uncompressed and snappy-compressed files (rewrite it with compression="snappy")`,
    );
  }
  return rows.map((r) => {
    const t = r.text;
    if (t === null || t === undefined) return "";
    if (typeof t !== "string") {
      throw new UserError(
        `${path}: the "text" column holds ${typeof t} values, not strings; store the documents as strings`,
      );
    }
    return t;
  });
}

/**
 * Yields the pieces of every document of `sources` in order, starting at `from` (inclusive) or
 * at the first file's start.
 */
export async function* readPieces(
  sources: TextSource[],
  from: TextPosition | null = null,
  opts: TextOptions = {},
): AsyncGenerator<TextPiece> {
  if (from !== null && (from.file < 0 || from.file >= sources.length)) {
    throw new UserError(
      `text position names file ${from.file} of ${sources.length}; the saved state is damaged`,
    );
  }
  for (let f = from?.file ?? 0; f < sources.length; f++) {
    const at = from !== null && from.file === f ? from : null;
    yield* readFilePieces(sources, f, at, opts);
  }
}

/** The pieces of one file, from `at` (inclusive) or its start. */
export function readFilePieces(
  sources: TextSource[],
  f: number,
  at: TextPosition | null,
  opts: TextOptions = {},
): AsyncGenerator<TextPiece> {
  const src = sources[f];
  if (src.format === "txt") return txtPieces(src, f, at, opts);
  if (src.format === "jsonl") return jsonlPieces(src, f, at, opts);
  return parquetPieces(src, f, at, opts);
}

/** Index where a piece of `s` starting at `from` ends: the last \n (else space) before the limit. */
export function cutPoint(s: string, from: number, maxChars: number): number {
  const limit = from + maxChars;
  let j = s.lastIndexOf("\n", limit - 1);
  if (j <= from) j = Math.max(s.lastIndexOf(" ", limit - 1), s.lastIndexOf("\t", limit - 1));
  if (j > from) return j;
  // No break: a hard cut, never between the halves of a surrogate pair.
  const c = s.charCodeAt(limit - 1);
  return c >= 0xd800 && c <= 0xdbff ? limit - 1 : limit;
}

/** `text` cut into pieces of at most `maxChars` (one piece when it fits). */
export function splitPieces(text: string, maxChars: number): string[] {
  const out: string[] = [];
  let i = 0;
  while (text.length - i > maxChars) {
    const cut = cutPoint(text, i, maxChars);
    out.push(text.slice(i, cut));
    i = cut;
  }
  out.push(text.slice(i));
  return out;
}

async function* txtPieces(
  src: TextSource,
  f: number,
  from: TextPosition | null,
  opts: TextOptions,
): AsyncGenerator<TextPiece> {
  const maxChars = opts.maxChars ?? DEFAULT_MAX_CHARS;
  const marker = src.separator === undefined || src.separator === "blank lines"
    ? null
    : src.separator;
  const blank = /\n[ \t\r]*\n(?:[ \t\r]*\n)*/g;
  const nonSpace = /[^ \t\r\n]/g;
  let buf = "";
  let i = 0; // cursor in buf
  let byte = from?.offset ?? 0; // file offset of buf[i]
  let piece = from?.piece ?? 0;
  let doc = from?.doc ?? 0;

  // The first separator at or after i as [start, end, complete]: a blank-line run is complete
  // when text other than whitespace follows it (it cannot grow with the next chunk).
  const separator = (): [number, number, boolean] | null => {
    if (marker !== null) {
      const k = buf.indexOf(marker, i);
      return k < 0 ? null : [k, k + marker.length, true];
    }
    blank.lastIndex = i;
    const m = blank.exec(buf);
    if (m === null) return null;
    const end = m.index + m[0].length;
    nonSpace.lastIndex = end;
    return [m.index, end, nonSpace.test(buf)];
  };
  // Whether a piece may be cut at the limit: every separator that could start before the limit
  // is already in memory, so what is read next cannot change the cut.
  const cutSafe = (): boolean => {
    if (marker !== null) return buf.length >= i + maxChars + marker.length;
    nonSpace.lastIndex = i + maxChars;
    return nonSpace.test(buf);
  };
  const advance = (to: number) => {
    byte += utf8Length(buf, i, to);
    i = to;
  };
  // The piece buf[i, end), trimmed at a document's start and end; null when empty.
  const take = (end: number, last: boolean): TextPiece | null => {
    let t = buf.slice(i, end);
    if (piece === 0) t = t.trimStart();
    if (last) t = t.trimEnd();
    if (t.length === 0) return null;
    return { text: t, at: { file: f, doc, offset: byte, piece } };
  };
  function* drain(eof: boolean): Generator<TextPiece> {
    for (;;) {
      const sep = separator();
      if (sep !== null && sep[0] - i <= maxChars) {
        if (!sep[2] && !eof) return;
        const p = take(sep[0], true);
        if (p !== null) yield p;
        if (p !== null || piece > 0) doc++;
        piece = 0;
        advance(sep[1]);
        continue;
      }
      if (buf.length - i > maxChars && (eof || cutSafe())) {
        const cut = cutPoint(buf, i, maxChars);
        const p = take(cut, false);
        if (p !== null) {
          yield p;
          piece++;
        }
        advance(cut);
        continue;
      }
      if (eof && buf.length > i) {
        const p = take(buf.length, true);
        if (p !== null) {
          yield p;
          doc++;
        }
        piece = 0;
        advance(buf.length);
      }
      return;
    }
  }

  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  for await (const { text, last } of decodedText(src.path, byte, chunkBytes, (n) => byte += n)) {
    buf = buf.slice(i) + text;
    i = 0;
    yield* drain(last);
  }
}

async function* jsonlPieces(
  src: TextSource,
  f: number,
  from: TextPosition | null,
  opts: TextOptions,
): AsyncGenerator<TextPiece> {
  const maxChars = opts.maxChars ?? DEFAULT_MAX_CHARS;
  let buf = "";
  let byte = from?.offset ?? 0; // file offset of buf[0]
  let lineNo = from?.doc ?? 0;
  let skip = from?.piece ?? 0;
  function* line(text: string, lineStart: number): Generator<TextPiece> {
    const t = text.endsWith("\r") ? text.slice(0, -1) : text;
    if (t.trim().length > 0) {
      const doc = jsonlText(t, src.path, lineNo);
      if (doc.length > 0) {
        const pieces = splitPieces(doc, maxChars);
        for (let k = skip; k < pieces.length; k++) {
          yield { text: pieces[k], at: { file: f, doc: lineNo, offset: lineStart, piece: k } };
        }
      }
    }
    skip = 0;
    lineNo++;
  }
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  for await (const { text, last } of decodedText(src.path, byte, chunkBytes, (n) => byte += n)) {
    buf += text;
    if (last) {
      if (buf.length > 0) yield* line(buf, byte);
      break;
    }
    let start = 0;
    let nl: number;
    while ((nl = buf.indexOf("\n", start)) >= 0) {
      const lineStart = byte;
      byte += utf8Length(buf, start, nl + 1);
      yield* line(buf.slice(start, nl), lineStart);
      start = nl + 1;
    }
    buf = buf.slice(start);
  }
}

async function* parquetPieces(
  src: TextSource,
  f: number,
  from: TextPosition | null,
  opts: TextOptions,
): AsyncGenerator<TextPiece> {
  const maxChars = opts.maxChars ?? DEFAULT_MAX_CHARS;
  const { file, meta } = await parquetMeta(src.path, src.bytes);
  const startRow = from?.offset ?? 0;
  let skip = from?.piece ?? 0;
  for (const g of parquetGroups(meta)) {
    if (g.end <= startRow) continue;
    const lo = Math.max(g.start, startRow);
    const texts = await parquetTexts(file, src.path, lo, g.end);
    for (let r = 0; r < texts.length; r++) {
      const row = lo + r;
      if (texts[r].length > 0) {
        const pieces = splitPieces(texts[r], maxChars);
        for (let k = skip; k < pieces.length; k++) {
          yield { text: pieces[k], at: { file: f, doc: row, offset: row, piece: k } };
        }
      }
      skip = 0;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Bytes.

async function openText(path: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new UserError(`text file not found: ${path} (was it moved since the run started?)`);
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new UserError(`cannot read text file ${path}: permission denied`);
    }
    throw err;
  }
}

/**
 * The bytes of `file` from `start` on, in chunks that end at multiples of `chunkBytes` (the first
 * may be shorter), so the chunking after any offset is the same whatever offset reading began at.
 */
/**
 * The text of `path` from byte `from` in decoded pieces, one per aligned chunk, then the
 * decoder's flush (`last`); a BOM at offset 0 is skipped and its length passed to `onBom` so the
 * caller's byte offsets stay the file's. Stops with one line on invalid UTF-8.
 */
async function* decodedText(
  path: string,
  from: number,
  chunkBytes: number,
  onBom: (bytes: number) => void,
): AsyncGenerator<{ text: string; last: boolean }> {
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const file = await openText(path);
  try {
    let first = from === 0;
    for await (const chunk of alignedChunks(file, from, chunkBytes)) {
      let bytes = chunk;
      if (first) {
        bytes = stripBom(chunk);
        onBom(chunk.length - bytes.length);
        first = false;
      }
      yield { text: decodeOrFail(decoder, bytes, path, true), last: false };
    }
    yield { text: decodeOrFail(decoder, new Uint8Array(0), path, false), last: true };
  } finally {
    file.close();
  }
}

async function* alignedChunks(
  file: Deno.FsFile,
  start: number,
  chunkBytes: number,
): AsyncGenerator<Uint8Array> {
  await file.seek(start, Deno.SeekMode.Start);
  const buf = new Uint8Array(chunkBytes);
  let pos = start;
  for (;;) {
    const want = chunkBytes - (pos % chunkBytes);
    let got = 0;
    while (got < want) {
      const n = await file.read(buf.subarray(got, want));
      if (n === null) break;
      got += n;
    }
    if (got === 0) return;
    pos += got;
    yield buf.slice(0, got);
    if (got < want) return;
  }
}

function stripBom(b: Uint8Array): Uint8Array {
  return b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? b.subarray(3) : b;
}

function decodeOrFail(
  decoder: TextDecoder,
  bytes: Uint8Array,
  path: string,
  stream: boolean,
): string {
  try {
    return decoder.decode(bytes, { stream });
  } catch {
    throw new UserError(`${path} is no longer valid UTF-8 (was it changed since it was checked?)`);
  }
}

/** UTF-8 bytes of s[from, to). */
export function utf8Length(s: string, from = 0, to = s.length): number {
  let n = 0;
  for (let k = from; k < to; k++) {
    const c = s.charCodeAt(k);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && k + 1 < to) {
      const d = s.charCodeAt(k + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        k++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/**
 * Checks a byte stream is UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF), reporting the offset of the first sequence that is not.
 */
export class Utf8Validator {
  private pos = 0;
  private need = 0;
  private lo = 0x80;
  private hi = 0xbf;
  private seqStart = 0;

  constructor(private readonly path: string) {}

  /** Checks the next bytes. */
  push(bytes: Uint8Array): void {
    let need = this.need, lo = this.lo, hi = this.hi;
    for (let k = 0; k < bytes.length; k++) {
      const b = bytes[k];
      if (need === 0) {
        if (b < 0x80) continue;
        this.seqStart = this.pos + k;
        if (b >= 0xc2 && b <= 0xdf) [need, lo, hi] = [1, 0x80, 0xbf];
        else if (b === 0xe0) [need, lo, hi] = [2, 0xa0, 0xbf];
        else if (b === 0xed) [need, lo, hi] = [2, 0x80, 0x9f];
        else if (b >= 0xe1 && b <= 0xef) [need, lo, hi] = [2, 0x80, 0xbf];
        else if (b === 0xf0) [need, lo, hi] = [3, 0x90, 0xbf];
        else if (b >= 0xf1 && b <= 0xf3) [need, lo, hi] = [3, 0x80, 0xbf];
        else if (b === 0xf4) [need, lo, hi] = [3, 0x80, 0x8f];
        else this.fail(this.seqStart, b);
      } else {
        if (b < lo || b > hi) this.fail(this.seqStart, bytes[k]);
        need--;
        lo = 0x80;
        hi = 0xbf;
      }
    }
    this.need = need;
    this.lo = lo;
    this.hi = hi;
    this.pos += bytes.length;
  }

  /** Checks the stream did not end inside a character. */
  end(): void {
    if (this.need > 0) {
      throw new UserError(
        `${this.path} is not UTF-8: it ends inside a multi-byte character at byte ${this.seqStart}; convert it to UTF-8 (e.g. iconv -t utf-8)`,
      );
    }
  }

  private fail(at: number, b: number): never {
    throw new UserError(
      `${this.path} is not UTF-8: invalid byte 0x${
        b.toString(16).padStart(2, "0")
      } in the character at byte ${at}; convert it to UTF-8 (e.g. iconv -f latin1 -t utf-8)`,
    );
  }
}
