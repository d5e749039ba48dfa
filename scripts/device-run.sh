#!/usr/bin/env bash
# The whole GPU-machine run, in stages that each fit one 10-minute device call:
#   bash scripts/device-run.sh fork ARCH    build the fork for ARCH, run test-backend-ops (MUL_MAT_ID_SKIP, MUL_MAT_ID) and memcheck
#   bash scripts/device-run.sh bench ARCH   build fork + upstream for ARCH, llama-bench them alternating
#                                           (env: LAYERS=24 model layers, ROUNDS=3 alternations, REPS=3 llama-bench -r)
#   bash scripts/device-run.sh build ARCH   only build the fork for ARCH (e.g. 75: proves it compiles)
# The machine has no network: carry .cache/downloads/ (the pinned source archive, from
# `python -m builder fetch --cache-dir .cache`) and .whl/ (gguf and platformdirs wheels).
# Results go to $OUT (or reports/device-out), to be committed under reports/.
set -euo pipefail
stage=${1:?stage: fork, bench or build}
arch=${2:?CUDA arch, e.g. 90}
out=${OUT:-$PWD/reports/device-out}
mkdir -p "$out"
export EXPERTS_FIRST_CACHE=$PWD/.cache PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
jobs=$(nproc)
builder() { python3 -m builder "$@"; }
log() { echo "== $(date -u +%H:%M:%S) $*"; }

{ nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv; nvcc --version | tail -1;
  lscpu | grep -E 'Model name|^CPU\(s\)'; } > "$out/machine.txt" 2>&1 || true

case "$stage" in
build)
    log "build cuda-sm$arch"
    start=$SECONDS
    builder build --cuda-arch "$arch" -j "$jobs" --dist dist
    echo "$((SECONDS - start)) s" > "$out/build-sm$arch.time"
    cp "dist/cuda-sm$arch/manifest.json" "$out/manifest-cuda-sm$arch.json"
    ;;
fork)
    log "build cuda-sm$arch"
    builder build --cuda-arch "$arch" -j "$jobs" --dist dist
    cp "dist/cuda-sm$arch/manifest.json" "$out/manifest-cuda-sm$arch.json"
    log "test-backend-ops: our skip cases on CUDA0"
    builder test-ops --variant "cuda-sm$arch" -b CUDA0 -o MUL_MAT_ID_SKIP --json -j "$jobs" \
        > "$out/test-ops-skip-cuda.json" || echo "test-ops exit $?"
    cp ".cache/build/cuda-sm$arch/test-ops.log" "$out/test-ops-skip-cuda.log"
    ops=".cache/build/cuda-sm$arch/build/bin/test-backend-ops"
    log "test-backend-ops: upstream's MUL_MAT_ID cases on CUDA0 (flag off)"
    timeout 180 "$ops" test -b CUDA0 -o MUL_MAT_ID > "$out/test-ops-mmid-cuda.log" 2>&1; echo "exit $?" >> "$out/test-ops-mmid-cuda.log"
    tail -3 "$out/test-ops-mmid-cuda.log"
    log "compute-sanitizer memcheck on a subset of the skip cases"
    params='type_a=(q4_0|f16),.*,n=(1|16|512),.*skip_pct=50'
    timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 "$ops" test -b CUDA0 -o MUL_MAT_ID_SKIP -p "$params" \
        > "$out/memcheck.log" 2>&1; echo "memcheck exit $? (params $params)" >> "$out/memcheck.log"
    tail -3 "$out/memcheck.log"
    ;;
bench)
    log "build upstream-cuda-sm$arch"
    builder build --cuda-arch "$arch" --upstream -j "$jobs" --dist dist
    cp "dist/upstream-cuda-sm$arch/manifest.json" "$out/manifest-upstream-cuda-sm$arch.json"
    model=/tmp/q30b-shape.gguf
    log "model: ${LAYERS:-24}-layer Qwen3-30B-A3B shape, Q4_K"
    builder make-model --arch qwen3moe --layers "${LAYERS:-24}" --embd 2048 --experts 128 --experts-used 8 --expert-ff 768 \
        --heads 32 --kv-heads 4 --head-dim 128 --type Q4_K --llama-tree .cache/src/llama.cpp-b11549 -o "$model" --json > "$out/bench-model.json"
    for round in $(seq "${ROUNDS:-3}"); do
        for v in "cuda-sm$arch" "upstream-cuda-sm$arch"; do
            log "round $round $v"
            "dist/$v/bin/llama-bench" -m "$model" -ngl 99 -p 512 -n 128 -r "${REPS:-3}" -t 8 -o jsonl >> "$out/bench.jsonl"
        done
    done
    ;;
*)
    echo "unknown stage $stage" >&2; exit 2 ;;
esac
log "done"
