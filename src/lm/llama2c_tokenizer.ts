/**
 * llama2.c's tokenizer file (`tok512.bin`, `tokenizer.bin`): int32 max_token_length, then per
 * token an f32 merge score, an int32 byte length and the bytes. Spaces are stored as ' '
 * (SentencePiece's '▁' replaced), raw bytes as the tokens `<0xNN>`, ids 0/1/2 are unk/BOS/EOS.
 *
 * Encoding is llama2.c's (run.c `encode`): a space in front of non-empty text (SentencePiece's
 * dummy prefix), each UTF-8 character looked up as a token (else its bytes as `<0xNN>` tokens),
 * then repeatedly the adjacent pair whose concatenation is a token with the highest score is
 * merged, the leftmost on ties. Here the pairs wait in a heap instead of being rescanned after
 * every merge (same merges, O(n log n) instead of O(n²)).
 */
import { basename } from "node:path";
import { UserError } from "../errors.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** Bytes as a string of char codes 0-255, the key pieces are looked up by. */
function byteString(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** A min-heap of merge candidates: best score first, then leftmost. */
class PairHeap {
  private items: { score: number; left: number; key: string }[] = [];

  get size(): number {
    return this.items.length;
  }

  private before(a: number, b: number): boolean {
    const x = this.items[a], y = this.items[b];
    return x.score > y.score || (x.score === y.score && x.left < y.left);
  }

  push(item: { score: number; left: number; key: string }): void {
    const h = this.items;
    h.push(item);
    for (let i = h.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  pop(): { score: number; left: number; key: string } {
    const h = this.items;
    const top = h[0];
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      for (let i = 0;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && this.before(l, m)) m = l;
        if (r < h.length && this.before(r, m)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

/** The llama2.c tokenizer (see the module comment). */
export class Llama2cTokenizer implements Tokenizer {
  readonly name: string;
  readonly vocabSize: number;
  readonly bos = 1;
  readonly eos = 2;
  private readonly pieces: Uint8Array[];
  private readonly scores: Float32Array;
  private readonly ids = new Map<string, number>();
  private readonly byteIds: number[];

  /** From the decoded file: each token's bytes and merge score. */
  constructor(name: string, pieces: Uint8Array[], scores: Float32Array) {
    this.name = name;
    this.vocabSize = pieces.length;
    this.pieces = pieces;
    this.scores = scores;
    pieces.forEach((p, i) => {
      const key = byteString(p);
      if (!this.ids.has(key)) this.ids.set(key, i);
    });
    this.byteIds = Array.from({ length: 256 }, (_, b) => {
      const id = this.ids.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
      return id ?? 0;
    });
  }

  encode(text: string): number[] {
    if (!text) return [];
    const bytes = new TextEncoder().encode(" " + text);
    // Symbols: a doubly linked list over the byte string; sym i covers bytes [start[i], end[i]).
    const start: number[] = [], end: number[] = [], id: number[] = [];
    // Byte-fallback symbols: llama2.c looks pairs up by their pieces' text, and "<0xNN>" joined
    // to anything is never a piece, so they never merge.
    const raw: boolean[] = [];
    for (let i = 0; i < bytes.length;) {
      let n = 1;
      const b = bytes[i];
      if (b >= 0xf0) n = 4;
      else if (b >= 0xe0) n = 3;
      else if (b >= 0xc0) n = 2;
      n = Math.min(n, bytes.length - i);
      const hit = this.ids.get(byteString(bytes.subarray(i, i + n)));
      if (hit !== undefined) {
        start.push(i), end.push(i + n), id.push(hit), raw.push(false);
      } else {
        for (let k = 0; k < n; k++) {
          start.push(i + k), end.push(i + k + 1), id.push(this.byteIds[bytes[i + k]]);
        }
      }
      i += n;
    }
    const n = id.length;
    const next = Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const prev = Array.from({ length: n }, (_, i) => i - 1);
    const alive = new Uint8Array(n).fill(1);
    const heap = new PairHeap();
    const text8 = byteString(bytes);
    const offer = (l: number) => {
      const r = next[l];
      if (l < 0 || r < 0 || raw[l] || raw[r]) return;
      const key = text8.slice(start[l], end[r]);
      const hit = this.ids.get(key);
      if (hit !== undefined) heap.push({ score: this.scores[hit], left: l, key });
    };
    for (let i = 0; i + 1 < n; i++) offer(i);
    while (heap.size) {
      const { left: l, key } = heap.pop();
      const r = next[l];
      // Stale: one side was merged away or grew since this pair was offered.
      if (!alive[l] || r < 0 || text8.slice(start[l], end[r]) !== key) continue;
      id[l] = this.ids.get(key)!;
      end[l] = end[r];
      alive[r] = 0;
      next[l] = next[r];
      if (next[r] >= 0) prev[next[r]] = l;
      offer(prev[l]);
      offer(l);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0 && i < n; i = next[i]) out.push(id[i]);
    return out;
  }

  decode(ids: number[]): string {
    const chunks: Uint8Array[] = [];
    let atStart = true;
    for (const t of ids) {
      if (t === this.bos || t === this.eos) {
        atStart = true;
        continue;
      }
      const piece = this.pieces[t];
      if (piece === undefined) throw new Error(`token id ${t} outside the vocabulary`);
      const m = /^<0x([0-9A-F]{2})>$/.exec(byteString(piece));
      if (m) chunks.push(new Uint8Array([parseInt(m[1], 16)]));
      // SentencePiece drops the dummy-prefix space of a sequence's first piece.
      else chunks.push(atStart && piece[0] === 0x20 ? piece.subarray(1) : piece);
      atStart = false;
    }
    const all = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
    let o = 0;
    for (const c of chunks) all.set(c, o), o += c.length;
    return new TextDecoder().decode(all);
  }
}

/** Decodes a llama2.c tokenizer file (the vocabulary size is the number of tokens it holds). */
export function decodeLlama2cTokenizer(bytes: Uint8Array, name: string): Llama2cTokenizer {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (why: string) =>
    new UserError(`${name}: not a llama2.c tokenizer file (${why}): pass the model's tok*.bin`);
  if (bytes.length < 4) throw bad("shorter than its 4-byte header");
  const maxLen = view.getInt32(0, true);
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  for (let p = 4; p < bytes.length;) {
    if (p + 8 > bytes.length) throw bad(`truncated at byte ${p}`);
    const score = view.getFloat32(p, true);
    const len = view.getInt32(p + 4, true);
    if (len < 0 || len > maxLen || p + 8 + len > bytes.length) {
      throw bad(`token ${pieces.length} has length ${len} at byte ${p}`);
    }
    scores.push(score);
    pieces.push(bytes.subarray(p + 8, p + 8 + len));
    p += 8 + len;
  }
  if (pieces.length < 3) throw bad(`${pieces.length} tokens`);
  return new Llama2cTokenizer(`llama2c:${basename(name)}`, pieces, new Float32Array(scores));
}

/** Reads a llama2.c tokenizer file. */
export async function loadLlama2cTokenizer(path: string): Promise<Llama2cTokenizer> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new UserError(`${path}: cannot read the tokenizer (${(e as Error).message})`);
  }
  return decodeLlama2cTokenizer(bytes, path);
}
