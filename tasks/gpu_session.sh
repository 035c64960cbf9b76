#!/usr/bin/env bash
# The one command for a lent GPU (issue 15): the measurements in order of value, each step under
# its own timeout inside one overall budget (default 8 minutes), so one hang cannot eat the rest.
# Every step's log lands in $OUT (the device tool's output folder; default gpu-results/), packed
# at the end into $OUT/logs.tar.gz beside $OUT/summary.txt, since only a few files come back.
#
# On the GPU machine, from the repo root, with the runtime packed beforehand by
# ../shared/gpu/pack.sh (Deno, the Vulkan loader, the npm cache in .gpu-runtime/; carry it):
#
#   bash tasks/gpu_session.sh                  # everything, in about 8 minutes
#   bash tasks/gpu_session.sh adapter gemm     # only some steps
#   SESSION_BUDGET_S=300 bash tasks/gpu_session.sh
#
# Steps, in order:
#   adapter  WebGPU adapter (name, features, limits), nvidia-smi, the driver, and whether PyTorch
#            with CUDA is there (then it is the peer below)
#   tests    a correctness subset on the GPU: the GEMM paths (tiled, every layout, epilogue, f16),
#            the tile cache, the adapter switch, the subgroup reductions and collectives (they run
#            only where the device has subgroups), top-k, JumpReLU, the loss, norms, a whole step
#   gemm     bench/gemm_bench.ts: every GEMM of the step per path and tile, against the FP32 FMA
#            peak measured in the same run
#   tune     deno task tune: the tiled tiles timed for the paper's step and for 16k latents, cached
#            for the steps below
#   step     the SAE step at the paper's shape (B 2048, d 2304, paper variant) and at 16k latents,
#            and where PyTorch has CUDA, the same baseline step in PyTorch f32 eager beside ours
#   paper    the paper's whole run (configs/paper.yaml, 4882 steps) timed end to end, with a
#            per-kernel profile of its last 20 steps
#   lm       bench/lm_bench.ts, the language-model forward, where it exists
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
logs=$(mktemp -d)
mkdir -p "$out"
budget=${SESSION_BUDGET_S:-480}
start=$SECONDS
steps=("$@")
[[ ${#steps[@]} -eq 0 ]] && steps=(adapter tests gemm tune step paper lm)

if ! command -v deno >/dev/null && [[ -f .gpu-runtime/setup.sh ]]; then
  # shellcheck disable=SC1091
  source .gpu-runtime/setup.sh
fi
export NO_COLOR=1 XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} SAE_CACHE_DIR=${SAE_CACHE_DIR:-$logs/cache}

summary=$out/summary.txt
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }

# run NAME CAP CMD...: CMD under a timeout of CAP seconds or what is left of the budget (less 10 s
# to pack the logs), skipped when under 15 s are left; its output in $logs/NAME.log, its last
# $TAIL (12) lines in the summary.
run() {
  local name=$1 cap=$2
  shift 2
  local left=$((budget - (SECONDS - start) - 10))
  local t=$((cap < left ? cap : left))
  if ((t < 15)); then
    note "== $name: skipped ($left s of the budget left)"
    return
  fi
  local t0=$SECONDS
  timeout -k 5 "$t" "$@" >"$logs/$name.log" 2>&1
  local rc=$?
  local how="exit $rc"
  [[ $rc == 124 || $rc == 137 ]] && how="TIMED OUT at $t s"
  local cmd="$*"
  cmd=$(tr -s " \n" " " <<<"$cmd")
  note "== $name: $how after $((SECONDS - t0)) s: ${cmd:0:160}"
  tail -n "${TAIL:-12}" "$logs/$name.log" | sed 's/^/   /' | tee -a "$summary"
}

torch=no
for s in "${steps[@]}"; do
  case $s in
  adapter)
    TAIL=0 run adapter 30 deno eval 'const a = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
      const i = a.info;
      const limits = {};
      for (const k in a.limits) limits[k] = a.limits[k];
      console.log(JSON.stringify({ info: { vendor: i.vendor, architecture: i.architecture,
        device: i.device, description: i.description, subgroupMinSize: i.subgroupMinSize,
        subgroupMaxSize: i.subgroupMaxSize }, features: [...a.features], limits }, null, 1))'
    # The adapter's identity and features (its limits are in the log).
    sed -n '/"info"/,/"limits"/p' "$logs/adapter.log" | tr -s ' \n' ' ' | sed 's/^/   /' |
      tee -a "$summary"
    echo | tee -a "$summary"
    run nvidia 15 bash -c 'nvidia-smi; cat /proc/driver/nvidia/version'
    run torch 30 python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
    grep -q "cuda True" "$logs/torch.log" 2>/dev/null && torch=yes
    note "PyTorch with CUDA: $torch"
    ;;
  tests)
    run tests 120 deno test -A --no-check tests/kernels/gemm_tiled_test.ts tests/kernels/gemm_test.ts \
      tests/kernels/gemm_cache_test.ts tests/gpu/adapter_test.ts tests/kernels/common_test.ts \
      tests/kernels/collectives_test.ts tests/kernels/topk_test.ts tests/kernels/jumprelu_test.ts \
      tests/kernels/loss_test.ts tests/kernels/norm_test.ts tests/sae/step_test.ts
    ;;
  gemm) run gemm 90 deno run -A --no-check bench/gemm_bench.ts ;;
  tune)
    run tune-paper 60 deno run -A --no-check src/cli/main.ts tune --config configs/paper.yaml
    run tune-16k 40 deno run -A --no-check src/cli/main.ts tune --config configs/paper.yaml \
      --set variant=baseline --set d_sae=16384
    ;;
  step)
    run step-paper 40 deno run -A --no-check tasks/scale.ts --d-in 2304 --d-sae 2304 --batch 2048 \
      --variant paper --steps 20 --warmup 3
    run step-16k 40 deno run -A --no-check tasks/scale.ts --d-in 2304 --d-sae 16384 --batch 2048 \
      --steps 10 --warmup 2
    if [[ $torch == yes ]]; then
      run peer-paper 45 deno run -A --no-check bench/peer.ts --device cuda --batch 2048 \
        --d-in 2304 --d-sae 2304 --rounds 5 --steps 10 --warmup 5
      run peer-16k 45 deno run -A --no-check bench/peer.ts --device cuda --batch 2048 \
        --d-in 2304 --d-sae 16384 --rounds 5 --steps 4 --warmup 3
    else
      note "== peer: skipped (no PyTorch with CUDA here)"
    fi
    ;;
  paper)
    run paper 170 bash -c "time deno run -A --no-check src/cli/main.ts train \
      --config configs/paper.yaml --no-progress --out '$logs/paper-run' --overwrite --profile 20"
    cp "$logs/paper-run/metrics.json" "$logs/paper-metrics.json" 2>/dev/null
    ;;
  lm)
    if [[ -f bench/lm_bench.ts ]]; then
      run lm 60 deno run -A --no-check bench/lm_bench.ts
    else
      note "== lm: skipped (no bench/lm_bench.ts)"
    fi
    ;;
  *) echo "unknown step '$s' (adapter tests gemm tune step paper lm)" && exit 2 ;;
  esac
done

cp "$SAE_CACHE_DIR/gemm-tiles.json" "$logs/" 2>/dev/null
rm -rf "$logs/paper-run/checkpoints"
tar -czf "$out/logs.tar.gz" -C "$logs" . 2>/dev/null
note "== done in $((SECONDS - start)) s of $budget; logs in $out/logs.tar.gz"
