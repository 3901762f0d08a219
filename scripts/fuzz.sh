#!/usr/bin/env bash
# Builds the libFuzzer targets tests/fuzz/fuzz_*.c with clang (ASan + UBSan) against the
# project's library compiled the same way in build-fuzz/, and runs each for SECONDS.
#   scripts/fuzz.sh [SECONDS] [TARGET...]        (make fuzz FUZZ_SECONDS=N)
# Seeds come from tests/fuzz/corpus/<target>/ (kept in git, never written to). New inputs go to
# a temporary directory that is printed at the end; crash inputs are copied to
# build-fuzz/crashes/. Targets run side by side, so the whole run takes about SECONDS.
# Exit status: 0 when no target found anything, 1 otherwise (or when the build fails).
set -euo pipefail
secs=${1:-120}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

case $secs in
'' | *[!0-9]*) echo "fuzz: SECONDS must be a whole number, not \"$secs\"" >&2; exit 2 ;;
esac
for tool in clang clang++; do
	command -v $tool >/dev/null 2>&1 || {
		echo "fuzz: $tool is not installed (scripts/install-deps.sh --fuzz)" >&2
		exit 1
	}
done

build=build-fuzz
mk=(make --no-print-directory BUILD=$build CC=clang CXX=clang++ OPT="-O1 -g"
	SAN="-fsanitize=fuzzer-no-link,address,undefined")
"${mk[@]}" -j"$(nproc)" $build/librv.a

# The compile flags and libraries come from the Makefile itself, so they never drift.
eval "$("${mk[@]}" -s -f Makefile -f - rv-fuzz-vars <<'EOF'
rv-fuzz-vars:
	@echo 'cflags=($(filter-out -MMD -MP,$(CFLAGS)))'
	@echo 'ldlibs=($(LDLIBS))'
EOF
)"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for f in tests/fuzz/fuzz_*.c; do
		targets+=("$(basename "$f" .c)")
	done
fi

mkdir -p $build/fuzz $build/crashes
for t in "${targets[@]}"; do
	[ -f "tests/fuzz/$t.c" ] || { echo "fuzz: no such target tests/fuzz/$t.c" >&2; exit 2; }
	echo "fuzz: building $t"
	clang "${cflags[@]}" -fsanitize=fuzzer,address,undefined -c "tests/fuzz/$t.c" \
		-o "$build/fuzz/$t.o"
	clang++ -fsanitize=fuzzer,address,undefined "$build/fuzz/$t.o" $build/librv.a \
		"${ldlibs[@]}" -o "$build/fuzz/$t"
done

# Inputs larger than these teach nothing new and slow every run down.
max_len() {
	case $1 in
	fuzz_phone) echo 256 ;;
	fuzz_config) echo 4096 ;;
	fuzz_json_body) echo 8192 ;;
	*) echo 16384 ;;
	esac
}

work=$(mktemp -d /tmp/rv-fuzz.XXXXXX)
declare -A pids
for t in "${targets[@]}"; do
	mkdir -p "$work/$t/corpus" "tests/fuzz/corpus/$t"
	args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")"
		-print_final_stats=1 -artifact_prefix="$work/$t/")
	[ -f "tests/fuzz/$t.dict" ] && args+=(-dict="tests/fuzz/$t.dict")
	echo "fuzz: running $t for ${secs}s"
	ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$build/fuzz/$t" "${args[@]}" "$work/$t/corpus" "tests/fuzz/corpus/$t" \
		>"$work/$t.log" 2>&1 &
	pids[$t]=$!
done

failed=()
for t in "${targets[@]}"; do
	if wait "${pids[$t]}"; then
		runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$' || true)
		cov=$(grep -o 'cov: [0-9]*' "$work/$t.log" | tail -1 || true)
		echo "ok fuzz/$t (${runs:-?} runs, ${cov:-cov: ?}, $(find "$work/$t/corpus" -type f | wc -l) new inputs)"
	else
		failed+=("$t")
		echo "FAIL fuzz/$t"
		grep -E -A30 'check failed|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error' \
			"$work/$t.log" | head -60 || tail -40 "$work/$t.log"
		for a in "$work/$t"/crash-* "$work/$t"/leak-* "$work/$t"/timeout-* "$work/$t"/oom-*; do
			[ -f "$a" ] || continue
			cp "$a" "$build/crashes/$t-$(basename "$a")"
			echo "  input saved: $build/crashes/$t-$(basename "$a")"
		done
	fi
done
echo "fuzz: logs and new inputs in $work"
echo "$(( ${#targets[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
