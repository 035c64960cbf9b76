/**
 * Where a CPU adapter's (lavapipe's) JIT-compiled kernel spends its time, instruction by
 * instruction: runs a workload, samples every CPU with `perf`, dumps the hottest JIT-compiled code
 * of the busiest process with `gdb`, disassembles it with `objdump`, and prints the instruction
 * mix weighted by the samples and a profile along the code (the kernel is straight-line code, so
 * position in it is position in the kernel). How bench/RESULTS.md's "What llvmpipe makes of the
 * broadcast GEMM" was measured:
 *
 *   deno run -A tasks/jit_profile.ts -- deno task bench:gemm-ab --shape 1024,768,3072 \
 *     --paths bcast --rounds 300
 *   deno run -A tasks/jit_profile.ts --wait 20 --seconds 8 --buckets 20 -- deno bench -A bench/lm_bench.ts
 *
 * Needs perf, gdb and objdump (`apt-get install -y linux-perf gdb binutils`) and the right to
 * attach to the workload (root, or kernel.yama.ptrace_scope 0 and perf_event_paranoid ≤ 0).
 * Linux on x86-64 only; a developer's tool, not a test or a bench. The workload must still be
 * running its kernel when the sampling starts (`--wait`); only its own processes (the command and
 * its descendants) are profiled, and they are stopped once the code is dumped.
 */
import { Command } from "@commander-js/extra-typings";

const opts = new Command("jit_profile")
  .argument("<command...>", "the workload, after --")
  .option("--wait <s>", "seconds before sampling (start-up, compilation)", "15")
  .option("--seconds <s>", "seconds of sampling", "5")
  .option("--buckets <n>", "parts of the hottest code to profile along", "40")
  .option("--top <n>", "mnemonics to list", "16")
  .parse(Deno.args, { from: "user" });
const o = opts.opts();
const cmd = opts.args;
const [wait, seconds, buckets, top] = [o.wait, o.seconds, o.buckets, o.top].map(Number);

async function sh(args: string[]): Promise<string> {
  const out = await new Deno.Command(args[0], { args: args.slice(1), stderr: "null" }).output();
  if (!out.success) throw new Error(`jit_profile: \`${args.join(" ")}\` failed (${out.code})`);
  return new TextDecoder().decode(out.stdout);
}
for (const tool of ["perf", "gdb", "objdump"]) {
  const ok = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "null" })
    .output();
  if (!ok.success) {
    console.error(
      `jit_profile: ${tool} not found; install it with \`apt-get install -y linux-perf gdb binutils\``,
    );
    Deno.exit(2);
  }
}

const dir = await Deno.makeTempDir({ prefix: "jit_profile" });
const child = new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "null", stderr: "null" })
  .spawn();
await new Promise((r) => setTimeout(r, wait * 1000));

