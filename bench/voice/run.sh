#!/usr/bin/env bash
# Voice benchmarks (issue 4): voice-to-voice latency measured from a baresip peer
# (bench/voice/latency.py) and concurrent agent calls per core (bench/voice/load.py, daemon
# pinned to CPU 0, peers on CPU 1, speech.workers 1 then 2). Raw outputs go to bench/out/voice/;
# writes the "Voice-to-voice latency" and "AI calls per core" sections of docs/BENCHMARKS.md.
#   bench/voice/run.sh [BUILD]     env: BENCH_DOC (default docs/BENCHMARKS.md)
# Needs baresip (Debian baresip-core), flite, sox and 2 CPUs. Takes about 20 minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
doc=${BENCH_DOC:-$root/docs/BENCHMARKS.md}
out=$root/bench/out/voice
bin=$build/revovoice
[ -x "$bin" ] || { echo "voice bench: no $bin (run make first)" >&2; exit 1; }
command -v baresip >/dev/null || { echo "voice bench: baresip is not installed" >&2; exit 1; }
mkdir -p "$out"
cd "$root/bench/voice"
python3 latency.py --bin "$bin" --out "$out" --turns 36
python3 load.py --bin "$bin" --out "$out" --workers 1 --calls 1,4,8,12,16
python3 load.py --bin "$bin" --out "$out" --workers 1 --calls 1,4,8,12 --no-warmup --tag -cold
python3 load.py --bin "$bin" --out "$out" --workers 2 --calls 1,8,16
ver=$("$bin" version 2>/dev/null | awk 'NR == 1 {print $2}' || true)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$root" status --porcelain -- src 2>/dev/null | head -1)
python3 report.py "$out" "$doc" "${ver:-?} ($commit${dirty:+ + uncommitted changes in src/})"
