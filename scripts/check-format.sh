#!/bin/sh
# Fails when a C source or header differs from what .clang-format makes of it.
set -eu
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find mod_impolicy tests -name '*.[ch]')
[ -n "$files" ] || { echo "check-format: no files"; exit 1; }
# shellcheck disable=SC2086
if clang-format --dry-run -Werror $files; then
	echo "check-format: $(echo "$files" | wc -l) files formatted"
else
	echo "check-format: run clang-format -i on the files above" >&2
	exit 1
fi
