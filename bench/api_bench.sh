#!/usr/bin/env bash
# API load benchmark: starts the daemon from BUILD on a free loopback port with a temporary data
# directory, seeds it (an admin, an API key, a campaign with 1,000 leads), then measures
#   1. GET /api/campaigns/{id}: maximum throughput (wrk, closed loop) and latency at a fixed
#      1,000 requests/s (bench/api_paced.c, open loop, latency counted from the due time);
#   2. POST /api/leads with unique phones: maximum throughput (wrk) and a fixed 250 requests/s.
# and writes the "API" section of docs/BENCHMARKS.md. Raw outputs go to bench/out/.
#   bench/api_bench.sh [BUILD]        env: BENCH_SECONDS (default 20), READ_RATE (1000),
#                                          WRITE_RATE (250), BENCH_DOC (docs/BENCHMARKS.md)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
bin=$build/revovoice
secs=${BENCH_SECONDS:-20}
read_rate=${READ_RATE:-1000}
write_rate=${WRITE_RATE:-250}
doc=${BENCH_DOC:-$root/docs/BENCHMARKS.md}
out=$root/bench/out
mkdir -p "$out"

die() {
	echo "api_bench: $*" >&2
	exit 1
}
[ -x "$bin" ] || die "no daemon at $bin (run make first)"
command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk; make deps installs it)"
command -v curl >/dev/null || die "curl is not installed"
pkg-config --exists libcurl || die "libcurl development files missing (libcurl4-openssl-dev)"

# The fixed-rate client, built here because only the benchmark needs it.
paced=$build/bench/api_paced
mkdir -p "$build/bench"
if [ ! -x "$paced" ] || [ "$root/bench/api_paced.c" -nt "$paced" ]; then
	# shellcheck disable=SC2046
	cc -std=c17 -O2 -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -o "$paced" \
		"$root/bench/api_paced.c" $(pkg-config --cflags --libs libcurl)
fi

loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
data=$(mktemp -d /tmp/rv-bench.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid"
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$data"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
base=http://127.0.0.1:$port
REVOVOICE_RATE_LIMIT_RPS=0 REVOVOICE_LOG_LEVEL=warn \
	"$bin" serve --data-dir "$data" --http "127.0.0.1:$port" >"$out/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
	curl -fs "$base/healthz" >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || die "daemon exited: $(tail -5 "$out/daemon.log")"
	sleep 0.05
done
curl -fs "$base/healthz" >/dev/null || die "daemon did not come up"

json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
api() { # METHOD PATH [BODY]: JSON request with the admin token; fails on a non-2xx answer
	curl -fsS -X "$1" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
		${3:+--data-binary "$3"} "$base$2"
}

"$bin" user add --data-dir "$data" --email bench@example.com --password bench-pass-123 \
	--role admin >/dev/null
token=$(curl -fsS "$base/api/auth/login" -H 'Content-Type: application/json' \
	-d '{"email":"bench@example.com","password":"bench-pass-123"}' | json_field token)
key=$(api POST /api/keys '{"name":"bench","role":"admin"}' | json_field key)
campaign=$(api POST /api/campaigns '{"name":"Bench campaign","default_country":"US"}' |
	json_field id)

# 1,000 leads through the CSV import (one request, one transaction).
python3 - "$data/leads.csv" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    f.write("phone,first_name,last_name,email\n")
    for i in range(1000):
        f.write("+1415%07d,Lead%d,Seed,lead%d@example.com\n" % (2000000 + i, i, i))
EOF
imported=$(curl -fsS -X POST -H "X-API-Key: $key" -H 'Content-Type: text/csv' \
	--data-binary "@$data/leads.csv" "$base/api/campaigns/$campaign/leads/import" |
	json_field imported)
[ "$imported" = 1000 ] || die "seeding imported $imported leads, not 1000"
curl -fsS -o /dev/null -H "X-API-Key: $key" "$base/api/campaigns/$campaign" ||
	die "GET /api/campaigns/$campaign failed"

metrics() { curl -fsS "$base/metrics" >"$1"; }
export RV_API_KEY=$key RV_CAMPAIGN_ID=$campaign

echo "api_bench: read, max throughput (wrk -t2 -c16 -d${secs}s)"
metrics "$out/m0.txt"
RV_BENCH_MODE="read" wrk -t2 -c16 -d"${secs}s" --latency -s "$root/bench/wrk_api.lua" \
	"$base/api/campaigns/$campaign" | tee "$out/read_max.txt"
metrics "$out/m1.txt"

echo "api_bench: read, fixed ${read_rate} requests/s for ${secs}s"
"$paced" --url "$base/api/campaigns/$campaign" --rate "$read_rate" --duration "$secs" \
	--connections 16 --header "X-API-Key: $key" | tee "$out/read_paced.txt"
metrics "$out/m2.txt"

echo "api_bench: write, max throughput (wrk -t2 -c16 -d${secs}s)"
RV_BENCH_MODE="write" wrk -t2 -c16 -d"${secs}s" --latency -s "$root/bench/wrk_api.lua" \
	"$base/api/leads" | tee "$out/write_max.txt"
metrics "$out/m3.txt"

echo "api_bench: write, fixed ${write_rate} requests/s for ${secs}s"
"$paced" --url "$base/api/leads" --rate "$write_rate" --duration "$secs" --connections 16 \
	--header "X-API-Key: $key" --method POST --start 2000000 \
	--body "{\"campaign_id\":$campaign,\"phone\":\"+1617{n}\",\"first_name\":\"Paced\"}" |
	tee "$out/write_paced.txt"
metrics "$out/m4.txt"

kill "$pid"
wait "$pid" 2>/dev/null || true
pid=

cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
python3 "$root/bench/api_report.py" --out "$out" --doc "$doc" --seconds "$secs" \
	--read-rate "$read_rate" --write-rate "$write_rate" --nproc "$(nproc)" --cpu "$cpu" \
	--version "$("$bin" version 2>/dev/null | head -1 || echo unknown)" --loadavg "$loadavg"
echo "api_bench: wrote the API section of $doc"
