#!/usr/bin/env bash
# The measurements issue 5 asks for on a lent GPU, in order of value, each saved as a log under
# $OUT (the device tool's output folder; default gpu-results/). On the GPU machine, from the repo
# root (see DEVELOPERS.md for packing .gpu-runtime):
#
#   source .gpu-runtime/setup.sh; bash tasks/gpu_session.sh            # everything (~10-12 min)
#   source .gpu-runtime/setup.sh; bash tasks/gpu_session.sh kernels peer   # only some steps
#
# A lent GPU comes with 15 minutes of device time in all (the machine's start included), so the
# default run is sized to about 10-12 minutes on an H100/H200 (estimated: no GPU has run it yet);
# run it with a timeout that leaves room, e.g. `timeout 600 bash tasks/gpu_session.sh`.
#
# Steps: adapter (name, limits, features), kernels (bench/kernels_bench.ts: every kernel vs the
# FP32 FMA peak and copy bandwidth measured in the same run), gemm (bench/gemm_bench.ts), peer
# (our step vs PyTorch f32 eager on the same GPU, at the issue's shape and at paper scale), scale
# (paper- and user-scale steps), paper (the paper's whole run: 4882 steps, configs/paper.yaml,
# timed end to end with a per-kernel profile of its last 20 steps).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
mkdir -p "$out"
steps=("$@")
[[ ${#steps[@]} -eq 0 ]] && steps=(adapter kernels gemm peer scale paper)

run() {
  local name=$1
  shift
  echo "== $name: $*"
  local t0=$SECONDS
  "$@" >"$out/$name.log" 2>&1
  echo "   exit $? after $((SECONDS - t0)) s; last lines:"
  tail -n 6 "$out/$name.log" | sed 's/^/   /'
}

for s in "${steps[@]}"; do
  case $s in
  adapter)
    run adapter deno eval 'const a = await navigator.gpu.requestAdapter();
      const i = a.info;
      console.log(JSON.stringify({ info: { vendor: i.vendor, architecture: i.architecture,
        device: i.device, description: i.description }, features: [...a.features],
        limits: Object.fromEntries(Object.entries(Object.getOwnPropertyDescriptors(
          Object.getPrototypeOf(a.limits))).map(([k]) => [k, a.limits[k]])) }, null, 1))'
    ;;
  kernels) run kernels deno bench -A bench/kernels_bench.ts ;;
  gemm) run gemm deno bench -A bench/gemm_bench.ts ;;
  peer)
    run peer-4096 deno task bench:peer --device cuda --steps 20
    run peer-paper deno task bench:peer --device cuda --batch 2048 --d-in 2304 --d-sae 2304 --steps 20
    # Where the sparse-latent kernels stop paying on this GPU (sparse_max_density's default was
    # measured on lavapipe): the step at fixed densities, sparse forced on and off.
    for dens in 0.01 0.05; do
      for sp in 1 0; do
        run "peer-density-$dens-sparse-$sp" deno task bench:peer --device cuda --steps 20 \
          --density "$dens" --sparse "$sp"
      done
    done
    ;;
  scale)
    run scale-paper deno task scale --d-in 2304 --d-sae 2304 --batch 2048 --variant paper --steps 10
    run scale-16k deno task scale --d-in 2304 --d-sae 16384 --batch 2048 --steps 5
    run scale-64k deno task scale --d-in 2304 --d-sae 65536 --batch 2048 --steps 3
    ;;
  paper)
    run paper-run deno task sae train --config configs/paper.yaml --no-progress \
      --out "$out/paper-run" --overwrite --profile 20
    ;;
  *) echo "unknown step '$s' (adapter kernels gemm peer scale paper)" && exit 2 ;;
  esac
done
