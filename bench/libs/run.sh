#!/bin/sh
# Builds the library benchmarks and runs them; prints a Markdown table.
#
#   bench/libs/run.sh            all (HTTP then JSON)
#   bench/libs/run.sh http|json  one half
#
# Environment: DURATION (wrk -d, default 10s), REPEAT (runs per HTTP case,
# default 1; also the number of JSON runs), JSON_N (leads-page iterations, default 500; the campaign body
# runs 20x as many), OUT (build and log directory, default bench/out/libs,
# which git ignores).
# HTTP servers listen on 127.0.0.1 on an ephemeral port chosen by the kernel
# and print it; wrk runs on the same machine, so client and server share the
# CPUs and figures compare the libraries, not absolute capacity.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
what=${1:-all}
DURATION=${DURATION:-10s}
REPEAT=${REPEAT:-1}
JSON_N=${JSON_N:-500}
OUT=${OUT:-$here/../out/libs}
mkdir -p "$OUT"

CC=${CC:-cc}
CFLAGS="-O2 -g -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -DHAVE_INTTYPES_H -DHAVE_STDBOOL_H"

build() {
	# shellcheck disable=SC2086
	$CC $CFLAGS -o "$OUT/http_mhd" "$here/http_mhd.c" \
		$(pkg-config --cflags --libs libmicrohttpd libre)
	# shellcheck disable=SC2086
	$CC $CFLAGS -o "$OUT/http_re" "$here/http_re.c" \
		$(pkg-config --cflags --libs libre)
	# shellcheck disable=SC2086
	$CC $CFLAGS -o "$OUT/json_bench" "$here/json_bench.c" \
		"$here/json_bench_re.c" $(pkg-config --cflags --libs jansson libre)
}

machine() {
	echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "machine: nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(uname -sr)"
	echo "libraries: libmicrohttpd $(pkg-config --modversion libmicrohttpd)," \
		"libre $(pkg-config --modversion libre), jansson $(pkg-config --modversion jansson)"
	echo "wrk: $(wrk -v 2>&1 | head -1)"
	# Other work on the machine moves every figure; record how busy it was.
	echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "out: $OUT"
}

# run_http SERVER SPIN_USEC SLEEP_USEC THREADS CONNS RUN
run_http() {
	srv=$1 spin=$2 nap=$3 t=$4 c=$5 run=$6
	tag="$srv-w$spin-s$nap-t$t-c$c-$run"
	"$OUT/http_$srv" -w "$spin" -s "$nap" >"$OUT/$tag.server" 2>&1 &
	pid=$!
	port=
	i=0
	while [ -z "$port" ] && [ $i -lt 50 ]; do
		sleep 0.1
		port=$(awk '/^port /{print $2}' "$OUT/$tag.server")
		i=$((i + 1))
	done
	if [ -z "$port" ]; then
		echo "run.sh: $srv did not start" >&2
		kill "$pid" 2>/dev/null || true
		exit 1
	fi
	wrk -t"$t" -c"$c" -d"$DURATION" --latency "http://127.0.0.1:$port/x" \
		>"$OUT/$tag.wrk"
	kill "$pid"
	wait "$pid" || true
	rps=$(awk '/^Requests\/sec:/{printf "%.0f", $2}' "$OUT/$tag.wrk")
	p50=$(awk '$1=="50%"{print $2}' "$OUT/$tag.wrk")
	p99=$(awk '$1=="99%"{print $2}' "$OUT/$tag.wrk")
	errs=$(awk '/Socket errors|Non-2xx/{printf "%s ", $0}' "$OUT/$tag.wrk")
	lp99=$(sed -n 's/.*late_p99_us=\([0-9]*\).*/\1/p' "$OUT/$tag.server")
	lmax=$(sed -n 's/.*late_max_us=\([0-9]*\).*/\1/p' "$OUT/$tag.server")
	work=none
	[ "$spin" -gt 0 ] && work="CPU ${spin} µs"
	[ "$nap" -gt 0 ] && work="sleep ${nap} µs"
	echo "| $srv | -t$t -c$c | $work | $rps | $p50 | $p99 | ${lp99:-?} | ${lmax:-?} | ${errs:-none} |"
}

http() {
	echo
	echo "| server | wrk load | handler work | req/s | p50 | p99 | 20 ms timer late p99 (µs) | late max (µs) | errors |"
	echo "|---|---|---|---|---|---|---|---|---|"
	r=1
	while [ $r -le "$REPEAT" ]; do
		for srv in mhd re; do
			run_http "$srv" 0 0 2 32 "$r"
			run_http "$srv" 0 0 1 4 "$r"
			run_http "$srv" 0 1000 1 4 "$r"
			run_http "$srv" 1000 0 1 4 "$r"
		done
		r=$((r + 1))
	done
}

json() {
	echo
	"$OUT/json_bench" checks
	echo
	r=1
	while [ $r -le "$REPEAT" ]; do
		for lib in jansson re; do
			"$OUT/json_bench" run "$lib" "$JSON_N"
		done
		r=$((r + 1))
	done
}

build
machine
case $what in
all) http; json ;;
http) http ;;
json) json ;;
*) echo "usage: $0 [all|http|json]" >&2; exit 2 ;;
esac
