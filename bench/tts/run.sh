#!/usr/bin/env bash
# TTS benchmark: time to first audio (streaming), time to the whole utterance and real-time
# factor per embedded engine and voice for a 12-word sentence, median of 5 runs
# (bench/tts/tts_bench.c), plus the prompt cache's memory and disk hit times. ElevenLabs is
# measured only when ELEVENLABS_API_KEY is set (real service). Raw output: bench/out/tts.txt.
# Writes the "TTS" section of docs/BENCHMARKS.md.
#   bench/tts/run.sh [BUILD]        env: BENCH_DOC (default docs/BENCHMARKS.md), TTS_RUNS (5)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
doc=${BENCH_DOC:-$root/docs/BENCHMARKS.md}
out=$root/bench/out
mkdir -p "$out" "$build/bench"
[ -f "$build/librv.a" ] || { echo "tts bench: no $build/librv.a (run make first)" >&2; exit 1; }

pkgs="jansson libmicrohttpd libjwt libsodium sqlite3 libpq yaml-0.1 libre speexdsp sndfile spandsp
	libcurl pocketsphinx espeak-ng"
bin=$build/bench/tts_bench
# shellcheck disable=SC2046,SC2086
cc -std=c17 -O2 -g -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -DHAVE_INTTYPES_H \
	-DHAVE_STDBOOL_H -I"$root/src" $(pkg-config --cflags $pkgs) -o "$bin" \
	"$root/bench/tts/tts_bench.c" "$build/librv.a" $(pkg-config --libs $pkgs) \
	-lflite_cmu_us_rms -lflite_cmu_us_slt -lflite_cmu_us_kal -lflite_cmulex -lflite_usenglish \
	-lflite -lcsv -lphonenumber -lstdc++ -lpthread -lm

load=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date -u '+%Y-%m-%d %H:%M UTC')
"$bin" "${TTS_RUNS:-5}" >"$out/tts.txt"

python3 - "$doc" "$out/tts.txt" "$start" "$load" "$(nproc)" \
	"$(cat "$root/VERSION" 2>/dev/null || echo 0)" \
	"$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY'
import os, re, sys
doc, raw, start, load, ncpu, version, commit = sys.argv[1:8]
rows, cache = [], {}
for line in open(raw):
    kv = dict(p.split("=", 1) for p in line.split())
    if "engine" in kv:
        rows.append(kv)
    elif "cache" in kv:
        cache[kv["cache"]] = kv["ms"]
names = {("flite", "rms"): "flite rms (default, English)", ("flite", "slt"): "flite slt",
         ("flite", "kal"): "flite kal (8 kHz diphone, resampled)",
         ("espeak", "en-us"): "espeak-ng en-us", ("espeak", "hi"): "espeak-ng hi (Hindi)"}
lines = ["## TTS", "",
 "`make bench` (bench/run.sh → bench/tts/run.sh → bench/tts/tts_bench). Design: "
 "docs/adr/0009-tts.md.", "",
 f"- Machine: {ncpu} CPUs; date: {start}; revovoice {version} ({commit}); load average before "
 f"the run: {load} (other work on the cores stretches wall times; the RTF is CPU time).",
 "- Sentence: 12 words (\"Hello, this is Revo Voice calling to confirm your appointment for "
 "tomorrow morning.\"; for Hindi a 12-word sentence of the same sense), through "
 "`rv_tts_synth` (streaming callback, output 16 kHz). Median of "
 f"{rows[0]['runs'] if rows else 5} runs after one warm-up run.",
 "- First audio: request to the first streamed chunk. Whole: request to the last chunk (what "
 "a non-streaming engine would make the caller wait). RTF: synthesis CPU seconds per second "
 "of audio.", "",
 "| engine / voice | audio s | first audio ms | whole ms | RTF |", "|---|---:|---:|---:|---:|"]
for r in rows:
    label = names.get((r["engine"], r["voice"]), "%s %s" % (r["engine"], r["voice"]))
    if r["engine"] == "elevenlabs":
        label += " (network; RTF is wall time)"
    lines.append(f"| {label} | {r['audio_s']} | {r['first_ms']} | {r['whole_ms']} | {r['rtf']} |")
if cache:
    lines += ["", f"Prompt cache (flite rms sentence, ~{rows[0]['audio_s'] if rows else '?'} s of "
              f"audio): a memory hit returns the audio in {cache.get('memory')} ms, a disk hit "
              f"(a fresh cache instance, as after a restart; the file in the OS page cache) in "
              f"{cache.get('disk')} ms: cached "
              "greetings and fixed prompts start with no synthesis delay."]
if not any(r["engine"] == "elevenlabs" for r in rows):
    lines += ["", "ElevenLabs was not measured (no ELEVENLABS_API_KEY); its client is tested "
              "against a local fake only."]
lines.append("")
section = "\n".join(lines)
text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n"
m = re.search(r"^## TTS\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
text = text[:m.start()] + section + "\n" + text[m.end():] if m else text.rstrip("\n") + "\n\n" + section
open(doc, "w").write(text)
PY
echo "tts bench: wrote the TTS section of $doc"
