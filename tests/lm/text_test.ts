import assert from "node:assert/strict";
import { join } from "node:path";
import { parquetWriteBuffer } from "hyparquet-writer";
import {
  cutPoint,
  endOfTextMarkers,
  inspectText,
  readPieces,
  splitPieces,
  type TextOptions,
  type TextPiece,
  type TextSource,
  utf8Length,
} from "../../src/lm/text.ts";
import { Rng } from "../../src/rng.ts";
import { rejectsUserError, withTemp } from "../helpers/check.ts";

async function pieces(
  sources: TextSource[],
  from: TextPiece["at"] | null = null,
  opts: TextOptions = {},
): Promise<TextPiece[]> {
  const out: TextPiece[] = [];
  for await (const p of readPieces(sources, from, opts)) out.push(p);
  return out;
}

/** The documents: pieces of one document joined (a piece with index 0 starts a new one). */
function documents(ps: TextPiece[]): string[] {
  const docs: string[] = [];
  for (const p of ps) {
    if (p.at.piece === 0) docs.push(p.text);
    else docs[docs.length - 1] += p.text;
  }
  return docs;
}

Deno.test(".txt: blank lines separate documents, trimmed; CRLF, BOM, whitespace lines", async () => {
  await withTemp(async (dir) => {
    const path = join(dir, "a.txt");
    const text = "\ufeff\n  First doc line one.\nline two.\r\n \t\r\n\r\nSecond  doc.\n\n\n\n" +
      "Third: café 😀\n   \n";
    await Deno.writeTextFile(path, text);
    const [src] = await inspectText([path]);
    assert.equal(src.format, "txt");
    assert.equal(src.separator, "blank lines");
    assert.equal(src.documents, 3);
    assert.equal(src.bytes, new TextEncoder().encode(text).length);
    const ps = await pieces([src]);
    assert.deepEqual(ps.map((p) => p.text), [
      "First doc line one.\nline two.",
      "Second  doc.",
      "Third: café 😀",
    ]);
    assert.deepEqual(ps.map((p) => p.at.doc), [0, 1, 2]);
  });
});

Deno.test(".txt: the end-of-text marker separates documents when the file holds one", async () => {
  await withTemp(async (dir) => {
    const path = join(dir, "s.txt");
    await Deno.writeTextFile(
      path,
      "Once upon a time.\n\nThe end.<|endoftext|>\nTwo\n\nparagraphs.\n<|endoftext|><|endoftext|>Three",
    );
    const [src] = await inspectText([path], { markers: ["</s>", "<|endoftext|>"] });
    assert.equal(src.separator, "<|endoftext|>");
    assert.deepEqual((await pieces([src])).map((p) => p.text), [
      "Once upon a time.\n\nThe end.",
      "Two\n\nparagraphs.",
      "Three",
    ]);
    assert.deepEqual(endOfTextMarkers({ eos: 2, decode: () => "\n</s>\n" }), [
      "</s>",
      "<|endoftext|>",
    ]);
    assert.deepEqual(endOfTextMarkers({ eos: 9, decode: () => "<|endoftext|>" }), [
      "<|endoftext|>",
    ]);
    assert.deepEqual(endOfTextMarkers({ eos: null, decode: () => "" }), ["<|endoftext|>"]);
  });
});

Deno.test(".jsonl: the text field of each line; blank lines and empty texts skipped", async () => {
  await withTemp(async (dir) => {
    const path = join(dir, "d.jsonl");
    await Deno.writeTextFile(
      path,
      '{"text": "alpha  beta\\n", "id": 1}\n\n{"text": ""}\r\n{"meta": 2, "text": "gamma é"}\n{"text":"last"}',
    );
    const [src] = await inspectText([path]);
    assert.equal(src.documents, 3);
    const ps = await pieces([src]);
    assert.deepEqual(ps.map((p) => p.text), ["alpha  beta\n", "gamma é", "last"]);
    assert.deepEqual(ps.map((p) => p.at.doc), [0, 3, 4], "documents are numbered by line");
  });
});

