import assert from "node:assert/strict";
import { getGpu } from "../../src/gpu/device.ts";
import { kernel, run } from "../../src/gpu/dispatch.ts";
import { hasSubgroups, withCollectives } from "../../src/kernels/collectives.ts";
import { WG } from "../../src/kernels/common.ts";
import { Rng } from "../../src/rng.ts";
import { assertClose } from "../helpers/check.ts";
import { assertOnlyLacksSubgroups } from "../helpers/subgroups.ts";

// One workgroup per row of WG values: every lane writes its exclusive prefix, the total and the
// float sum, so a lane with a stale or misplaced partial fails the comparison.
const probe = `
@group(0) @binding(0) var<storage, read> u: array<u32>;        // [rows, WG]
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [rows, WG]
@group(0) @binding(2) var<storage, read_write> out: array<u32>; // [rows, WG, 3]
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) w: vec3<u32>, l: Lanes) {
  let i = w.x * WG + l.lid;
  let s = wgc_scan(u[i], l);
  let f = wgc_sum_f(x[i], l);
  out[3u * i] = s.x;
  out[3u * i + 1u] = s.y;
  out[3u * i + 2u] = bitcast<u32>(f);
}`;

for (const subgroups of [false, true]) {
  Deno.test({
    name: `collectives (${subgroups ? "subgroups" : "workgroup memory"}): scan and sum per lane`,
    ignore: subgroups && !hasSubgroups(await getGpu()),
    fn: async () => {
      const gpu = await getGpu();
      const rng = new Rng(subgroups ? 2 : 1);
      const rows = 6;
      const u = new Uint32Array(rows * WG).map(() => rng.nextU32() % 1000);
      const x = new Float32Array(rows * WG).map(() => rng.uniform() * 2 - 1);
      const out = gpu.upload("out", new Uint32Array(rows * WG * 3).fill(0xffffffff));
      run(gpu, [
        await kernel(gpu, {
          label: "collectives probe",
          code: withCollectives(probe, subgroups),
          buffers: [gpu.upload("u", u), gpu.upload("x", x), out],
          groups: [rows, 1, 1],
        }),
      ]);
      const got = await gpu.readU32(out);
      const sums = new Float32Array(got.buffer, got.byteOffset, got.length);
      for (let r = 0; r < rows; r++) {
        let pre = 0, total = 0, fs = 0;
        for (let t = 0; t < WG; t++) total += u[r * WG + t];
        for (let t = 0; t < WG; t++) fs += x[r * WG + t];
        for (let t = 0; t < WG; t++) {
          const i = r * WG + t;
          assert.equal(got[3 * i], pre, `row ${r} lane ${t} prefix`);
          assert.equal(got[3 * i + 1], total, `row ${r} lane ${t} total`);
          assertClose([sums[3 * i + 2]], [fs], 1e-5, `row ${r} lane ${t} sum`);
          pre += u[i];
        }
      }
    },
  });
}

Deno.test({
  name: "collectives (subgroups): the variant parses; only the capability is missing here",
  ignore: hasSubgroups(await getGpu()),
  fn: () => assertOnlyLacksSubgroups(withCollectives(probe, true)),
});
