#!/bin/sh
# tests/cli/run.sh -- behaviour of the impolicyctl command line.
#
#   sh run.sh IMPOLICYCTL SRCDIR
#
# Checks exit codes, the shape of check/eval/explain output, stdin input,
# malformed and hostile input (no crash, exit 1 with an error result), and
# that usage errors exit 64.  Prints "N passed, N failed"; exits non-zero on
# any failure.  Needs only sh, awk, grep, head, wc.
set -u

if [ $# -ne 2 ]; then
	echo "usage: sh run.sh IMPOLICYCTL SRCDIR" >&2
	exit 64
fi
ctl=$1
src=$(cd "$2" && pwd) || exit 64
case $ctl in /*) ;; *) ctl=$(pwd)/$ctl ;; esac
policy=$src/contrib/policies/acme.yaml
data=$src/tests/cli/data
now=2026-11-25T11:00:00

tmp=${TMPDIR:-/tmp}/imp-cli.$$
mkdir -p "$tmp" || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

pass=0
fail=0

ok() {
	pass=$((pass + 1))
}
bad() {
	fail=$((fail + 1))
	echo "FAIL: $*"
	echo "  --- stdout:"
	head -c 2000 "$tmp/out" | sed 's/^/  /'
	echo "  --- stderr:"
	head -c 2000 "$tmp/err" | sed 's/^/  /'
}

# run EXPECTED_STATUS DESCRIPTION -- ARGS...   (stdin from $stdin or /dev/null)
run() {
	want=$1
	what=$2
	shift 3
	"$ctl" "$@" <"${stdin:-/dev/null}" >"$tmp/out" 2>"$tmp/err"
	got=$?
	if [ "$got" -ne "$want" ]; then
		bad "$what: exit $got, want $want"
		return 1
	fi
	# Exit codes above 128 are signals (crash); never acceptable.
	return 0
}
# expect_out PATTERN DESCRIPTION: stdout matches the extended regex
expect_out() {
	if grep -Eq -- "$1" "$tmp/out"; then ok; else bad "$2: stdout lacks /$1/"; fi
}
expect_err() {
	if grep -Eq -- "$1" "$tmp/err"; then ok; else bad "$2: stderr lacks /$1/"; fi
}

# ---- help, version, usage errors -----------------------------------------
run 0 "help" -- --help && expect_out '^usage: impolicyctl' "help"
for cmd in check eval explain version help; do
	expect_out "^  $cmd" "help documents $cmd"
done
expect_out '^  64 ' "help documents exit 64"
expect_out '^  2 ' "help documents exit 2"
run 0 "help command" -- help && expect_out 'Exit status' "help command"
run 0 "eval --help" -- eval --help && expect_out '^usage:' "eval --help"
run 0 "version" -- version && expect_out '^impolicyctl [0-9]+\.[0-9]+' "version"
run 64 "no command" -- && ok
run 64 "unknown command" -- frobnicate && expect_err "unknown command 'frobnicate'" "unknown command"
run 64 "unknown option" -- eval --policy "$policy" --frob && expect_err "unknown option" "unknown option"
run 64 "eval without --policy" -- eval "$data/clean.xml" && expect_err "required" "missing --policy"
run 64 "option without value" -- eval --policy && expect_err "needs a value" "missing value"
run 64 "bad --origin" -- eval --policy "$policy" --origin sideways && ok
run 64 "bad --engine" -- check --engine turbo "$policy" && ok
run 64 "bad --at" -- eval --policy "$policy" --at yesterday "$data/clean.xml" && expect_err "--at" "bad --at"
run 64 "bad --durability" -- eval --policy "$policy" --archive "dbname=x" --durability sometimes && expect_err "durability" "--durability"
run 64 "archive option without --archive" -- eval --policy "$policy" --node n1 && expect_err "needs --archive" "--node alone"
run 64 "check with two files" -- check "$policy" "$policy" && ok
run 64 "check with eval option" -- check --json "$policy" && ok

# ---- check ------------------------------------------------------------------
run 0 "check sample policy" -- check "$policy" &&
	expect_out '^.*acme\.yaml: ok: Acme IM Usage & Security Policy 2026-11, [0-9]+ rules, [0-9]+ lists \([0-9]+ words\), [0-9]+ detectors, [0-9]+ schedules, [0-9]+ groups, digest [0-9a-f]{12}' "check summary"
if [ "$(wc -l <"$tmp/out")" -eq 1 ] && [ ! -s "$tmp/err" ]; then ok; else bad "check: one line on stdout, nothing on stderr"; fi
run 0 "check --engine pcre2" -- check --engine pcre2 "$policy" && expect_out ': ok: ' "check pcre2"
run 0 "check --engine=auto" -- check --engine=auto "$policy" && expect_out ': ok: ' "check --engine=auto"
run 2 "check broken policy" -- check "$data/broken.yaml" &&
	expect_err 'broken\.yaml:[0-9]+:[0-9]+: ' "broken: FILE:LINE:COL errors"
expect_err 'broken\.yaml: policy refused: [0-9]+ error\(s\)' "broken: refused line"
# every problem is reported, not only the first
n=$(grep -c 'broken\.yaml:[0-9]*:[0-9]*: ' "$tmp/err")
if [ "$n" -ge 3 ]; then ok; else bad "broken: want >= 3 errors, got $n"; fi
if [ ! -s "$tmp/out" ]; then ok; else bad "broken: nothing on stdout"; fi
last=$(tail -n 1 "$tmp/err")
case $last in *"policy refused:"*) ok ;; *) bad "broken: refused line is last" ;; esac
# more errors than the cap (50): the rest are counted, not shown
{
	printf 'policy: { name: "Many errors" }\nrules:\n'
	i=0
	while [ $i -lt 60 ]; do
		printf '  - { id: r%d, when: { kind: message }, action: explode }\n' $i
		i=$((i + 1))
	done
} >"$tmp/many-errors.yaml"
run 2 "check many errors" -- check "$tmp/many-errors.yaml" &&
	expect_err 'policy refused: 60 error\(s\) \(10 more not shown\)$' "errors beyond the cap counted"
n=$(grep -c 'many-errors\.yaml:[0-9]*:[0-9]*: ' "$tmp/err")
if [ "$n" -eq 50 ]; then ok; else bad "many errors: want 50 shown, got $n"; fi
run 2 "check missing file" -- check "$data/no-such-policy.yaml" &&
	expect_err 'policy refused' "missing file"
run 2 "eval with broken policy" -- eval --policy "$data/broken.yaml" "$data/clean.xml" && ok

# ---- eval ---------------------------------------------------------------------
run 0 "eval clean" -- eval --policy "$policy" --at "$now" "$data/clean.xml" &&
	expect_out 'clean\.xml:1: allow$' "eval clean plain line"
run 0 "eval reject plain" -- eval --policy "$policy" --at "$now" --no-state "$data/personal.xml" &&
	expect_out '^.*personal\.xml:1: reject rule=personal-use\.outside-breaks section="5\. Personal Use" notice="[^"]+' "eval reject line"
# stdin, both implicit and "-"
stdin=$data/clean.xml
run 0 "eval stdin implicit" -- eval --policy "$policy" --at "$now" && expect_out '^<stdin>:1: allow' "stdin implicit"
run 0 "eval stdin -" -- eval --policy "$policy" --at "$now" --json - && expect_out '^\{"file":"<stdin>","line":1,"verdict":"allow"' "stdin json"
stdin=
# --json: one object per stanza, each with file and line
run 0 "eval json two stanzas" -- eval --policy "$policy" --at "$now" --json "$data/two.xml" &&
	expect_out '"line":4,"verdict":' "json second stanza line"
if [ "$(grep -c '^{"file":".*two\.xml","line":[0-9]*,"verdict":"[a-z]*".*}$' "$tmp/out")" -eq 2 ]; then ok; else bad "json: two objects"; fi
# --at with and without offset: 10:35 New York is a break, 15:35Z too
run 0 "eval at break" -- eval --policy "$policy" --no-state --at 2026-11-25T10:35:00 "$data/personal.xml" && expect_out ': allow' "break allows"
run 0 "eval at break Z" -- eval --policy "$policy" --no-state --at 2026-11-25T15:35:00Z "$data/personal.xml" && expect_out ': allow' "break in UTC"
run 0 "eval at 16:00Z" -- eval --policy "$policy" --no-state --at 2026-11-25T16:00:00Z "$data/personal.xml" && expect_out ': reject' "work in UTC"
# escalation state is kept across the files of one run, not with --no-state
run 0 "eval escalation" -- eval --policy "$policy" --at "$now" "$data/profane.xml" "$data/profane.xml" "$data/profane.xml" "$data/clean.xml" &&
	expect_out 'clean\.xml:1: reject rule=escalation\.suspended' "suspended after 3"
run 0 "eval no-state" -- eval --policy "$policy" --at "$now" --no-state "$data/profane.xml" "$data/profane.xml" "$data/profane.xml" "$data/clean.xml" &&
	expect_out 'clean\.xml:1: allow' "no-state never suspends"
# the sender's session: impersonation
run 0 "eval session" -- eval --policy "$policy" --at "$now" --origin local --session mallory@acme.example/x "$data/clean.xml" &&
	expect_out 'reject rule=unacceptable-use\.impersonation' "spoofed from"
# --engine and --local-domain are accepted
run 0 "eval engine pcre2" -- eval --policy "$policy" --at "$now" --engine pcre2 --local-domain example.org "$data/clean.xml" && expect_out ': allow' "engine pcre2"

# ---- explain ------------------------------------------------------------------
run 0 "explain" -- explain --policy "$policy" --at "$now" --no-state "$data/clean.xml" &&
	expect_out 'clean\.xml:1: allow' "explain verdict line"
missing=0
# shellcheck disable=SC2013  # rule ids contain no white space
for id in $(grep -E '^  - id: ' "$policy" | awk '{print $3}'); do
	if ! grep -q -- "$id" "$tmp/out"; then
		missing=$((missing + 1))
		echo "  explain does not mention $id"
	fi
done
if [ $missing -eq 0 ]; then ok; else bad "explain mentions every rule ($missing missing)"; fi
run 0 "eval --explain --json" -- eval --policy "$policy" --at "$now" --explain --json "$data/clean.xml" && expect_out '"explain":"' "json explain"

# ---- malformed and hostile input ----------------------------------------------
run 1 "malformed" -- eval --policy "$policy" --at "$now" "$data/malformed.xml" &&
	expect_out 'malformed\.xml:1: allow' "good stanza before the broken one"
expect_out 'malformed\.xml:4: reject .*error="' "malformed result line"
run 1 "malformed json" -- eval --policy "$policy" --at "$now" --json "$data/malformed.xml" &&
	expect_out '"line":4,"verdict":"reject".*"flags":\["malformed"\].*"error":"' "malformed json"
run 1 "not xml at all" -- eval --policy "$policy" --at "$now" "$data/garbage.txt" && expect_out 'error=' "garbage"
run 1 "missing stanza file" -- eval --policy "$policy" --at "$now" "$data/clean.xml" "$data/no-such.xml" &&
	expect_out 'clean\.xml:1: allow' "other files still judged"
expect_err 'no-such\.xml: cannot read' "missing stanza file reported"

# a 1 MiB body: judged (profanity at the end still found or uninspectable flag)
awk 'BEGIN {
	printf "<message from=\"alice@acme.example/l\" to=\"bob@acme.example\" type=\"chat\" id=\"big\"><body>"
	for (i = 0; i < 16384; i++) printf "%s", "Quarterly numbers look fine, nothing to report here, move along now. "
	printf "shit</body></message>\n"
}' >"$tmp/big.xml"
size=$(wc -c <"$tmp/big.xml")
if [ "$size" -gt 1048576 ]; then ok; else bad "big.xml is only $size bytes"; fi
run 0 "1 MiB body" -- eval --policy "$policy" --at "$now" --no-state --json "$tmp/big.xml" &&
	expect_out '"verdict":"(redact|flag|reject)"' "1 MiB body judged, not allowed silently"
# the body is not echoed (only redacted_body, which the admin asked for)
if [ "$(wc -c <"$tmp/out")" -lt 3000000 ]; then ok; else bad "1 MiB: output size"; fi

# 10000 levels of nesting: refused as malformed, no crash (exit 1, not a signal)
awk 'BEGIN {
	printf "<message from=\"alice@acme.example/l\" to=\"bob@acme.example\">"
	for (i = 0; i < 10000; i++) printf "<x>"
	for (i = 0; i < 10000; i++) printf "</x>"
	printf "</message>\n"
}' >"$tmp/deep.xml"
"$ctl" eval --policy "$policy" --at "$now" --json "$tmp/deep.xml" >"$tmp/out" 2>"$tmp/err"
st=$?
if [ $st -le 1 ]; then ok; else bad "deep nesting: exit $st"; fi
expect_out '^\{"file":.*"verdict":"reject"' "deep nesting: a verdict, fail closed"

# many stanzas in one file
awk 'BEGIN { for (i = 0; i < 2000; i++) printf "<message from=\"alice@acme.example/l\" to=\"bob@acme.example\" id=\"m%d\"><body>hi %d</body></message>\n", i, i }' >"$tmp/many.xml"
run 0 "2000 stanzas" -- eval --policy "$policy" --at "$now" --no-state "$tmp/many.xml"
if [ "$(wc -l <"$tmp/out")" -eq 2000 ]; then ok; else bad "2000 stanzas: one line each"; fi

# diagnostics never contain message bodies
run 0 "quiet stderr" -- eval --policy "$policy" --at "$now" --no-state "$data/personal.xml"
if grep -q 'fantasy' "$tmp/err"; then bad "body text on stderr"; else ok; fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
