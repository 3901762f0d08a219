#!/usr/bin/env bash
# VAD bench: builds bench/vad/vad_eval against BUILD's library (with the WebRTC VAD when
# libwebrtc-audio-processing-dev is installed: scripts/install-deps.sh --bench), runs it, keeps
# the output in bench/out/vad.md and writes the "VAD" section of docs/BENCHMARKS.md.
#   bench/vad/run.sh [BUILD] [-q]        env: BENCH_DOC (default docs/BENCHMARKS.md)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
quick=${2:-}
doc=${BENCH_DOC:-$root/docs/BENCHMARKS.md}
out=$root/bench/out
mkdir -p "$out" "$build/bench/vad"
[ -f "$build/librv.a" ] || { echo "vad bench: no $build/librv.a (run make first)" >&2; exit 1; }

pkgs="libre speexdsp espeak-ng"
cflags="-std=c17 -O2 -g -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -DHAVE_INTTYPES_H
	-DHAVE_STDBOOL_H -I$root/src -I/usr/include/flite $(pkg-config --cflags $pkgs)"
objs=()
# The libraries the Makefile links into every binary (its PKGS, FLITE_LIBS and the rest).
libs="$(pkg-config --libs jansson libmicrohttpd libjwt libsodium sqlite3 libpq yaml-0.1 libre \
	speexdsp sndfile spandsp libcurl pocketsphinx espeak-ng) -lflite_cmu_us_rms -lflite_cmu_us_slt \
	-lflite_cmu_us_kal -lflite_cmulex -lflite_usenglish -lflite -lcsv -lphonenumber -lstdc++ \
	-lpthread -lm"
if pkg-config --exists webrtc-audio-processing; then
	# shellcheck disable=SC2046
	c++ -std=c++17 -O2 -c "$root/bench/vad/vad_webrtc.cc" -o "$build/bench/vad/vad_webrtc.o" \
		$(pkg-config --cflags webrtc-audio-processing)
	objs+=("$build/bench/vad/vad_webrtc.o")
	cflags="$cflags -DHAVE_WEBRTC"
	libs="$libs $(pkg-config --libs webrtc-audio-processing)"
else
	echo "vad bench: libwebrtc-audio-processing-dev missing; WebRTC VAD row skipped" >&2
fi
# shellcheck disable=SC2086
cc $cflags -o "$build/bench/vad/vad_eval" "$root/bench/vad/vad_eval.c" "${objs[@]}" \
	"$build/librv.a" $libs

load=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date -u '+%Y-%m-%d %H:%M UTC')
# speexdsp warns on every VAD it creates; that line is known (SPEECH.md) and only noise here.
"$build/bench/vad/vad_eval" $quick >"$out/vad.txt" 2> >(grep -v "replaced by a hack" >&2)
cat "$out/vad.txt"

python3 - "$doc" "$out/vad.txt" "$start" "$load" "$(nproc)" \
	"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" \
	"$(cat "$root/VERSION" 2>/dev/null || echo 0.0.0)" \
	"$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY'
import re, sys
doc, res, start, load, ncpu, cpu, ver, commit = sys.argv[1:9]
body = open(res).read().strip()
sec = f"""## VAD

`make bench` (bench/run.sh → bench/vad/run.sh → bench/vad/vad_eval). Decision and method: docs/adr/0008-vad.md.

- Machine: {ncpu} CPUs (`nproc`), {cpu}; date: {start}; revovoice {ver} ({commit}); load average before the run: {load} (CPU figures are the detector thread's own CPU time, so other load on the machine hardly changes them).
- Streams are synthetic (espeak-ng and flite voices through a G.711 μ-law round trip, resampled to 16 kHz with the project's resampler): treat recall as an upper bound for real callers.

{body}
"""
text = open(doc).read() if True else ""
m = re.search(r"^## VAD\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
if m:
    text = text[:m.start()] + sec + ("\n" if text[m.end():] else "") + text[m.end():]
else:
    text = text.rstrip("\n") + "\n\n" + sec
open(doc, "w").write(text)
PY
echo "vad bench: wrote the VAD section of $doc"
