import assert from "node:assert/strict";
import { sameBytes, spawnTrain, TINY_ARGS } from "../reliability/helpers.ts";
import { withTemp } from "../helpers/check.ts";

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
    assert.match(table, /\nkernel\s+calls\s+total ms\s+mean ms\s+share\n/);
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
    const share = p.kernels.reduce((a: number, k: { share: number }) => a + k.share, 0);
    assert.ok(Math.abs(share - 1) < 1e-9 && p.ms_per_step > 0);
    assert.ok(await sameBytes(`${dir}/plain/sae.safetensors`, `${dir}/prof/sae.safetensors`));
  });
});
