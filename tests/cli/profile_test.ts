import assert from "node:assert/strict";
import { sameBytes, spawnTrain, TINY_ARGS } from "../reliability/helpers.ts";
import { withTemp } from "../helpers/check.ts";

/** A kernel's entry in profile.json. */
interface Rated {
  label: string;
  ms: number;
  bytes: number | null;
  gbps: number | null;
}

Deno.test("sae train --profile 3: prints the per-kernel table, writes profile.json, same weights", async () => {
  await withTemp(async (dir) => {
    const args = [...TINY_ARGS, "--steps", "8", "--seed", "5", "--log-every", "4"];
    const plain = await spawnTrain([...args, "--out", `${dir}/plain`]).done;
    assert.equal(plain.status.code, 0, plain.stderr);
    assert.doesNotMatch(plain.stderr, /per-kernel GPU time/);
    const prof = await spawnTrain([...args, "--out", `${dir}/prof`, "--profile", "3"]).done;
    assert.equal(prof.status.code, 0, prof.stderr);

    const table = prof.stderr.slice(prof.stderr.indexOf("per-kernel GPU time"));
    assert.match(table, /^per-kernel GPU time over the last 3 steps \((timestamps|host);/);
    assert.match(table, /\nkernel\s+calls\s+total ms\s+mean ms\s+share\s+GFLOP\/s\s+GB\/s\n/);
    for (const k of ["encode", "decode", "dF", "dW_dec", "dW_enc", "adamw wEnc", "adamw wDec"]) {
      assert.match(table, new RegExp(`\\n${k}\\s+3\\s+[\\d.]+\\s+[\\d.]+\\s+[\\d.]+%`), k);
    }
    const shares = [...table.matchAll(/([\d.]+)%/g)].map((m) => Number(m[1]));
    assert.ok(Math.abs(shares.reduce((a, b) => a + b, 0) - 100) < 0.5, table);

    const p = JSON.parse(await Deno.readTextFile(`${dir}/prof/profile.json`));
    assert.equal(p.steps, 3);
    assert.ok(["timestamps", "host"].includes(p.method));
    const labels = p.kernels.map((k: { label: string }) => k.label);
    for (const k of ["encode", "dF", "dW_enc", "adamw bDec", "health"]) {
      assert.ok(labels.includes(k), `${k} missing from ${labels.join(", ")}`);
    }
    for (const k of p.kernels) assert.equal(k.calls, 3, k.label);
    // Work from the dispatches' costs; b_dec [16]: p, g, m, v read, p, m, v written, 3 steps.
    const byLabel = new Map(p.kernels.map((k: Rated) => [k.label, k]));
    assert.equal((byLabel.get("adamw bDec") as Rated).bytes, 3 * 7 * 4 * 16);
    for (const name of ["adamw wEnc", "prepare", "residual", "health", "schedule"]) {
      assert.ok((byLabel.get(name) as Rated).bytes! > 0, name);
    }
    // Rates where both the work and a time are known, else null in the JSON and "-" in the table.
    let rated = 0;
    for (const k of p.kernels as Rated[]) {
      const want = k.bytes !== null && k.ms > 0 ? k.bytes / (k.ms / 1e3) / 1e9 : null;
      assert.ok(want === null ? k.gbps === null : Math.abs(k.gbps! - want) <= 1e-9 * want, k.label);
      const cells = want === null ? "-" : `${k.gbps!.toFixed(2)}`;
      assert.match(table, new RegExp(`\\n${k.label}\\s.*%\\s+\\S+\\s+${cells}\\n`), k.label);
      if (want !== null) rated++;
    }
    assert.ok(rated > 0, "no kernel got a rate");
    const share = p.kernels.reduce((a: number, k: { share: number }) => a + k.share, 0);
    assert.ok(Math.abs(share - 1) < 1e-9 && p.ms_per_step > 0);
    assert.ok(await sameBytes(`${dir}/plain/sae.safetensors`, `${dir}/prof/sae.safetensors`));
  });
});
