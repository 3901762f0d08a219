#!/bin/sh
# Turns a file into a C source that defines its bytes and length, so the daemon serves it
# without reading anything from disk (the OpenAPI document, the API docs page).
#   scripts/embed-file.sh OUT.c SYMBOL INPUT
# defines `const unsigned char SYMBOL[]` (the bytes plus a terminating NUL, so it can be used as
# a C string) and `const size_t SYMBOL_len` (the length without that NUL).
# POSIX sh, od and awk only.
set -eu
if [ $# -ne 3 ]; then
	echo "usage: $0 OUT.c SYMBOL INPUT" >&2
	exit 2
fi
out=$1
sym=$2
in=$3
case $sym in
*[!A-Za-z0-9_]* | [0-9]*)
	echo "$0: bad symbol name '$sym'" >&2
	exit 2
	;;
esac
[ -r "$in" ] || {
	echo "$0: cannot read $in" >&2
	exit 1
}
tmp=$out.tmp.$$
trap 'rm -f "$tmp"' EXIT
len=$(wc -c <"$in" | tr -d ' ')
{
	printf '/* Generated from %s by scripts/embed-file.sh; do not edit. */\n' "$in"
	printf '#include <stddef.h>\n\n'
	printf 'extern const unsigned char %s[];\n' "$sym"
	printf 'extern const size_t %s_len;\n\n' "$sym"
	printf 'const unsigned char %s[] = {\n' "$sym"
	od -An -v -tx1 "$in" | awk '
		{
			for (i = 1; i <= NF; i++) {
				line = line (line == "" ? "" : " ") "0x" $i ","
				if (++n % 12 == 0) {
					print "\t" line
					line = ""
				}
			}
		}
		END { print "\t" line (line == "" ? "" : " ") "0x00" }'
	printf '};\n'
	printf 'const size_t %s_len = %s;\n' "$sym" "$len"
} >"$tmp"
mv "$tmp" "$out"
trap - EXIT
