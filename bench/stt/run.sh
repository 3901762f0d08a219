#!/usr/bin/env bash
# STT benchmark: word error rate and real-time factor of the embedded engine on phone
# utterances (bench/stt/utterances.tsv, spoken by espeak-ng en-us and flite slt/rms/kal through a
# mu-law round trip), in-domain and off-script, for three set-ups:
#   general-full  pocketsphinx's general model with its whole vocabulary (Debian's default);
#   general       the general model on the engine's cut-down 5,000-word vocabulary, no bias;
#   biased        the engine's default: that model mixed with the state's phrase model.
# Raw outputs go to bench/out/stt-*.txt; writes the "STT" section of docs/BENCHMARKS.md.
#   bench/stt/run.sh [BUILD]           env: BENCH_DOC (default docs/BENCHMARKS.md)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
doc=${BENCH_DOC:-$root/docs/BENCHMARKS.md}
out=$root/bench/out
mkdir -p "$out"
[ -f "$build/librv.a" ] || { echo "stt bench: no $build/librv.a (run make first)" >&2; exit 1; }

pkgs="jansson libmicrohttpd libjwt libsodium sqlite3 libpq yaml-0.1 libre speexdsp sndfile spandsp
	libcurl pocketsphinx espeak-ng"
bin=$build/bench/stt_bench
mkdir -p "$build/bench"
# shellcheck disable=SC2046,SC2086
cc -std=c17 -O2 -g -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -DHAVE_INTTYPES_H \
	-DHAVE_STDBOOL_H -I"$root/src" $(pkg-config --cflags $pkgs) -o "$bin" \
	"$root/bench/stt/stt_bench.c" "$build/librv.a" $(pkg-config --libs $pkgs) \
	-lflite_cmu_us_rms -lflite_cmu_us_slt -lflite_cmu_us_kal -lflite_cmulex -lflite_usenglish \
	-lflite -lcsv -lphonenumber -lstdc++ -lpthread -lm

audio=$out/stt-audio
"$root/bench/stt/make_audio.sh" "$root/bench/stt/utterances.tsv" "$audio"
bias=$root/bench/stt/bias.txt
load=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date -u '+%Y-%m-%d %H:%M UTC')
fulldict=/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict
"$bin" "$audio" "$bias" --general --args "-dict $fulldict" --out "$out/stt-general-full.tsv" \
	>"$out/stt-general-full.txt" 2>/dev/null
"$bin" "$audio" "$bias" --general --out "$out/stt-general.tsv" >"$out/stt-general.txt" 2>/dev/null
"$bin" "$audio" "$bias" --out "$out/stt-biased.tsv" >"$out/stt-biased.txt" 2>/dev/null

python3 - "$doc" "$out" "$start" "$load" "$(nproc)" "$(cat "$root/VERSION" 2>/dev/null || echo 0)" \
	"$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY'
import re, sys
doc, out, start, load, ncpu, version, commit = sys.argv[1:8]
runs = [("general-full", "general model, full vocabulary (Debian default)"),
        ("general", "general model, 5,000-word vocabulary"),
        ("biased", "**state-biased** (default: 5,000 words + phrase model, weight 0.8)")]
res = {}
for name, _ in runs:
    for line in open(f"{out}/stt-{name}.txt"):
        kv = dict(p.split("=", 1) for p in line.split())
        if "voice" in kv:
            res[(name, kv["voice"], kv["kind"])] = kv
voices = ["espeak", "slt", "rms", "kal", "all"]
def cell(name, kind):
    return " / ".join(res[(name, v, kind)]["wer"] for v in voices)
n_in = res[("biased", "all", "in")]["n"]; n_off = res[("biased", "all", "off")]["n"]
lines = ["## STT", "",
 "`make bench` (bench/run.sh → bench/stt/run.sh → bench/stt/stt_bench). Decision and method: "
 "docs/adr/0010-stt.md.", "",
 f"- Machine: {ncpu} CPUs; date: {start}; revovoice {version} ({commit}); load average before "
 f"the run: {load}.",
 f"- Test set: bench/stt/utterances.tsv, {n_in} in-domain answers and {n_off} off-script "
 "sentences in total over 4 voices (espeak-ng en-us, flite slt, rms, kal), G.711 μ-law round "
 "trip, resampled to 16 kHz by the project's loader, fed in 20 ms frames (streaming). Bias "
 "lists: bench/stt/bias.txt, one per dialog state, written apart from the test sentences.",
 "- Synthetic voices are kinder than callers: treat the figures as upper bounds.", "",
 "WER % per voice (espeak / slt / rms / kal / all) and RTF (decoder CPU s per audio s):", "",
 "| set-up | in-domain WER | off-script WER | RTF in / off |", "|---|---|---|---|"]
for name, label in runs:
    lines.append(f"| {label} | {cell(name, 'in')} | {cell(name, 'off')} | "
                 f"{res[(name, 'all', 'in')]['rtf']} / {res[(name, 'all', 'off')]['rtf']} |")
lines += ["", "Targets: ≤ 10 % in-domain, ≤ 30 % off-script, RTF ≤ 0.15. Per-utterance "
          "hypotheses: bench/out/stt-*.tsv.", ""]
section = "\n".join(lines)
text = open(doc).read() if __import__("os").path.exists(doc) else "# Benchmarks\n"
m = re.search(r"^## STT\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
text = text[:m.start()] + section + "\n" + text[m.end():] if m else text.rstrip("\n") + "\n\n" + section
open(doc, "w").write(text)
PY
echo "stt bench: wrote the STT section of $doc"
