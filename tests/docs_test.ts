/**
 * Every Markdown table in docs/, README.md and ARCHITECTURE.md renders with the columns its header
 * declares: a `|` inside a cell (even inside backticks, as GitHub's tables read it) splits the cell
 * unless it is escaped as `\|`, and a row with more or fewer cells than its header loses text.
 * `deno fmt` silently drops a row's extra cells, so after it the damage shows only as a cell cut
 * mid-span: an odd number of backticks, or a cell that ends on an opening bracket.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;

/** A table row's cells: split at every `|` not escaped by a backslash, outer pipes dropped. */
export function tableCells(line: string): string[] {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  const cells: string[] = [];
  let cell = "";
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\" && s[i + 1] === "|") {
      cell += "\\|";
      i++;
    } else if (s[i] === "|") {
      cells.push(cell.trim());
      cell = "";
    } else {
      cell += s[i];
    }
  }
  cells.push(cell.trim());
  return cells;
}

/** A delimiter row: `| --- | :-: |` (at least one cell, each dashes with optional colons). */
function isDelimiter(line: string): boolean {
  if (!line.includes("-")) return false;
  return tableCells(line).every((c) => /^:?-+:?$/.test(c));
}

/** Problems of the tables in one Markdown text: "line N: ..." for each bad row. */
export function tableProblems(text: string): string[] {
  const lines = text.split("\n");
  const problems: string[] = [];
  let fence: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i].trim();
    const f = /^(`{3,}|~{3,})/.exec(t);
    if (f) {
      if (fence === null) fence = f[1];
      else if (t.startsWith(fence)) fence = null;
      continue;
    }
    if (fence !== null || !t.includes("|") || i + 1 >= lines.length) continue;
    if (!isDelimiter(lines[i + 1])) continue;
    const want = tableCells(lines[i]).length;
    const delim = tableCells(lines[i + 1]).length;
    if (delim !== want) {
      problems.push(`line ${i + 2}: delimiter row has ${delim} cells, header ${want}`);
    }
    let j = i + 2;
    for (; j < lines.length && lines[j].trim() !== "" && lines[j].includes("|"); j++) {
      const cells = tableCells(lines[j]);
      if (cells.length !== want) {
        problems.push(
          `line ${j + 1}: ${cells.length} cells, header has ${want}: ${lines[j].slice(0, 60)}`,
        );
      }
      for (const c of cells) {
        const ticks = c.replaceAll("\\`", "").split("`").length - 1;
        if (ticks % 2 === 1 || /[([{]$/.test(c)) {
          problems.push(`line ${j + 1}: a cell cut by an unescaped '|': ${c.slice(-60)}`);
        }
      }
    }
    i = j - 1;
  }
  return problems;
}

async function markdownFiles(): Promise<string[]> {
  const out = ["README.md", "ARCHITECTURE.md"].map((f) => join(ROOT, f));
  for await (const e of Deno.readDir(join(ROOT, "docs"))) {
    if (e.isFile && e.name.endsWith(".md")) out.push(join(ROOT, "docs", e.name));
  }
  return out.sort();
}

/** The distinct "line N" of a list of problems. */
function lineNumbers(problems: string[]): string[] {
  return [...new Set(problems.map((p) => p.split(":")[0]))];
}

Deno.test("table rows are split like GitHub splits them", () => {
  assert.deepEqual(tableCells("| a | `x \\| y` | c |"), ["a", "`x \\| y`", "c"]);
  assert.deepEqual(tableCells("| a | `|w·w|` |"), ["a", "`", "w·w", "`"]);
  assert.deepEqual(tableCells("a | b"), ["a", "b"]);
  const bad = "| h1 | h2 |\n| -- | -- |\n| ok | fine |\n| 1/(|c| + ε) | why |\n\n| x |\n";
  assert.deepEqual(lineNumbers(tableProblems(bad)), ["line 4"]);
  // What `deno fmt` leaves of such rows: the right count, the text after the split gone.
  const cut = "| h1 | h2 |\n| -- | -- |\n| a | `mean |\n| b | 1/( |\n| c | `x \\| y` (ok) |\n";
  assert.deepEqual(lineNumbers(tableProblems(cut)), ["line 3", "line 4"]);
  // Tables inside fenced code are not rendered as tables.
  assert.deepEqual(tableProblems("```\n| a | b |\n| - | - |\n| a | b | c |\n```\n"), []);
});

Deno.test("every Markdown table in docs/, README.md and ARCHITECTURE.md has whole rows", async () => {
  const files = await markdownFiles();
  assert.ok(files.length >= 5, `found only ${files}`);
  const problems: string[] = [];
  for (const path of files) {
    for (const p of tableProblems(await Deno.readTextFile(path))) {
      problems.push(`${path.slice(ROOT.length)} ${p}`);
    }
  }
  assert.deepEqual(problems, [], problems.join("\n"));
});
