#!/usr/bin/env bash
# Media-plane benchmark (issue 3): sipp places N concurrent PCMA calls with RTP against
#   1. `revovoice answer` (play-and-record flow: plays a prompt as long as the call, records
#      both sides to a 16 kHz stereo WAV per call), then
#   2. `sipp -sn uas -rtp_echo` (the peer it is compared with), with the same caller,
# for each N, and measures CPU seconds per call-minute of the answering process over a
# steady-state window in which all N calls are up, packet loss and jitter
# (bench/media/run_load.py). Writes the "Media plane" section of docs/BENCHMARKS.md; raw
# outputs go to bench/out/media/.
#
#   bench/media_bench.sh [BUILD] [--calls "100 500 1000"] [--hold S] [--rate CPS] [--quick]
#                                [--no-doc]
#   --calls  list of concurrent-call counts (default 100 500 1000)
#   --hold   seconds each call lasts (default 60); the window is the hold less the ramp
#   --rate   new calls per second (default 50)
#   --quick  N=100, 20 s calls, and docs/BENCHMARKS.md is left alone (a smoke run)
#   --no-doc do not touch docs/BENCHMARKS.md
# Env: BENCH_DOC (default docs/BENCHMARKS.md), BENCH_REC_DIR (default: a directory in /dev/shm
# when it has room, else bench/out/media/rec).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
args="$*"
build=build
calls="100 500 1000"
hold=60
rate=50
doc_update=1
while [ $# -gt 0 ]; do
	case $1 in
	--calls) calls=${2//,/ }; shift 2 ;;
	--hold) hold=$2; shift 2 ;;
	--rate) rate=$2; shift 2 ;;
	--quick) calls=100; hold=20; doc_update=0; shift ;;
	--no-doc) doc_update=0; shift ;;
	-h | --help) sed -n '2,20p' "$0"; exit 0 ;;
	-*) echo "media_bench: unknown option $1" >&2; exit 2 ;;
	*) build=$1; shift ;;
	esac
done
case $build in /*) ;; *) build=$root/$build ;; esac
bin=$build/revovoice
doc=${BENCH_DOC:-$root/docs/BENCHMARKS.md}
out=$root/bench/out/media
pcap=/usr/share/sip-tester/g711a.pcap

die() {
	echo "media_bench: $*" >&2
	exit 1
}
[ -x "$bin" ] || die "no daemon at $bin (run make first)"
command -v sipp >/dev/null || die "sipp is not installed (apt-get install sip-tester)"
command -v sox >/dev/null || die "sox is not installed"
[ -r "$pcap" ] || die "$pcap missing (package sip-tester)"
for n in $calls; do
	case $n in '' | *[!0-9]*) die "--calls wants numbers, got '$n'" ;; esac
done
case $hold in '' | *[!0-9]*) die "--hold wants whole seconds" ;; esac

# Every call holds 3 descriptors in RevoVoice (RTP, RTCP, recording); sipp needs some per
# call too. run_load.py raises each child's soft limit to the hard one; check that is enough.
max_n=0
for n in $calls; do [ "$n" -gt "$max_n" ] && max_n=$n; done
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((4 * max_n + 256)) ]; then
	die "ulimit -Hn is $hard; $max_n calls need $((4 * max_n + 256)) descriptors"
fi
# RevoVoice takes 2 RTP ports per call from a block of 4 per call (run_load.py picks it).
[ $((4 * max_n)) -lt 40000 ] || die "$max_n calls need more RTP ports than 20000-60999 has"

mkdir -p "$out"
rm -f "$out"/revovoice-*.json "$out"/echo-*.json

# The caller's audio: g711a.pcap's PCMA payload as a raw A-law file that rtp_stream loops with
# continuous sequence numbers. RevoVoice's prompt: the same speech, decoded and looped to the
# length of the call, so it sends audio (not comfort silence) the whole time.
python3 "$root/bench/media/pcap_alaw.py" "$pcap" "$out/g711a.al"
sox -q -t al -r 8000 -c 1 "$out/g711a.al" "$out/speech7.wav"
loops=$((hold / 7 + 1))
sox -q "$out/speech7.wav" "$out/prompt.wav" repeat "$loops" trim 0 "$hold"

# Recordings: 64 kB/s per call; tmpfs keeps disk latency out of the figures.
need_kb=$((max_n * (hold + 10) * 64))
rec_dir=${BENCH_REC_DIR:-}
if [ -z "$rec_dir" ]; then
	shm_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
	if [ -n "$shm_kb" ] && [ "$shm_kb" -gt $((need_kb * 2)) ]; then
		rec_dir=/dev/shm/rv-media-bench.$$
	else
		rec_dir=$out/rec
	fi
fi
cleanup() { rm -rf "$rec_dir"; }
trap cleanup EXIT

{
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "nproc=$(nproc)"
	echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "mem_gb=$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)"
	echo "kernel=$(uname -r)"
	echo "version=$(cat "$root/VERSION" 2>/dev/null || echo ?)"
	echo "commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?)"
	echo "dirty=$(git -C "$root" status --porcelain -- src 2>/dev/null | wc -l)"
	echo "sipp=$(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)"
	echo "hold=$hold"
	echo "rate=$rate"
	echo "calls=$calls"
	echo "rec_dir=$rec_dir"
	echo "command=bench/media_bench.sh${args:+ $args}"
} >"$out/meta.txt"

failed=0
for n in $calls; do
	for target in revovoice echo; do
		echo "media_bench: $n calls of ${hold} s against $target (load average $(cut -d' ' -f1-3 /proc/loadavg))"
		echo "load_${target}_$n=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/meta.txt"
		if ! python3 "$root/bench/media/run_load.py" --target "$target" --bin "$bin" \
			--calls "$n" --hold "$hold" --rate "$rate" \
			--scenario "$root/bench/media/uac_stream.xml" --audio "$out/g711a.al" \
			--prompt "$out/prompt.wav" --rec-dir "$rec_dir" --out "$out" \
			>"$out/$target-$n.log" 2>&1; then
			echo "media_bench: the $target run with $n calls had problems (see $out/$target-$n.log)" >&2
			failed=1
		fi
		python3 "$root/bench/media/report.py" --summary "$out/$target-$n.json" || true
		sleep 3 # let the previous run's sockets and threads go before the next
	done
done

python3 "$root/bench/media/report.py" --out "$out" --print
if [ "$doc_update" = 1 ]; then
	python3 "$root/bench/media/report.py" --out "$out" --doc "$doc"
	echo "media_bench: wrote the Media plane section of $doc"
fi
exit $failed
