#!/bin/sh
# mod_impolicy quick start.
#
# Today: installs the dependencies (Debian 12, as root), builds, lints the
# sample policy and dry-runs it against the sample stanzas in
# contrib/samples/, once at 11:00 (work hours) and once at 12:30 (lunch),
# so you can see verdicts, notices and redactions.  The jabberd2 + PostgreSQL
# quick start (start|stop|status) arrives with the host connector.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

sh scripts/install-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j"${IMP_JOBS:-2}" --target impolicyctl

ctl=build/release/impolicyctl
policy=contrib/policies/acme.yaml

echo
echo "== impolicyctl check $policy"
"$ctl" check "$policy"

for at in 2026-11-25T11:00:00 2026-11-25T12:30:00; do
	echo
	echo "== impolicyctl eval --at $at (policy time zone)"
	for f in contrib/samples/*.xml; do
		# malformed.xml is meant to fail: eval exits 1 for it
		"$ctl" eval --policy "$policy" --no-state --at "$at" "$f" || true
	done
done

echo
echo "== why was the card number refused?"
"$ctl" explain --policy "$policy" --at 2026-11-25T11:00:00 contrib/samples/card-number.xml || true
echo
echo "Try: $ctl eval --policy $policy --json contrib/samples/profanity.xml"