// Every CPU, so that whichever process runs the kernels (deno task starts a child) is seen.
await sh([
  "perf",
  "record",
  "-a",
  "-F",
  "2000",
  "-o",
  `${dir}/perf.data`,
  "--",
  "sleep",
  `${seconds}`,
]);
const script = await sh(["perf", "script", "-i", `${dir}/perf.data`, "-F", "pid,ip"]);
const byPid = new Map<number, Map<bigint, number>>();
for (const line of script.split("\n")) {
  const m = line.trim().match(/^(\d+)\s+([0-9a-f]+)$/);
  if (!m) continue;
  const ip = BigInt(`0x${m[2]}`);
  if (ip >= 0xffff800000000000n) continue; // the kernel's own
  const pid = Number(m[1]);
  if (!byPid.has(pid)) byPid.set(pid, new Map());
  const ips = byPid.get(pid)!;
  ips.set(ip, (ips.get(ip) ?? 0) + 1);
}
// The workload's processes: the child and its descendants (deno task starts another deno).
async function descendants(root: number): Promise<Set<number>> {
  const parent = new Map<number, number>();
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${e.name}/stat`);
      parent.set(Number(e.name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch { /* gone meanwhile */ }
  }
  const out = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [p, pp] of parent) {
      if (out.has(pp) && !out.has(p)) {
        out.add(p);
        grew = true;
      }
    }
  }
  return out;
}
const ours = await descendants(child.pid);
const sum = (m: Map<bigint, number>) => [...m.values()].reduce((a, b) => a + b, 0);
const [pid, ips] =
  [...byPid].filter(([p]) => ours.has(p)).sort((a, b) => sum(b[1]) - sum(a[1]))[0] ??
    [];
if (!ips) {
  throw new Error("jit_profile: no samples in the workload's processes; is it still running?");
}
const hottest = [...ips].sort((a, b) => b[1] - a[1])[0][0];

// The mapping that holds the hottest address: JIT code lives in anonymous executable mappings.
const maps = await Deno.readTextFile(`/proc/${pid}/maps`);
const region = maps.split("\n").map((l) => l.split(/\s+/)).find((f) => {
  if (!f[0]) return false;
  const [lo, hi] = f[0].split("-").map((x) => BigInt(`0x${x}`));
  return lo <= hottest && hottest < hi;
});
if (!region) throw new Error(`jit_profile: 0x${hottest.toString(16)} is in no mapping of ${pid}`);
const [lo, hi] = region[0].split("-").map((x) => `0x${x}`);
await sh(["gdb", "-p", `${pid}`, "-batch", "-ex", `dump binary memory ${dir}/jit.bin ${lo} ${hi}`]);
for (const p of [...ours].reverse()) {
  try {
    Deno.kill(p, "SIGTERM");
  } catch { /* already gone */ }
}
// objdump's listing of a large mapping can exceed a JavaScript string: read it line by line.
const code: { ip: bigint; op: string }[] = [];
const objdump = new Deno.Command("objdump", {
  args: ["-D", "-b", "binary", "-m", "i386:x86-64", `--adjust-vma=${lo}`, `${dir}/jit.bin`],
  stdout: "piped",
  stderr: "null",
}).spawn();
let rest = "";
const take = (line: string) => {
  const m = line.match(/^\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} )+\s*([a-z][\w.]*)/);
  if (m) code.push({ ip: BigInt(`0x${m[1]}`), op: m[2] });
};
for await (const chunk of objdump.stdout.pipeThrough(new TextDecoderStream())) {
  const lines = (rest + chunk).split("\n");
  rest = lines.pop()!;
  lines.forEach(take);
}
take(rest);
if (!(await objdump.status).success) throw new Error("jit_profile: objdump failed");
const total = sum(ips);
const inRegion = code.reduce((s, c) => s + (ips.get(c.ip) ?? 0), 0);
const pct = (n: number, of = inRegion) => `${(100 * n / Math.max(1, of)).toFixed(1)}%`;
console.log(
  `process ${pid}: ${total} user-space samples; the mapping ${lo}-${hi} (${
    ((Number(BigInt(hi) - BigInt(lo))) / 1024).toFixed(0)
  } KiB, ${code.length} instructions) holds ${pct(inRegion, total)} of them`,
);
const mix = new Map<string, { n: number; s: number }>();
for (const c of code) {
  const e = mix.get(c.op) ?? { n: 0, s: 0 };
  e.n++;
  e.s += ips.get(c.ip) ?? 0;
  mix.set(c.op, e);
}
console.log("mnemonic        count  samples");
for (const [op, e] of [...mix].sort((a, b) => b[1].s - a[1].s).slice(0, top)) {
  console.log(`${op.padEnd(12)} ${String(e.n).padStart(8)}  ${pct(e.s).padStart(6)}`);
}
const watch = ["vmulps", "vaddps", "vfmadd231ps", "vpextrd", "vmovaps"];
console.log(`part  samples  ${watch.join(" ")} jumps`);
for (let b = 0; b < buckets; b++) {
  const part = code.slice(
    Math.floor(b * code.length / buckets),
    Math.floor((b + 1) * code.length / buckets),
  );
  const s = part.reduce((t, c) => t + (ips.get(c.ip) ?? 0), 0);
  const count = (p: (op: string) => boolean) => part.filter((c) => p(c.op)).length;
  const cols = watch.map((w) => String(count((op) => op === w)).padStart(w.length));
  console.log(
    `${String(b).padStart(4)}  ${pct(s).padStart(7)}  ${cols.join(" ")} ${
      String(count((op) => op.startsWith("j"))).padStart(5)
    }`,
  );
}
await Deno.remove(dir, { recursive: true });
