#!/usr/bin/env bash
# Runs every test suite against the binaries in BUILD (default build/) and prints one closing
# line "N passed, N failed". Each suite prints "ok NAME" or "FAIL NAME" per test.
#   scripts/run-tests.sh [BUILD] [SUITE...]   suites: unit integration web
set -u
build=${1:-build}
shift || true
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(unit integration web)
root=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp -d /tmp/rv-tests.XXXXXX)
status=0

run_suite() {
	local name=$1
	shift
	echo "== $name"
	"$@" 2>&1 | tee "$log/$name.out" | grep -v -E '^[0-9]+ passed, [0-9]+ failed$'
	local rc=${PIPESTATUS[0]}
	# A suite that dies without reporting its tests counts as one failure.
	if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$log/$name.out"; then
		echo "FAIL $name (suite exited $rc without a test failure)" | tee -a "$log/$name.out"
	fi
}

for s in "${suites[@]}"; do
	case $s in
	unit) run_suite unit "$root/$build/rv-unit-tests" ;;
	integration) run_suite integration python3 "$root/tests/integration/run.py" --bin "$root/$build/revovoice" ;;
	web) [ -x "$root/tests/web/run.sh" ] && run_suite web "$root/tests/web/run.sh" "$root/$build/revovoice" ;;
	*) echo "unknown suite $s" >&2; exit 2 ;;
	esac
done

passed=$(cat "$log"/*.out 2>/dev/null | grep -c '^ok ')
failed=$(cat "$log"/*.out 2>/dev/null | grep -c '^FAIL ')
if [ "$failed" -gt 0 ]; then
	echo "failures:"
	grep -h '^FAIL ' "$log"/*.out
	status=1
fi
rm -rf "$log"
echo "$passed passed, $failed failed"
exit $status
