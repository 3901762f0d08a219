#!/usr/bin/env bash
# `make bench`: runs the benchmarks against the binaries in BUILD (default build/) and updates
# docs/BENCHMARKS.md. Raw outputs are kept in bench/out/.
#   bench/run.sh [BUILD]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}

"$root/bench/api_bench.sh" "$build"
"$root/bench/media_bench.sh" "$build"
"$root/bench/vad/run.sh" "$build"
"$root/bench/stt/run.sh" "$build"
"$root/bench/tts/run.sh" "$build"
"$root/bench/voice/run.sh" "$build"
"$root/bench/nlu/run.sh" "$build"
