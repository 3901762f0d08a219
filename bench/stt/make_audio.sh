#!/usr/bin/env bash
# Speak every line of a test set with several synthetic voices and send it through a telephone
# round trip (8 kHz G.711 mu-law and back to 16-bit), the way a caller's answer reaches the
# speech pipeline. The reader upsamples to 16 kHz with speexdsp, as the media path does.
#   bench/stt/make_audio.sh UTTERANCES.tsv OUTDIR [VOICES]
# VOICES defaults to "espeak slt rms kal". Writes OUTDIR/NNN_VOICE.wav and OUTDIR/index.tsv
# (file, voice, state, kind, text). Files that already exist are kept, so reruns are cheap.
set -euo pipefail
list=$1
out=$2
voices=${3:-espeak slt rms kal}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$out/index.tsv.new"
i=0
while IFS=$'\t' read -r state kind text; do
	case $state in '' | '#'*) continue ;; esac
	i=$((i + 1))
	for v in $voices; do
		f=$(printf '%03d_%s.wav' "$i" "$v")
		if [ ! -s "$out/$f" ]; then
			case $v in
			espeak) espeak-ng -v en-us -w "$tmp/raw.wav" "$text" ;;
			*) flite -voice "$v" -t "$text" -o "$tmp/raw.wav" ;;
			esac
			sox "$tmp/raw.wav" -r 8000 -c 1 -e mu-law "$tmp/ulaw.wav"
			sox "$tmp/ulaw.wav" -e signed-integer -b 16 "$out/$f"
		fi
		printf '%s\t%s\t%s\t%s\t%s\n' "$f" "$v" "$state" "$kind" "$text" >>"$out/index.tsv.new"
	done
done <"$list"
mv "$out/index.tsv.new" "$out/index.tsv"
