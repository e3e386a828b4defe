#!/bin/sh
# tests/archive/test_ctl.sh -- impolicyctl's archive commands against a real
# PostgreSQL 15: db init|upgrade|status, eval --archive (the library's
# archive writer), archive-status, verify (intact, HMAC, and each kind of
# tampering), purge with retention, holds, checkpoints and audit rows.
#
#   sh test_ctl.sh IMPOLICYCTL SRCDIR
#
# Starts a private cluster in a temporary directory through
# scripts/pg-cluster.sh (random free port, Unix socket in that directory),
# stops it and removes the directory on every exit.  Prints
# "N passed, N failed"; exits non-zero on any failure.
set -u

if [ $# -ne 2 ]; then
	echo "usage: sh test_ctl.sh IMPOLICYCTL SRCDIR" >&2
	exit 64
fi
ctl=$1
src=$(cd "$2" && pwd) || exit 64
. "$src/tests/archive/pg-test-env.sh"
pg_test_start ctl
policy=$src/tests/archive/ctl_data/policy.yaml

db=imp_ctl_test
dsn="host=$IMP_PG_DIR port=$IMP_PG_PORT user=postgres dbname=$db"
pass=0
fail=0

ok() { pass=$((pass + 1)); }
bad() {
	fail=$((fail + 1))
	echo "FAIL: $*"
	echo "  --- stdout:"
	head -c 3000 "$tmp/out" | sed 's/^/  /'
	echo "  --- stderr:"
	head -c 3000 "$tmp/err" | sed 's/^/  /'
}
# run WANT_STATUS DESCRIPTION -- ARGS...: impolicyctl
run() {
	want=$1 what=$2
	shift 3
	"$ctl" "$@" >"$tmp/out" 2>"$tmp/err"
	got=$?
	if [ "$got" -ne "$want" ]; then
		bad "$what: exit $got, want $want"
		return 1
	fi
	return 0
}
expect_out() {
	if grep -Eq -- "$1" "$tmp/out"; then ok; else bad "$2: stdout lacks /$1/"; fi
}
expect_err() {
	if grep -Eq -- "$1" "$tmp/err"; then ok; else bad "$2: stderr lacks /$1/"; fi
}
# sql SQL: runs as the superuser, result (unaligned, tuples only) in $tmp/q
sql() {
	printf '%s\n' "$1" | "$bin/psql" -X -q -At -v ON_ERROR_STOP=1 \
		-h "$IMP_PG_DIR" -p "$IMP_PG_PORT" -U postgres -d "$db" -f - \
		>"$tmp/q" 2>"$tmp/qerr"
}
# eq DESCRIPTION GOT WANT
eq() {
	if [ "$2" = "$3" ]; then ok; else
		echo "FAIL: $1: got '$2', want '$3'"
		fail=$((fail + 1))
	fi
}

"$bin/psql" -X -q -h "$IMP_PG_DIR" -p "$IMP_PG_PORT" -U postgres -d postgres \
	-c "CREATE DATABASE $db" >/dev/null || exit 1

# stanzas FILE N FIRST: N messages, alternating senders alice and carol,
# bodies with SQL metacharacters, quotes and a flagged phrase every 5th.
stanzas() {
	i=$3
	end=$(($3 + $2))
	: >"$1"
	while [ "$i" -lt "$end" ]; do
		if [ $((i % 2)) -eq 0 ]; then who=alice; else who=carol; fi
		if [ $((i % 5)) -eq 0 ]; then extra=" project bluebird"; else extra=""; fi
		printf "<message from='%s@acme.example/pc' to='bob@acme.example' type='chat' id='m%d'><body>msg %d: it&apos;s \"quoted\"; DROP TABLE impolicy.stanza; -- \\\\x00%s</body></message>\n" \
			"$who" "$i" "$i" "$extra" >>"$1"
		i=$((i + 1))
	done
}

# ---- db init | upgrade | status ---------------------------------------------
run 1 "db status before init" -- db status --dsn "$dsn" &&
	expect_out "pending 001_init.sql" "db status lists the pending script"
run 3 "db init, unreachable" -- db init --dsn "host=$tmp/none port=1 dbname=x" &&
	expect_err "cannot connect" "db init unreachable"
run 0 "db init" -- db init --dsn "$dsn" &&
	expect_out "applied 001_init.sql" "db init applies 001"
run 0 "db init again" -- db init --dsn "$dsn" &&
	expect_out "nothing to do" "second db init is a no-op"
sql "SELECT count(*) FROM impolicy.schema_version"
eq "schema_version rows after two inits" "$(cat "$tmp/q")" 1
IMPOLICY_DSN=$dsn run 0 "db upgrade (DSN from env)" -- db upgrade &&
	expect_out "nothing to do" "db upgrade is a no-op"
printf '%s\n' "$dsn" >"$tmp/dsn"
run 0 "db status" -- db status --dsn-file "$tmp/dsn" &&
	expect_out "up to date" "db status up to date"
run 64 "db bogus" -- db bogus --dsn "$dsn" && ok

# ---- the policy's retention classes against the archive ----------------------
# A class the archive does not define would make PostgreSQL refuse (and the
# writer quarantine) every record of it: check and eval --archive say so.
run 0 "check --archive, classes known" -- check --archive "$dsn" \
	"$src/contrib/policies/acme.yaml" &&
	expect_out "every retention class it names is defined" "check --archive ok"
{
	sed 's/^    action: reject$/    action: reject\n    retention: 5y/' "$policy"
	echo "settings: { retention: 9y }"
} >"$tmp/badret.yaml"
run 2 "check --archive, unknown classes" -- check --archive "$dsn" \
	"$tmp/badret.yaml" &&
	expect_err "badret.yaml:[0-9]+: rule test.forbidden: retention class '5y' is not defined" \
		"unknown rule class named with its line" &&
	expect_err "settings.retention: retention class '9y'" "unknown default named"
run 2 "eval --archive refuses unknown classes" -- eval --policy "$policy" \
	--archive "$dsn" --node nret --spool-dir "$tmp" --retention 4y \
	--new-node /dev/null &&
	expect_err "--retention: the writer's default: retention class '4y'" \
		"eval --retention class checked"
sql "SELECT count(*) FROM impolicy.stanza WHERE node = 'nret'"
eq "nothing recorded after a refused eval --archive" "$(cat "$tmp/q")" 0
run 3 "check --archive, unreachable" -- check --archive \
	"host=$tmp/none port=1 dbname=x" "$policy" && ok
run 2 "eval --archive refuses a policy with unknown classes" -- eval \
	--policy "$tmp/badret.yaml" --archive "$dsn" --node nret \
	--spool-dir "$tmp" --new-node /dev/null &&
	expect_err "retention class '5y'" "eval names the policy's class"

# A retention class short enough to purge within the test, set through the
# audited admin function.
sql "SELECT impolicy.retention_class_set('short', interval '1 second', 'test')" ||
	bad "retention_class_set: $(cat "$tmp/qerr")"

# ---- eval --archive: round trip -------------------------------------------------
n1=30
stanzas "$tmp/n1.xml" $n1 0
run 0 "eval --archive n1" -- eval --policy "$policy" --archive "$dsn" \
	--node n1 --spool-dir "$tmp/spool" --retention short "$tmp/n1.xml" &&
	expect_err "$n1 record\\(s\\) durable in PostgreSQL" "eval --archive summary"
sql "SELECT count(*), min(seq), max(seq), count(DISTINCT seq) FROM impolicy.stanza WHERE node = 'n1'"
eq "n1 rows" "$(cat "$tmp/q")" "$n1|1|$n1|$n1"
# Byte-identical XML: the first stanza exactly as in the file.
sql "SELECT encode(raw_xml, 'hex') FROM impolicy.stanza WHERE node = 'n1' AND seq = 1"
want=$(head -n 1 "$tmp/n1.xml" | tr -d '\n' | od -An -tx1 | tr -d ' \n')
eq "raw_xml byte-identical" "$(cat "$tmp/q")" "$want"
sql "SELECT verdict, array_to_string(rule_ids, ',') FROM impolicy.stanza WHERE node = 'n1' AND seq = 1"
eq "seq 1 (msg 0) flagged" "$(cat "$tmp/q")" "flag|test.secret-word"
sql "SELECT count(*) FROM impolicy.flag WHERE node = 'n1' AND state = 'open'"
eq "flag rows written with the stanzas" "$(cat "$tmp/q")" 6
run 0 "archive-status" -- archive-status --dsn "$dsn" --spool-dir "$tmp/spool" &&
	expect_out "node n1: records $n1, last seq $n1, .*open flags 6" "archive-status n1"
# ---- archive-status from a running writer's status file ---------------------------
# The file as the writer thread writes it (test_writer checks the writer
# side); freshness comes from its modification time.
mkdir -p "$tmp/stspool"
stf=$tmp/stspool/sm1.status
now_us=$(($(date +%s) * 1000000))
printf '{"node": "sm1", "pid": 4242, "updated_us": %s, "submitted": 12, "queued": 1, "written": 9, "spooled": 2, "replayed": 1, "refused": 3, "lost": 0, "spool_bytes": 512, "oldest_unwritten_us": 1500, "connected": 1, "last_seq": 12, "quarantined": 0}\n' \
	"$now_us" >"$stf"
run 0 "archive-status --status-file (fresh)" -- archive-status --status-file "$stf" &&
	expect_out "^node sm1: writer pid 4242, status updated [0-9.]+ s ago \(writer clock [0-9T:-]+Z\), connected yes$" "status-file header" &&
	expect_out "^node sm1: submitted 12, queued 1, written 9, spooled 2, replayed 1, refused 3, lost 0, quarantined 0, spool bytes 512, oldest unwritten 1500 us, last seq 12$" "status-file counters"
run 0 "archive-status --spool-dir --node (fresh)" -- archive-status --spool-dir "$tmp/stspool" --node sm1 &&
	expect_out "node sm1: submitted 12, queued 1, written 9" "status file found as DIR/NODE.status"
run 64 "archive-status --status-file with --dsn" -- archive-status --status-file "$stf" --dsn "$dsn" && ok
touch -d '-10 seconds' "$stf"
run 1 "archive-status --status-file (stale)" -- archive-status --status-file "$stf" &&
	expect_err "sm1.status is 1[0-9] s old \(more than 5 s\): the writer of node sm1 is not running" "stale status file" &&
	expect_out "node sm1: submitted 12" "stale status still shows the counters"
run 1 "archive-status --spool-dir --node (stale)" -- archive-status --spool-dir "$tmp/stspool" --node sm1 &&
	expect_err "not running" "stale status file, DIR/NODE form"
run 1 "archive-status --status-file (missing)" -- archive-status --status-file "$tmp/stspool/none.status" &&
	expect_err "no status file .*none.status" "missing status file"
echo '{"node": "x"}' >"$tmp/stspool/bad.status"
run 1 "archive-status --status-file (not one)" -- archive-status --status-file "$tmp/stspool/bad.status" &&
	expect_err "is not a status file" "malformed status file"

run 0 "verify intact" -- verify --dsn "$dsn" &&
	expect_err "intact: 1 node\\(s\\), $n1 record\\(s\\)" "verify intact summary"

# eval against an unreachable database: not durable in PostgreSQL -> exit 3,
# the records wait in the spool; the next run with the same node and spool
# replays them first, in order.
stanzas "$tmp/n4.xml" 5 100
# No chain head in the spool and none from PostgreSQL: refused (numbering
# could restart at 1 over existing rows) unless the node is declared new.
run 3 "eval --archive, database away, head unknown" -- eval --policy "$policy" \
	--archive "host=$tmp/none port=1 dbname=x" --node n4 \
	--spool-dir "$tmp/spool4" --retention 3y --flush-timeout 2 "$tmp/n4.xml" &&
	expect_err "refusing to record" "eval --archive refuses an unknown head"
run 3 "eval --archive, database away" -- eval --policy "$policy" \
	--archive "host=$tmp/none port=1 dbname=x" --node n4 --new-node \
	--spool-dir "$tmp/spool4" --retention 3y --flush-timeout 2 "$tmp/n4.xml" &&
	expect_err "NOT all records" "eval --archive away says so"
run 0 "eval --archive, database back" -- eval --policy "$policy" \
	--archive "$dsn" --node n4 --spool-dir "$tmp/spool4" --retention 3y \
	"$tmp/n4.xml"
sql "SELECT count(*), count(DISTINCT seq), max(seq) FROM impolicy.stanza WHERE node = 'n4'"
eq "n4: spooled then replayed, exactly once" "$(cat "$tmp/q")" "10|10|10"
run 0 "verify n4 after replay" -- verify --dsn "$dsn" --node n4 && ok

# ---- quarantine and archive-requeue --------------------------------------------
# Records of a class the archive lacks, spooled while it was away (so no
# check could stop them), are refused on replay and quarantined; once the
# class exists, archive-requeue hands them back to the node's next writer.
stanzas "$tmp/nq.xml" 4 200
run 3 "eval --archive away, unknown class spooled" -- eval --policy "$policy" \
	--archive "host=$tmp/none port=1 dbname=x" --node nq --new-node \
	--spool-dir "$tmp/spoolq" --retention zz1 --flush-timeout 2 "$tmp/nq.xml" &&
	expect_err "retention classes not checked" "eval says it could not check"
run 3 "replay quarantines the refused records" -- eval --policy "$policy" \
	--archive "$dsn" --node nq --spool-dir "$tmp/spoolq" --retention 3y \
	/dev/null && ok
run 0 "archive-status shows the quarantine" -- archive-status --dsn "$dsn" \
	--spool-dir "$tmp/spoolq" &&
	expect_out "4 quarantined record\\(s\\)" "quarantine counted"
run 0 "archive-requeue, empty node" -- archive-requeue --spool-dir "$tmp/spoolq" \
	--node nobody && expect_out "nothing quarantined" "requeue of nothing"
sql "SELECT impolicy.retention_class_set('zz1', interval '1 year', 'test')" ||
	bad "retention_class_set zz1: $(cat "$tmp/qerr")"
printf '{"node": "nq"}\n' >"$tmp/spoolq/nq.status"
run 1 "archive-requeue refuses while a writer runs" -- archive-requeue \
	--spool-dir "$tmp/spoolq" --node nq &&
	expect_err "is running" "running writer detected"
touch -d '1 minute ago' "$tmp/spoolq/nq.status"
run 0 "archive-requeue" -- archive-requeue --spool-dir "$tmp/spoolq" --node nq &&
	expect_out "4 quarantined record\\(s\\) from seq 1 re-queued" "requeue says what"
if [ -e "$tmp/spoolq/nq.quarantine" ]; then bad "quarantine file still there"; else ok; fi
run 0 "the next writer replays them" -- eval --policy "$policy" \
	--archive "$dsn" --node nq --spool-dir "$tmp/spoolq" --retention 3y \
	/dev/null && ok
sql "SELECT count(*), count(DISTINCT seq), min(retention_class) FROM impolicy.stanza WHERE node = 'nq'"
eq "nq: quarantined records replayed once" "$(cat "$tmp/q")" "4|4|zz1"
run 0 "verify nq after requeue" -- verify --dsn "$dsn" --node nq && ok

# Quarantined records (refused by PostgreSQL for a data reason) are shown
# per node by archive-status --spool-dir: two empty frames here.
mkdir -p "$tmp/spoolq"
printf 'IMPS\000\000\000\000\000\000\000\000IMPS\001\000\000\000\000\000\000\000x' \
	>"$tmp/spoolq/nq.quarantine"
run 0 "archive-status, quarantine" -- archive-status --dsn "$dsn" --spool-dir "$tmp/spoolq" &&
	expect_out "node nq: .*2 quarantined record" "archive-status shows quarantined"

# ---- HMAC chain ------------------------------------------------------------------
printf 'not-in-the-database\n' >"$tmp/key"
chmod 0600 "$tmp/key"
printf 'another-key\n' >"$tmp/badkey"
stanzas "$tmp/n2.xml" 6 200
run 0 "eval --archive keyed" -- eval --policy "$policy" --archive "$dsn" \
	--node n2 --spool-dir "$tmp/spool" --retention 3y --key-file "$tmp/key" \
	--key-id k1 "$tmp/n2.xml" && ok
sql "SELECT DISTINCT hash_alg || '/' || key_id FROM impolicy.stanza WHERE node = 'n2'"
eq "n2 keyed" "$(cat "$tmp/q")" "hmac-sha256/k1"
run 0 "verify HMAC with the key" -- verify --dsn "$dsn" --node n2 --key-file "$tmp/key" && ok
run 1 "verify HMAC without the key" -- verify --dsn "$dsn" --node n2 &&
	expect_out "^n2: unverifiable: 6 HMAC records" "no key: unverifiable"
run 1 "verify HMAC with a wrong key" -- verify --dsn "$dsn" --node n2 --key-file "$tmp/badkey" &&
	expect_out "^n2 seq 1: altered" "wrong key: altered"

# ---- tampering, as a superuser with the triggers bypassed -------------------------
stanzas "$tmp/n3.xml" 20 300
run 0 "eval --archive n3" -- eval --policy "$policy" --archive "$dsn" \
	--node n3 --spool-dir "$tmp/spool" --retention 3y "$tmp/n3.xml" && ok
# Triggers still refuse without the bypass.
sql "UPDATE impolicy.stanza SET body = 'x' WHERE node = 'n3' AND seq = 3"
if grep -q "cannot be changed" "$tmp/qerr"; then ok; else bad "UPDATE was not refused"; fi
sql "SET session_replication_role = replica;
-- altered: a body changed in place
UPDATE impolicy.stanza SET body = 'tampered' WHERE node = 'n3' AND seq = 3;
-- deleted
DELETE FROM impolicy.stanza WHERE node = 'n3' AND seq = 6;
-- inserted: a forged second record for seq 9 (another ts)
INSERT INTO impolicy.stanza (node, seq, ts, direction, kind, from_bare,
  to_bare, body, raw_xml, verdict, retention_class, hash_alg, prev_hash,
  rec_hash)
SELECT node, seq, ts + interval '1 ms', direction, kind, from_bare, to_bare,
  'forged', raw_xml, 'allow', retention_class, hash_alg, prev_hash,
  sha256('forged'::bytea)
FROM impolicy.stanza WHERE node = 'n3' AND seq = 9;
-- reordered: seq 12 and 13 swap places
UPDATE impolicy.stanza SET seq = 1000 WHERE node = 'n3' AND seq = 12;
UPDATE impolicy.stanza SET seq = 12 WHERE node = 'n3' AND seq = 13;
UPDATE impolicy.stanza SET seq = 13 WHERE node = 'n3' AND seq = 1000;
-- rewritten with a fresh (unkeyed) hash: only the next link shows it
UPDATE impolicy.stanza SET body = 'rewritten' WHERE node = 'n3' AND seq = 16;
UPDATE impolicy.stanza s SET rec_hash = sha256(impolicy.canonical_record(s))
WHERE node = 'n3' AND seq = 16;
-- inserted at the end: a record linking to nothing
INSERT INTO impolicy.stanza (node, seq, ts, direction, kind, raw_xml,
  verdict, retention_class, hash_alg, prev_hash, rec_hash)
SELECT node, 21, ts + interval '1 s', direction, kind, raw_xml, 'allow',
  retention_class, hash_alg, sha256('nothing'::bytea), sha256('x'::bytea)
FROM impolicy.stanza WHERE node = 'n3' AND seq = 20;" ||
	bad "tampering SQL: $(cat "$tmp/qerr")"
run 1 "verify tampered n3" -- verify --dsn "$dsn" --node n3
expect_out "^n3 seq 3: altered" "altered body named"
expect_out "^n3 seq 6: missing" "deleted row named"
expect_out "^n3 seq 9: inserted" "forged duplicate named"
expect_out "^n3 seq 12: reordered" "reorder named (12)"
expect_out "^n3 seq 13: reordered" "reorder named (13)"
expect_out "^n3 seq 17: broken-link" "rewritten record shows at the next link"
expect_out "^n3 seq 21: inserted" "forged tail named"
eq "exactly the 7 problems of n3" "$(wc -l <"$tmp/out" | tr -d ' ')" 7
# Other nodes are unaffected, and a range that excludes the damage passes.
run 0 "verify n1 still intact" -- verify --dsn "$dsn" --node n1 && ok
sql "SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM impolicy.stanza WHERE node = 'n3' AND seq = 18"
from=$(cat "$tmp/q")
# A range from seq 18 on: 18's predecessor is outside (not checked), only
# the forged tail is left to report.
run 1 "verify n3 from seq 18 on" -- verify --dsn "$dsn" --node n3 \
	--from "$from" --to "2999-01-01T00:00:00Z" &&
	expect_out "^n3 seq 21: inserted" "ranged verify finds the forged tail"
eq "ranged verify: one problem" "$(wc -l <"$tmp/out" | tr -d ' ')" 1

# ---- holds and purge ------------------------------------------------------------
run 0 "hold add user" -- hold add --dsn "$dsn" --user carol@acme.example \
	--reason "matter 42" --by alice &&
	expect_out "^hold 1 placed" "hold add prints the id"
run 0 "hold add range" -- hold add --dsn "$dsn" --from 2001-01-01T00:00:00Z \
	--to 2001-02-01T00:00:00Z --reason "old matter" && ok
run 64 "hold add without criteria" -- hold add --dsn "$dsn" --reason x && ok
run 64 "hold add without reason" -- hold add --dsn "$dsn" --user x@y && ok
run 0 "hold list" -- hold list --dsn "$dsn" &&
	expect_out '^hold 1 active user="carol@acme.example".*reason="matter 42 \(requested by alice\)"' "hold list"
run 0 "hold remove" -- hold remove 2 --dsn "$dsn" --reason "closed" && ok
run 0 "hold list --all" -- hold list --dsn "$dsn" --all &&
	expect_out '^hold 2 released .*release_reason="closed"' "hold list --all"
run 1 "hold remove twice" -- hold remove 2 --dsn "$dsn" --reason "again" && ok

sleep 2 # n1's class 'short' keeps records 1 second
sql "SELECT count(*) FROM impolicy.stanza WHERE node = 'n1' AND from_bare <> 'carol@acme.example'"
alice=$(cat "$tmp/q")
sql "SELECT count(*) FROM impolicy.stanza WHERE node = 'n1' AND from_bare = 'carol@acme.example'"
carol=$(cat "$tmp/q")
run 0 "purge --dry-run" -- purge --dsn "$dsn" --dry-run &&
	expect_out "^dry run: $alice record\\(s\\) would be purged; $carol past retention kept by legal holds" "dry run counts"
if grep -q "carol" "$tmp/out"; then bad "dry run lists nothing held"; else ok; fi
sql "SELECT count(*) FROM impolicy.stanza WHERE node = 'n1'"
eq "dry run removed nothing" "$(cat "$tmp/q")" "$n1"
run 0 "purge" -- purge --dsn "$dsn" --key-file "$tmp/key" --key-id k1 &&
	expect_out "^purge [0-9]+: removed $alice record\\(s\\)" "purge count" &&
	expect_out "^checkpoint [0-9]+: node n1 .*, signed" "checkpoint signed"
sql "SELECT count(*), count(*) FILTER (WHERE from_bare = 'carol@acme.example') FROM impolicy.stanza WHERE node = 'n1'"
eq "only held records remain" "$(cat "$tmp/q")" "$carol|$carol"
sql "SELECT count(*) FROM impolicy.purged_record WHERE node = 'n1'"
eq "purged_record rows" "$(cat "$tmp/q")" "$alice"
sql "SELECT string_agg(action, ',' ORDER BY audit_id) FROM impolicy.audit_log WHERE action IN ('hold.add', 'hold.release', 'purge', 'checkpoint.sign')"
eq "audit trail" "$(cat "$tmp/q")" "hold.add,hold.add,hold.release,purge,checkpoint.sign"
run 0 "verify n1 after purge (checkpoint bridges the gaps)" -- verify \
	--dsn "$dsn" --node n1 --key-file "$tmp/key" &&
	expect_err "intact: 1 node\\(s\\), $carol record\\(s\\), $alice purged, 1 checkpoint" "verify after purge"
run 1 "verify n1 after purge, wrong key" -- verify --dsn "$dsn" --node n1 \
	--key-file "$tmp/badkey" &&
	expect_out "^n1 seq [0-9]+-[0-9]+: checkpoint: .*signature" "bad checkpoint signature named"
# A purge without a key leaves an unsigned checkpoint, which verify reports.
run 0 "hold remove 1" -- hold remove 1 --dsn "$dsn" --reason "matter closed" && ok
# Least privilege: an impolicy_admin login can dry-run and purge (it cannot
# read stanzas, so the dry run omits the held count).
sql "CREATE ROLE imp_test_admin LOGIN; GRANT impolicy_admin TO imp_test_admin" ||
	bad "CREATE ROLE: $(cat "$tmp/qerr")"
adsn="host=$IMP_PG_DIR port=$IMP_PG_PORT user=imp_test_admin dbname=$db"
run 0 "purge --dry-run as admin" -- purge --dsn "$adsn" --dry-run &&
	expect_out "^dry run: $carol record\\(s\\) would be purged\$" "admin dry run"
run 0 "purge unsigned" -- purge --dsn "$adsn" &&
	expect_err "left unsigned" "purge warns about unsigned checkpoints"
run 1 "verify reports the unsigned checkpoint" -- verify --dsn "$dsn" \
	--node n1 --key-file "$tmp/key" &&
	expect_out "^n1 seq [0-9]+-[0-9]+: checkpoint: .*not signed" "unsigned checkpoint named"
sql "SELECT count(*) FROM impolicy.stanza WHERE node = 'n1'"
eq "n1 empty after the hold was released" "$(cat "$tmp/q")" 0

# ---- usage -----------------------------------------------------------------------
run 64 "verify bad --from" -- verify --dsn "$dsn" --from yesterday && ok
run 64 "purge bad --limit" -- purge --dsn "$dsn" --limit -3 && ok
run 64 "verify unknown option" -- verify --dsn "$dsn" --bogus && ok
env -u IMPOLICY_DSN "$ctl" verify >"$tmp/out" 2>"$tmp/err"
if [ $? -ne 0 ] && grep -q "IMPOLICY_DSN" "$tmp/err"; then ok; else bad "verify without a DSN"; fi
# Passwords never appear in messages.
run 3 "password not shown" -- verify --dsn "host=127.0.0.1 port=$IMP_PG_PORT user=nobody password=s3cr3t-pw dbname=x"
if grep -q "s3cr3t-pw" "$tmp/err" "$tmp/out"; then bad "password printed"; else ok; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
