#!/bin/sh
# tests/conferr/run.sh IMPOLICYCTL DIR
#
# Broken-policy golden tests: for every DIR/cases/NAME.yaml, runs
# `IMPOLICYCTL check cases/NAME.yaml` from DIR (so the paths in the errors
# are relative), expects exit status 2 and stderr exactly equal to
# cases/NAME.expected.  Files under cases/inc/ and cases/lists/ are
# helpers (included policies, list files), not cases.
# Prints "N passed, N failed"; exits non-zero on any failure.
set -u
if [ $# -ne 2 ]; then
	echo "usage: $0 IMPOLICYCTL DIR" >&2
	exit 2
fi
ctl=$1
dir=$2
case $ctl in
/*) ;;
*) ctl=$(pwd)/$ctl ;;
esac
cd "$dir" || exit 2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/conferr.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM
pass=0
fail=0
for policy in cases/*.yaml; do
	name=${policy#cases/}
	name=${name%.yaml}
	expected=cases/$name.expected
	if [ ! -f "$expected" ]; then
		echo "FAIL $name: missing $expected"
		fail=$((fail + 1))
		continue
	fi
	"$ctl" check "$policy" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	ok=1
	if [ $rc -ne 2 ]; then
		echo "FAIL $name: exit status $rc, expected 2"
		ok=0
	fi
	if ! diff -u "$expected" "$tmp/err" >"$tmp/diff"; then
		echo "FAIL $name: stderr differs from $expected:"
		cat "$tmp/diff"
		ok=0
	fi
	if [ $ok -eq 1 ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
	fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