Deno.test(".parquet: the text column, across row groups, null and empty rows skipped", async () => {
  await withTemp(async (dir) => {
    const path = join(dir, "d.parquet");
    const texts = ["one", null, "two ü", "", "three", "four", "five"];
    const buf = parquetWriteBuffer({
      columnData: [
        { name: "id", data: texts.map((_, i) => i), type: "INT32" },
        { name: "text", data: texts, type: "STRING" },
      ],
      rowGroupSize: 3,
    });
    await Deno.writeFile(path, new Uint8Array(buf));
    const [src] = await inspectText([path]);
    assert.equal(src.format, "parquet");
    assert.equal(src.documents, 5);
    const ps = await pieces([src]);
    assert.deepEqual(ps.map((p) => p.text), ["one", "two ü", "three", "four", "five"]);
    assert.deepEqual(ps.map((p) => p.at.offset), [0, 2, 4, 5, 6]);
    // Reading from a row in the second group.
    assert.deepEqual((await pieces([src], ps[2].at)).map((p) => p.text), ["three", "four", "five"]);

    const bad = join(dir, "bad.parquet");
    await Deno.writeFile(
      bad,
      new Uint8Array(parquetWriteBuffer({
        columnData: [{ name: "content", data: ["x"], type: "STRING" }],
      })),
    );
    await rejectsUserError(
      () => inspectText([bad]),
      /bad\.parquet has no "text" column \(columns: content\); write the documents to a column named "text"/,
    );
  });
});

Deno.test("several files are read in the order given", async () => {
  await withTemp(async (dir) => {
    const a = join(dir, "b.txt");
    const b = join(dir, "a.jsonl");
    await Deno.writeTextFile(a, "one\n\ntwo");
    await Deno.writeTextFile(b, '{"text":"three"}\n');
    const sources = await inspectText([a, b]);
    const ps = await pieces(sources);
    assert.deepEqual(ps.map((p) => p.text), ["one", "two", "three"]);
    assert.deepEqual(ps.map((p) => p.at.file), [0, 0, 1]);
  });
});

Deno.test("bad text: one line naming the file and the fix", async () => {
  await withTemp(async (dir) => {
    const p = (n: string) => join(dir, n);
    await rejectsUserError(() => inspectText([p("nope.txt")]), /text file not found: .*nope\.txt/);
    await rejectsUserError(() => inspectText([]), /no text files given/);
    await Deno.writeTextFile(p("x.csv"), "a,b");
    await rejectsUserError(() => inspectText([p("x.csv")]), /x\.csv: unsupported text file/);
    await Deno.writeTextFile(p("empty.txt"), " \n\n\t\n");
    await rejectsUserError(() => inspectText([p("empty.txt")]), /empty\.txt holds no text/);
    await Deno.writeTextFile(p("zero.txt"), "");
    await rejectsUserError(() => inspectText([p("zero.txt")]), /zero\.txt holds no text/);
    await Deno.writeTextFile(p("eot.txt"), "<|endoftext|>\n<|endoftext|>");
    await rejectsUserError(() => inspectText([p("eot.txt")]), /eot\.txt holds no text/);
    await Deno.writeTextFile(p("e.jsonl"), '{"text": ""}\n\n');
    await rejectsUserError(() => inspectText([p("e.jsonl")]), /e\.jsonl holds no text/);
    // Not UTF-8: the offset of the bad character.
    await Deno.writeFile(
      p("l1.txt"),
      new Uint8Array([0x61, 0x62, 0xc3, 0xa9, 0x20, 0xe9, 0x74, 0x65]),
    );
    await rejectsUserError(
      () => inspectText([p("l1.txt")]),
      /l1\.txt is not UTF-8: invalid byte 0x74 in the character at byte 5; convert it/,
    );
    await Deno.writeFile(p("overlong.txt"), new Uint8Array([0x61, 0xc0, 0xaf]));
    await rejectsUserError(
      () => inspectText([p("overlong.txt")]),
      /invalid byte 0xc0 .* at byte 1/,
    );
    await Deno.writeFile(p("surrogate.txt"), new Uint8Array([0x61, 0xed, 0xa0, 0x80]));
    await rejectsUserError(
      () => inspectText([p("surrogate.txt")]),
      /invalid byte 0xa0 .* at byte 1/,
    );
    await Deno.writeFile(p("cut.txt"), new Uint8Array([0x61, 0x62, 0xf0, 0x9f, 0x98]));
    await rejectsUserError(
      () => inspectText([p("cut.txt")]),
      /ends inside a multi-byte character at byte 2/,
    );
    // The offset survives chunk boundaries.
    const big = new Uint8Array(5000).fill(0x61);
    big[4321] = 0xff;
    await Deno.writeFile(p("big.txt"), big);
    await rejectsUserError(
      () => inspectText([p("big.txt")], { chunkBytes: 64 }),
      /invalid byte 0xff in the character at byte 4321/,
    );
    await Deno.writeTextFile(p("nofield.jsonl"), '{"text": "a"}\n{"body": "b"}\n');
    await rejectsUserError(
      () => inspectText([p("nofield.jsonl")]),
      /nofield\.jsonl line 2 has no "text" field: \{"body": "b"\}; each line must be an object with a "text" string/,
    );
    await Deno.writeTextFile(p("notjson.jsonl"), '{"text": "a"}\n{"text": "b"\n');
    await rejectsUserError(
      () => inspectText([p("notjson.jsonl")]),
      /notjson\.jsonl line 2 is not JSON/,
    );
    await Deno.writeTextFile(p("num.jsonl"), '{"text": 5}\n');
    await rejectsUserError(
      () => inspectText([p("num.jsonl")]),
      /num\.jsonl line 1: "text" is number, not a string/,
    );
    await Deno.writeTextFile(p("junk.parquet"), "not parquet at all");
    await rejectsUserError(
      () => inspectText([p("junk.parquet")]),
      /junk\.parquet is not a readable parquet file/,
    );
    await Deno.mkdir(p("dir.txt"));
    await rejectsUserError(() => inspectText([p("dir.txt")]), /dir\.txt is not a file/);
  });
});

