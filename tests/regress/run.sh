#!/bin/sh
# tests/regress/run.sh -- golden-file regression tests of the sample policy.
#
#   sh run.sh [--update] IMPOLICYCTL DIR
#
# Every case is DIR/cases/NAME.xml (one or more stanzas), NAME.args (extra
# eval arguments, one line, e.g. "--at 2026-11-25T10:35:00 --no-state") and
# NAME.expected (the golden output).  Each case runs
#
#   impolicyctl eval --policy DIR/../../contrib/policies/acme.yaml --json ARGS NAME.xml
#
# from DIR/cases, and its JSON lines are reduced to the stable parts of a
# verdict (no digest, offsets or notice wording) by the awk normaliser below,
# followed by the exit status.  A difference is shown with diff -u.
#
# --update rewrites the .expected files from the current output.  Review
# every changed golden file by hand before accepting it: a golden file that
# records a wrong verdict is a failing test we wrote ourselves.
#
# Needs only sh, awk, diff (no jq, no python).
set -u

update=0
if [ "${1:-}" = "--update" ]; then
	update=1
	shift
fi
if [ $# -ne 2 ]; then
	echo "usage: sh run.sh [--update] IMPOLICYCTL DIR" >&2
	exit 64
fi
ctl=$1
dir=$2
case $ctl in /*) ;; *) ctl=$(pwd)/$ctl ;; esac
dir=$(cd "$dir" && pwd) || exit 64
policy=$dir/../../contrib/policies/acme.yaml
[ -x "$ctl" ] || { echo "run.sh: $ctl is not executable" >&2; exit 64; }
[ -f "$policy" ] || { echo "run.sh: no policy at $policy" >&2; exit 64; }

# One line per verdict:
#   FILE:LINE verdict=V rule=R rules=[..] flags=[..] kind=K dir=D hits=[..]
#   [redacted="..."] [error]
# Keys are emitted by imp_verdict_json in a fixed order; the first "rule"
# key is the deciding rule (hits' "rule" keys come later).
normalise() {
	awk '
	function grab(re, s,    v) {
		if (match(s, re)) {
			v = substr(s, RSTART, RLENGTH)
			sub(/^"[a-z_]*":/, "", v)
			return v
		}
		return "-"
	}
	/^\{/ {
		line = $0
		out = grab("\"file\":\"[^\"]*\"", line) ":" grab("\"line\":[0-9]+", line)
		gsub(/"/, "", out)
		out = out " verdict=" grab("\"verdict\":\"[a-z]*\"", line)
		out = out " rule=" grab("\"rule\":(\"[^\"]*\"|null)", line)
		out = out " rules=" grab("\"rules\":\\[[^]]*\\]", line)
		out = out " flags=" grab("\"flags\":\\[[^]]*\\]", line)
		out = out " kind=" grab("\"kind\":(\"[^\"]*\"|null)", line)
		out = out " dir=" grab("\"direction\":(\"[^\"]*\"|null)", line)
		# evidence: source@field of every hit, in order
		hits = ""
		rest = line
		while (match(rest, /"source":"[^"]*","field":"[a-z]*"/)) {
			h = substr(rest, RSTART, RLENGTH)
			rest = substr(rest, RSTART + RLENGTH)
			gsub(/"/, "", h)
			sub(/^source:/, "", h)
			sub(/,field:/, "@", h)
			hits = hits (hits == "" ? "" : ",") h
		}
		out = out " hits=[" hits "]"
		r = grab("\"redacted_body\":\"([^\"\\\\]|\\\\.)*\"", line)
		if (r != "-")
			out = out " redacted=" r
		if (line ~ /"error":"/)
			out = out " error"
		gsub(/"/, "", out)
		print out
		next
	}
	{ print "NONJSON " $0 }
	'
}

pass=0
fail=0
failed=""
tmp=${TMPDIR:-/tmp}/imp-regress.$$
mkdir -p "$tmp" || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

cd "$dir/cases" || exit 1
for xml in *.xml; do
	name=${xml%.xml}
	args=""
	[ -f "$name.args" ] && args=$(sed -e '/^#/d' "$name.args" | tr '\n' ' ')
	# shellcheck disable=SC2086  # ARGS are meant to be split
	"$ctl" eval --policy "$policy" --json $args "$xml" \
		>"$tmp/$name.out" 2>"$tmp/$name.err"
	status=$?
	{
		normalise <"$tmp/$name.out"
		echo "exit=$status"
	} >"$tmp/$name.actual"
	if [ $update -eq 1 ]; then
		if ! cmp -s "$tmp/$name.actual" "$name.expected" 2>/dev/null; then
			cp "$tmp/$name.actual" "$name.expected"
			echo "updated $name.expected -- review it"
		fi
		pass=$((pass + 1))
		continue
	fi
	if [ ! -f "$name.expected" ]; then
		echo "FAIL $name: no $name.expected (run with --update, then review)"
		fail=$((fail + 1))
		failed="$failed $name"
		continue
	fi
	if diff -u "$name.expected" "$tmp/$name.actual" >"$tmp/$name.diff"; then
		pass=$((pass + 1))
	else
		echo "FAIL $name"
		cat "$tmp/$name.diff"
		if [ -s "$tmp/$name.err" ]; then
			echo "--- stderr of $name:"
			cat "$tmp/$name.err"
		fi
		fail=$((fail + 1))
		failed="$failed $name"
	fi
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ] || { echo "failed:$failed"; exit 1; }
exit 0
