#!/usr/bin/env bash
# Installs what RevoVoice needs to build, run and test, when it is missing: Debian packages
# (apt-get, as root or through sudo) and the npm packages of the Node-based tests. Safe to run
# again: it only installs what is absent. Used by `make run`, `make test` and .ci/run.
#   scripts/install-deps.sh [--bench] [--fuzz]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

build_pkgs=(build-essential pkg-config libjansson-dev libmicrohttpd-dev libjwt-dev libsodium-dev
	libsqlite3-dev libyaml-dev libcsv-dev libphonenumber-dev libpq-dev
	libre-dev libspeexdsp-dev libsndfile1-dev libspandsp-dev libcurl4-openssl-dev
	libpocketsphinx-dev pocketsphinx-en-us flite1-dev libespeak-ng-dev libicu-dev
	libssl-dev libwslay-dev)
test_pkgs=(python3 sqlite3 ca-certificates postgresql util-linux sip-tester sox clang-format
	baresip baresip-core linphone-cli espeak-ng flite)
extra_pkgs=()
for a in "$@"; do
	case $a in
	--bench) extra_pkgs+=(wrk libwebrtc-audio-processing-dev) ;;
	--fuzz) extra_pkgs+=(clang libclang-rt-14-dev) ;;
	*) echo "install-deps: unknown option $a" >&2; exit 2 ;;
	esac
done

missing=()
for p in "${build_pkgs[@]}" "${test_pkgs[@]}" "${extra_pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
# Node.js and npm run the OpenAPI validator and the dashboard build; any install will do.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || {
			echo "install-deps: missing packages (${missing[*]}) and not root; install them or run as root" >&2
			exit 1
		}
		sudo="sudo"
	fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages of the tests, from their lock files, when not installed yet.
for dir in tests/openapi; do
	if [ -f "$root/$dir/package-lock.json" ] && [ ! -d "$root/$dir/node_modules" ]; then
		echo "install-deps: npm ci in $dir"
		(cd "$root/$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	fi
done
exit 0