/** Random text with long unbroken runs, multi-byte characters, blank lines and markers. */
function randomText(rng: Rng, n: number, marker: string | null): string {
  const words = ["a", "bb", "ccc", "é", "日本", "😀", "x".repeat(40), "\n", "\n\n", " \n\t\n"];
  let s = "";
  while (s.length < n) {
    const r = rng.uniform();
    if (marker !== null && r < 0.03) s += marker;
    else s += words[Math.floor(rng.uniform() * words.length)] + (rng.uniform() < 0.7 ? " " : "");
  }
  return s;
}

Deno.test("pieces: at most maxChars, the document rebuilt from them, reading resumes at any piece", async () => {
  await withTemp(async (dir) => {
    const rng = new Rng(7);
    const files = [
      { name: "blank.txt", text: randomText(rng, 3000, null) },
      { name: "marked.txt", text: randomText(rng, 3000, "<|endoftext|>") },
      {
        name: "lines.jsonl",
        text: Array.from({ length: 12 }, () => JSON.stringify({ text: randomText(rng, 300, null) }))
          .join("\n"),
      },
    ];
    const paths: string[] = [];
    for (const f of files) {
      paths.push(join(dir, f.name));
      await Deno.writeTextFile(paths[paths.length - 1], f.text);
    }
    const opts = { maxChars: 37, chunkBytes: 23 };
    const sources = await inspectText(paths, opts);
    const all = await pieces(sources, null, opts);
    assert.ok(all.length > 100);
    for (const p of all) assert.ok(p.text.length <= 37 && p.text.length > 0);
    assert.ok(all.some((p) => p.at.piece > 2), "long documents come in several pieces");

    // Joined pieces are the documents read whole.
    const whole = await pieces(sources, null, { maxChars: 1 << 20 });
    assert.deepEqual(documents(all), whole.map((p) => p.text));
    // The documents do not depend on the chunk size.
    assert.deepEqual(
      documents(await pieces(sources, null, { maxChars: 37, chunkBytes: 4096 })),
      documents(all),
    );
    // The document counts of inspectText are those of readPieces.
    assert.equal(
      sources.reduce((n, s) => n + s.documents, 0),
      whole.length,
    );

    // From every piece's position, reading yields exactly the pieces from it on.
    for (let k = 0; k < all.length; k += 1 + Math.floor(rng.uniform() * 5)) {
      const rest = await pieces(sources, all[k].at, opts);
      assert.deepEqual(rest, all.slice(k), `resume at piece ${k}`);
    }
  });
});

Deno.test("cutPoint and splitPieces: line break, else space, else a hard cut between characters", () => {
  assert.equal(cutPoint("abc def\nghi jkl", 0, 12), 7);
  assert.equal(cutPoint("abc def ghi", 0, 9), 7);
  assert.equal(cutPoint("abcdefghij", 0, 4), 4);
  assert.equal(cutPoint("abc😀def", 0, 4), 3, "never splits a surrogate pair");
  assert.deepEqual(splitPieces("aaaa bbbb cccc", 6), ["aaaa", " bbbb", " cccc"]);
  assert.deepEqual(splitPieces("short", 6), ["short"]);
  assert.equal(utf8Length("aé日😀"), 1 + 2 + 3 + 4);
});
