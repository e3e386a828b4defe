#!/bin/sh
# tests/archive/run.sh -- the PostgreSQL compliance archive schema, tested
# against a real PostgreSQL 15.
#
#   sh run.sh SRCDIR
#
# Starts a private cluster in a temporary directory through
# scripts/pg-cluster.sh (random free port, Unix socket in that directory),
# applies mod_impolicy/sql/NNN_*.sql in order, each in one transaction, the
# way `impolicyctl db init|upgrade` will, and asserts with psql: role
# privileges, append-only triggers, partitions, idempotent replay, purge
# with retention, holds, checkpoints and audit rows, the hash-chain encoding
# (pinned byte for byte against docs/archive.md) and verify's reports, and
# byte-exact round trips of hostile content.  The cluster is stopped and the
# directory removed on every exit.  Prints "N passed, N failed"; exits
# non-zero on any failure.  Needs sh, awk, od, tr, and PostgreSQL 15.
set -u

if [ $# -ne 1 ]; then
	echo "usage: sh run.sh SRCDIR" >&2
	exit 64
fi
src=$(cd "$1" && pwd) || exit 64
. "$src/tests/archive/pg-test-env.sh"
pg_test_start archive

db=imp_archive_test
pass=0
fail=0

# q ROLE [psql args...]: runs the SQL on stdin as ROLE (stdin rather than
# -c so that psql variables such as :'v' are interpolated with quoting);
# output in $tmp/out, errors in $tmp/err.
q() {
	role=$1
	shift
	"$bin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$IMP_PG_DIR" \
		-p "$IMP_PG_PORT" -d "$db" -U "$role" "$@" >"$tmp/out" 2>"$tmp/err"
}
# qs ROLE SQL [psql args...]
qs() {
	role=$1 sql=$2
	shift 2
	printf '%s\n' "$sql" | q "$role" "$@" -f -
}
ok() { pass=$((pass + 1)); }
bad() {
	fail=$((fail + 1))
	echo "FAIL: $*"
	sed 's/^/  out: /' "$tmp/out" | head -n 20
	sed 's/^/  err: /' "$tmp/err" | head -n 20
}
# expect_ok NAME ROLE SQL [psql args]
expect_ok() {
	name=$1 role=$2 sql=$3
	shift 3
	if qs "$role" "$sql" "$@"; then ok; else bad "$name: expected success"; fi
}
# expect_fail NAME ROLE SQL PATTERN [psql args]: fails with PATTERN in stderr
expect_fail() {
	name=$1 role=$2 sql=$3 pat=$4
	shift 4
	if qs "$role" "$sql" "$@"; then
		bad "$name: expected failure ($pat)"
	elif grep -q -- "$pat" "$tmp/err"; then
		ok
	else
		bad "$name: failed, but not with '$pat'"
	fi
}
# expect_eq NAME ROLE SQL EXPECTED [psql args]: output equals EXPECTED
expect_eq() {
	name=$1 role=$2 sql=$3 want=$4
	shift 4
	if ! qs "$role" "$sql" "$@"; then
		bad "$name: query failed"
	elif [ "$(cat "$tmp/out")" = "$want" ]; then
		ok
	else
		bad "$name: want '$want'"
	fi
}
hex() { od -An -v -tx1 | tr -d ' \n'; }
# text item of the canonical encoding: 4-byte big-endian length + bytes
item() {
	h=$(printf '%s' "$1" | hex)
	printf '%08x%s' $((${#h} / 2)) "$h"
}

# ---- create the database and apply the schema scripts ---------------------
expect_ok "create database" postgres "CREATE DATABASE $db" -d postgres
expect_fail "001 refuses to run outside one transaction" postgres \
	"\\i $src/mod_impolicy/sql/001_init.sql" "in one transaction"
expect_eq "... and left nothing behind" postgres \
	"SELECT count(*) FROM pg_namespace WHERE nspname = 'impolicy'" "0"

# The upgrade mechanism: every NNN_*.sql not yet in schema_version, in
# order, each in one transaction.
apply_all() {
	for f in "$src"/mod_impolicy/sql/[0-9][0-9][0-9]_*.sql; do
		n=$(basename "$f" | sed 's/_.*//' | sed 's/^0*//')
		qs postgres "SELECT 1 FROM impolicy.schema_version WHERE version = $n"
		if [ "$(cat "$tmp/out")" = 1 ]; then
			continue
		fi
		q postgres -1 -f "$f" || return 1
	done
}
if apply_all; then ok; else bad "schema scripts apply"; fi
if apply_all; then ok; else bad "second apply is a no-op"; fi
expect_eq "schema_version" postgres \
	"SELECT string_agg(version::text, ',' ORDER BY version) FROM impolicy.schema_version" "1"
expect_fail "001 refuses to run twice" postgres "\\i $src/mod_impolicy/sql/001_init.sql" \
	'schema "impolicy" already exists' -1

# Login roles for the tests, one per group, and one with no rights at all.
expect_ok "login roles" postgres "
	CREATE ROLE w LOGIN; GRANT impolicy_writer TO w;
	CREATE ROLE r LOGIN; GRANT impolicy_reviewer TO r;
	CREATE ROLE a LOGIN; GRANT impolicy_admin TO a;
	CREATE ROLE nobody LOGIN;"
# Records that must outlive every purge in this test, whatever today's date.
expect_ok "a long retention class for the test" postgres \
	"INSERT INTO impolicy.retention_class VALUES ('keep99', '99 years', 'test')"

# ---- partitions -------------------------------------------------------------
expect_eq "init created monthly partitions around now" postgres "
	SELECT count(*) >= 5 AND
	       bool_or(c.relname = 'stanza_y' || to_char(now() AT TIME ZONE 'UTC', 'YYYY\"m\"MM'))
	FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	WHERE i.inhparent = 'impolicy.stanza'::regclass" "t"
expect_eq "writer creates partitions ahead" w \
	"SELECT impolicy.ensure_partitions('2017-11-03Z', '2018-06-30Z')" "8"
expect_eq "ensure_partitions is idempotent" w \
	"SELECT impolicy.ensure_partitions('2017-11-03Z', '2018-06-30Z')" "0"
expect_ok "admin creates more" a \
	"SELECT impolicy.ensure_partitions('2019-12-01Z', '2020-03-01Z')"
expect_eq "partition bounds are UTC months" postgres "
	SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c
	WHERE c.relname = 'stanza_y2018m03'" \
	"FOR VALUES FROM ('2018-03-01 00:00:00+00') TO ('2018-04-01 00:00:00+00')"
expect_fail "ensure_partitions refuses huge ranges" w \
	"SELECT impolicy.ensure_partitions('1000-01-01Z', '2200-01-01Z')" "more than 1200 months"

# ---- writer -------------------------------------------------------------------
zero=0000000000000000000000000000000000000000000000000000000000000000
cols="node, seq, ts, direction, kind, stanza_type,
	from_bare, from_full, to_bare, to_full, thread, conv_key, body, raw_xml,
	verdict, rule_ids, sections, policy_digest, retention_class, hash_alg,
	prev_hash, rec_hash"
ins="INSERT INTO impolicy.stanza ($cols)"
insk="INSERT INTO impolicy.stanza ($cols, key_id)"
w1="$ins VALUES ('wnode', 1, '2026-11-25 10:00:00.123456Z', 'outbound',
	'message', 'chat', 'alice@acme.example', 'alice@acme.example/pc',
	'bob@acme.example', 'bob@acme.example/phone', 'th1', 'conv-ab',
	'hello', convert_to('<message/>', 'UTF8'), 'flag',
	'{acceptable-use.language}', '{\"1. Acceptable Use\"}',
	sha256('policy'), 'keep99', 'sha256', '\\x$zero', sha256('r1'))
	ON CONFLICT DO NOTHING"
expect_eq "writer inserts a stanza" w "$w1" ""
expect_eq "replay by (node, seq) is a no-op" w "$w1" ""
expect_eq "a replay that differs is still dropped" w "$ins VALUES ('wnode', 1,
	'2026-11-25 10:00:00.123456Z', 'outbound', 'message', 'chat', NULL, NULL,
	NULL, NULL, NULL, NULL, 'other', '\\x00', 'allow', '{}', '{}', NULL, 'keep99',
	'sha256', '\\x$zero', sha256('r1')) ON CONFLICT DO NOTHING" ""
expect_fail "writer has no SELECT, not even for a conflict target" w "$ins VALUES ('wnode', 1,
	'2026-11-25 10:00:00.123456Z', 'outbound', 'message', 'chat', NULL, NULL,
	NULL, NULL, NULL, NULL, 'other', '\\x00', 'allow', '{}', '{}', NULL, '3y',
	'sha256', '\\x$zero', sha256('r1'))
	ON CONFLICT (node, seq, ts) DO NOTHING" "permission denied"
expect_fail "a replay without ON CONFLICT is refused by the key" w \
	"${w1%ON CONFLICT DO NOTHING}" "duplicate key"
expect_fail "writer cannot even list sequence numbers" w \
	"SELECT seq FROM impolicy.stanza" "permission denied"
expect_eq "one row after replays, the first one" postgres \
	"SELECT count(*), min(body) FROM impolicy.stanza WHERE node = 'wnode'" "1|hello"
fl="INSERT INTO impolicy.flag (node, seq, ts, ord, rule_id, section, severity)
	VALUES ('wnode', 1, '2026-11-25 10:00:00.123456Z', 0,
	'acceptable-use.language', '1. Acceptable Use', 'high')
	ON CONFLICT DO NOTHING"
expect_ok "writer inserts a flag" w "$fl"
expect_ok "flag replay" w "$fl"
expect_eq "one open flag" postgres \
	"SELECT count(*), min(state) FROM impolicy.flag WHERE node = 'wnode'" "1|open"
expect_fail "writer cannot choose a flag's state" w \
	"INSERT INTO impolicy.flag (node, seq, ts, ord, rule_id, state)
	 VALUES ('wnode', 1, now(), 1, 'x', 'dismissed')" "permission denied"
expect_fail "writer cannot UPDATE stanzas" w \
	"UPDATE impolicy.stanza SET verdict = 'allow'" "permission denied"
expect_fail "writer cannot DELETE stanzas" w \
	"DELETE FROM impolicy.stanza" "permission denied"
expect_fail "writer cannot TRUNCATE stanzas" w \
	"TRUNCATE impolicy.stanza" "permission denied"
expect_fail "writer cannot read bodies" w \
	"SELECT body FROM impolicy.stanza" "permission denied"
expect_fail "writer cannot read raw XML" w \
	"SELECT raw_xml FROM impolicy.stanza" "permission denied"
expect_fail "writer cannot read a partition" w \
	"SELECT count(*) FROM impolicy.stanza_default" "permission denied"
expect_fail "writer cannot UPDATE flags" w \
	"UPDATE impolicy.flag SET state = 'dismissed'" "permission denied"
expect_fail "writer cannot DELETE flags" w \
	"DELETE FROM impolicy.flag" "permission denied"
expect_fail "writer cannot read flags" w \
	"SELECT rule_id FROM impolicy.flag" "permission denied"
expect_fail "writer cannot read the audit log" w \
	"SELECT * FROM impolicy.audit_log" "permission denied"
expect_fail "writer cannot purge" w "SELECT impolicy.purge()" "permission denied"
expect_fail "writer cannot place holds" w \
	"SELECT impolicy.hold_add('x@y', NULL, NULL, NULL, 'r')" "permission denied"
expect_fail "writer cannot use review functions" w \
	"SELECT * FROM impolicy.review_stanza('wnode', 1)" "permission denied"
expect_fail "writer cannot insert into a partition directly" w \
	"INSERT INTO impolicy.stanza_default (node) VALUES ('x')" "permission denied"
expect_eq "writer reads its chain head" w \
	"SELECT seq, encode(rec_hash, 'hex') = encode(sha256('r1'), 'hex')
	 FROM impolicy.writer_chain_head('wnode')" "1|t"
expect_eq "chain head of a new node is empty" w \
	"SELECT count(*) FROM impolicy.writer_chain_head('fresh')" "0"
expect_ok "a record outside every partition is kept" w \
	"$ins VALUES ('wnode', 2, '2099-01-01Z', 'inbound', 'iq', NULL, NULL, NULL,
	NULL, NULL, NULL, NULL, NULL, '\\x00', 'allow', '{}', '{}', NULL, '7y',
	'sha256', sha256('r1'), sha256('r2'))"
expect_eq "... in the default partition" postgres \
	"SELECT count(*) FROM impolicy.stanza_default WHERE node = 'wnode'" "1"
expect_fail "the stanza table checks its fields" w \
	"$ins VALUES ('wnode', 3, now(), 'sideways', 'message', NULL, NULL, NULL,
	NULL, NULL, NULL, NULL, NULL, '\\x00', 'allow', '{}', '{}', NULL, '7y',
	'sha256', sha256('r2'), sha256('r3'))" "violates check constraint"
expect_fail "unknown retention class" w \
	"$ins VALUES ('wnode', 3, now(), 'inbound', 'message', NULL, NULL, NULL,
	NULL, NULL, NULL, NULL, NULL, '\\x00', 'allow', '{}', '{}', NULL, '99y',
	'sha256', sha256('r2'), sha256('r3'))" "foreign key"

# ---- PUBLIC has nothing -------------------------------------------------------
expect_fail "no schema usage for PUBLIC" nobody \
	"SELECT * FROM impolicy.retention_class" "permission denied for schema"
expect_fail "no function execution for PUBLIC" nobody \
	"SELECT impolicy.ensure_partitions()" "permission denied"
expect_eq "no function in the schema is executable by PUBLIC" postgres "
	SELECT count(*) FROM pg_proc p
	WHERE p.pronamespace = 'impolicy'::regnamespace
	  AND has_function_privilege('nobody', p.oid, 'EXECUTE')" "0"
expect_eq "every SECURITY DEFINER function has a fixed search_path" postgres "
	SELECT count(*) FROM pg_proc p
	WHERE p.pronamespace = 'impolicy'::regnamespace AND p.prosecdef
	  AND NOT coalesce(p.proconfig::text LIKE '%search_path=pg_catalog, impolicy, pg_temp%', false)" "0"

# ---- triggers refuse changes even for the owner and superuser ----------------
expect_fail "superuser UPDATE of a stanza is refused" postgres \
	"UPDATE impolicy.stanza SET body = 'x' WHERE node = 'wnode'" "cannot be changed"
expect_fail "owner DELETE of a stanza is refused" postgres \
	"SET ROLE impolicy_owner; DELETE FROM impolicy.stanza WHERE node = 'wnode'" \
	"can only be removed by impolicy.purge"
expect_fail "DELETE on a partition is refused" postgres \
	"DELETE FROM impolicy.stanza_default" "can only be removed by impolicy.purge"
expect_fail "TRUNCATE of the stanza table is refused" postgres \
	"TRUNCATE impolicy.stanza" "append-only"
expect_fail "TRUNCATE of a partition is refused" postgres \
	"TRUNCATE impolicy.stanza_y2018m03" "append-only"
expect_fail "TRUNCATE of the default partition is refused" postgres \
	"TRUNCATE impolicy.stanza_default" "append-only"
expect_fail "a forged purge mark does not open the purge path" postgres \
	"BEGIN; SELECT set_config('impolicy.guard', 'purge:1:' || txid_current(), true);
	 DELETE FROM impolicy.stanza WHERE node = 'wnode'; COMMIT;" \
	"can only be removed by impolicy.purge"
expect_fail "owner UPDATE of a flag is refused" postgres \
	"UPDATE impolicy.flag SET state = 'dismissed'" "record_disposition"
expect_fail "DELETE of a flag is refused" postgres \
	"DELETE FROM impolicy.flag" "can only be removed"
expect_fail "audit log is append-only (UPDATE)" postgres \
	"INSERT INTO impolicy.audit_log (action) VALUES ('t');
	 UPDATE impolicy.audit_log SET action = 'x'" "append-only"
expect_fail "audit log is append-only (DELETE)" postgres \
	"DELETE FROM impolicy.audit_log" "append-only"
expect_fail "audit log is append-only (TRUNCATE)" postgres \
	"TRUNCATE impolicy.audit_log" "append-only"
expect_fail "schema_version is append-only" postgres \
	"DELETE FROM impolicy.schema_version" "append-only"
expect_eq "nothing changed" postgres \
	"SELECT count(*), min(body) FROM impolicy.stanza WHERE node = 'wnode'" "2|hello"

# ---- hash chain: canonical encoding pinned byte for byte ----------------------
# t.put(): test helper (superuser) that chains and hashes a record the way
# the C writer will, using the reference encoding impolicy.canonical_record.
expect_ok "test helper" postgres "
CREATE SCHEMA t;
CREATE FUNCTION t.put(p_node text, p_seq bigint, p_ts timestamptz,
                      p_from text, p_to text, p_conv text, p_body text,
                      p_class text, p_raw bytea DEFAULT '\\x3c6d2f3e')
RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE
	s impolicy.stanza;
	prev bytea;
BEGIN
	SELECT h.rec_hash INTO prev FROM impolicy.writer_chain_head(p_node) h;
	s.node := p_node; s.seq := p_seq; s.ts := p_ts;
	s.direction := 'outbound'; s.kind := 'message'; s.stanza_type := 'chat';
	s.from_bare := p_from; s.from_full := p_from || '/res';
	s.to_bare := p_to; s.to_full := NULL; s.thread := 'th-' || p_seq;
	s.conv_key := p_conv; s.body := p_body; s.raw_xml := p_raw;
	s.verdict := 'flag'; s.rule_ids := '{r.one,r.two}'; s.sections := '{\"§1\",\"\"}';
	s.policy_digest := NULL; s.retention_class := p_class;
	s.hash_alg := 'sha256'; s.key_id := NULL;
	s.prev_hash := coalesce(prev, '\\x$zero'::bytea);
	s.stored_at := now();
	s.rec_hash := sha256(impolicy.canonical_record(s));
	INSERT INTO impolicy.stanza SELECT s.*;
END
\$\$;"

expect_ok "a pinned record" postgres \
	"SELECT t.put('n0', 1, '2026-01-01 00:00:00.000002Z', 'a@x', 'b@x', 'c0', 'hé', 'keep99', '\\x00ff27')"
# Expected bytes, from docs/archive.md, built independently of the SQL.
spec="$(printf 'IMPARC01' | hex)$(item n0)"
spec="${spec}00000008$(printf '%016x' 1)00000008$(printf '%016x' 1767225600000002)"
spec="${spec}$(item outbound)$(item message)$(item chat)$(item a@x)$(item a@x/res)"
spec="${spec}$(item b@x)ffffffff$(item th-1)$(item c0)$(item 'hé')"
spec="${spec}00000003""00ff27$(item flag)"
spec="${spec}00000002$(item r.one)$(item r.two)00000002$(item '§1')00000000"
spec="${spec}ffffffff$(item keep99)$(item sha256)ffffffff00000020$zero"
expect_eq "canonical encoding matches the spec byte for byte" postgres "
	SELECT encode(impolicy.canonical_record(s), 'hex') FROM impolicy.stanza s
	WHERE node = 'n0' AND seq = 1" "$spec"
expect_eq "rec_hash is SHA-256 of the encoding" postgres "
	SELECT rec_hash = sha256(decode('$spec', 'hex')) FROM impolicy.stanza
	WHERE node = 'n0' AND seq = 1" "t"
# The same bytes hashed outside PostgreSQL (hex -> octal escapes -> bytes).
unhex() {
	# shellcheck disable=SC2059
	printf "$(printf '%s' "$1" | awk '{
		for (i = 1; i <= length($0); i += 2) {
			d = (index("0123456789abcdef", substr($0, i, 1)) - 1) * 16
			d += index("0123456789abcdef", substr($0, i + 1, 1)) - 1
			printf "\\%03o", d
		} }')"
}
if command -v sha256sum >/dev/null 2>&1; then
	h=$(unhex "$spec" | sha256sum | cut -c1-64)
	expect_eq "rec_hash equals sha256sum of the spec bytes" postgres "
		SELECT encode(rec_hash, 'hex') FROM impolicy.stanza
		WHERE node = 'n0' AND seq = 1" "$h"
fi
if command -v openssl >/dev/null 2>&1; then
	# The keyed variant: HMAC-SHA-256(key, encoding), computed by the writer
	# outside the database (which never holds the key); checked against
	# pgcrypto in a test-only schema.
	h=$(unhex "$spec" | openssl dgst -sha256 -mac HMAC -macopt key:k1 -r | cut -c1-64)
	expect_eq "HMAC variant over the same bytes" postgres "
		CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA t;
		SELECT encode(t.hmac(decode('$spec', 'hex'), 'k1'::bytea, 'sha256'), 'hex')" "$h"
fi
expect_eq "empty and NULL arrays differ" postgres "
	SELECT encode(impolicy.enc_text_array('{}'), 'hex') || ',' ||
	       encode(impolicy.enc_text_array(NULL), 'hex') || ',' ||
	       encode(impolicy.enc_text(''), 'hex')" "00000000,ffffffff,00000000"

# ---- data for review, holds and purge ---------------------------------------------
# n1, in ts order; "purged" marks what the purge below must remove.
expect_ok "test records" postgres "
	SELECT t.put('n1', 1, '2018-01-05Z', 'alice@acme.example', 'bob@acme.example', 'c1', 'old one', '3y');   -- purged
	SELECT t.put('n1', 2, '2018-02-01Z', 'carol@acme.example', 'bob@acme.example', 'c2', 'carol', '3y');     -- user hold
	SELECT t.put('n1', 3, '2018-03-01Z', 'eve@acme.example', 'bob@acme.example', 'c-held', 'conv', '3y');   -- conversation hold
	SELECT t.put('n1', 4, '2018-04-10Z', 'eve@acme.example', 'bob@acme.example', 'c4', 'april', '3y');      -- range hold
	SELECT t.put('n1', 5, '2018-06-01Z', 'dave@acme.example', 'erin@acme.example', 'c5', 'dave', '3y');     -- hold released: purged
	SELECT t.put('n1', 6, '2020-01-01Z', 'eve@acme.example', 'bob@acme.example', 'c6', 'seven', 'keep99');  -- within retention
	SELECT t.put('n1', 7, '2020-02-01Z', 'eve@acme.example', 'bob@acme.example', 'c7', 'flagged', '3y');    -- purged with its flag
	SELECT t.put('n1', 8, now(), 'eve@acme.example', 'bob@acme.example', 'c8', 'recent', '3y');
	INSERT INTO impolicy.flag (node, seq, ts, ord, rule_id, severity)
	SELECT node, seq, ts, 0, 'r.one', 'low' FROM impolicy.stanza WHERE node = 'n1' AND seq IN (6, 7);"
expect_eq "a clean chain verifies" a "SELECT count(*) FROM impolicy.verify_chain('n1')" "0"

# ---- reviewer ------------------------------------------------------------------
audit_count() { echo "SELECT count(*) FROM impolicy.audit_log WHERE action = '$1'"; }
expect_fail "reviewer cannot SELECT stanzas" r \
	"SELECT body FROM impolicy.stanza" "permission denied"
expect_fail "reviewer cannot SELECT flags" r \
	"SELECT * FROM impolicy.flag" "permission denied"
expect_fail "reviewer cannot UPDATE flags" r \
	"UPDATE impolicy.flag SET state = 'dismissed'" "permission denied"
expect_fail "reviewer cannot read the audit log" r \
	"SELECT * FROM impolicy.audit_log" "permission denied"
expect_fail "reviewer cannot purge" r "SELECT impolicy.purge()" "permission denied"
expect_fail "reviewer cannot place holds" r \
	"SELECT impolicy.hold_add('x@y', NULL, NULL, NULL, 'r')" "permission denied"
expect_eq "review queue lists open flags, oldest first" r \
	"SELECT string_agg(node || ':' || seq || ':' || rule_id, ',')
	 FROM impolicy.review_queue('open', 10)" "n1:6:r.one,n1:7:r.one,wnode:1:acceptable-use.language"
expect_eq "review.queue audited" postgres "$(audit_count review.queue)" "1"
expect_eq "reviewer reads one stanza" r \
	"SELECT body, from_full FROM impolicy.review_stanza('n1', 2)" "carol|carol@acme.example/res"
expect_eq "review.read audited with the record and the login" postgres \
	"SELECT actor, object->>'node', object->>'seq' FROM impolicy.audit_log
	 WHERE action = 'review.read'" "r|n1|2"
expect_eq "review by user" r \
	"SELECT string_agg(seq::text, ',' ORDER BY seq) FROM impolicy.review_user(
	 'bob@acme.example', '2018-01-01Z', '2019-01-01Z')" "1,2,3,4"
expect_eq "review by conversation" r \
	"SELECT string_agg(seq::text, ',') FROM impolicy.review_conversation(
	 'c-held', '-infinity', 'infinity')" "3"
expect_eq "user and conversation reads audited" postgres \
	"SELECT count(*) FROM impolicy.audit_log
	 WHERE action IN ('review.user', 'review.conversation')" "2"
expect_eq "disposition through the audited function" r \
	"SELECT impolicy.record_disposition('n1', 6, 0::smallint, 'dismissed', 'false positive') > 0" "t"
expect_eq "flag state changed, by whom" postgres \
	"SELECT state, disposed_by FROM impolicy.flag WHERE node = 'n1' AND seq = 6" "dismissed|r"
expect_eq "disposition and audit rows" postgres "
	SELECT (SELECT count(*) FROM impolicy.disposition WHERE actor = 'r' AND note = 'false positive')
	    || ',' || ($(audit_count review.disposition))" "1,1"
expect_fail "disposition of a missing flag" r \
	"SELECT impolicy.record_disposition('n1', 99, 0::smallint, 'dismissed', '')" "no flag"
expect_fail "disposition state is checked" r \
	"SELECT impolicy.record_disposition('n1', 7, 0::smallint, 'shredded', '')" "check constraint"
expect_eq "dismissed flag left the open queue" r \
	"SELECT string_agg(node || ':' || seq, ',') FROM impolicy.review_queue()" "n1:7,wnode:1"

# ---- holds ------------------------------------------------------------------------
expect_fail "admin cannot read stanzas" a \
	"SELECT body FROM impolicy.stanza" "permission denied"
expect_ok "holds by user, conversation, time range" a "
	SELECT impolicy.hold_add('carol@acme.example', NULL, NULL, NULL, 'Matter 2026-17');
	SELECT impolicy.hold_add(NULL, 'c-held', NULL, NULL, 'Matter 2026-18');
	SELECT impolicy.hold_add(NULL, NULL, '2018-04-01Z', '2018-05-01Z', 'Audit Q2/2018');
	SELECT impolicy.hold_add('dave@acme.example', NULL, NULL, NULL, 'to be released');"
expect_fail "a hold needs a criterion" a \
	"SELECT impolicy.hold_add(NULL, NULL, NULL, NULL, 'r')" "check constraint"
expect_fail "a hold needs a reason" a \
	"SELECT impolicy.hold_add('x@y', NULL, NULL, NULL, '')" "check constraint"
expect_ok "release a hold" a "
	SELECT impolicy.hold_release(h.hold_id, 'matter closed')
	FROM impolicy.legal_hold h WHERE h.jid = 'dave@acme.example'"
expect_fail "release twice" a "
	SELECT impolicy.hold_release(h.hold_id, 'again')
	FROM impolicy.legal_hold h WHERE h.jid = 'dave@acme.example'" "no active hold"
expect_fail "holds cannot be deleted" postgres \
	"DELETE FROM impolicy.legal_hold" "audited function"
expect_fail "holds cannot be edited" postgres \
	"UPDATE impolicy.legal_hold SET released_at = now(), released_by = 'x'" "audited function"
expect_eq "hold changes audited with reason and actor" a "
	SELECT string_agg(action || '/' || actor || '/' || detail, ',' ORDER BY audit_id)
	FROM impolicy.audit_log WHERE action LIKE 'hold.%'" \
	"hold.add/a/Matter 2026-17,hold.add/a/Matter 2026-18,hold.add/a/Audit Q2/2018,hold.add/a/to be released,hold.release/a/matter closed"

# ---- purge -----------------------------------------------------------------------
expect_eq "purge" a "SELECT impolicy.purge() > 0" "t"
expect_eq "purge removed exactly the past-retention, unheld records" postgres "
	SELECT string_agg(seq::text, ',' ORDER BY seq) FROM impolicy.stanza WHERE node = 'n1'" \
	"2,3,4,6,8"
expect_eq "purge_run records the count" a \
	"SELECT removed, finished_at IS NOT NULL, actor FROM impolicy.purge_run" "3|t|a"
expect_eq "purged_record lists them with their hashes" a "
	SELECT string_agg(p.seq::text, ',' ORDER BY p.seq) FROM impolicy.purged_record p
	WHERE p.node = 'n1'" "1,5,7"
expect_eq "the purged flag went with its stanza" postgres \
	"SELECT string_agg(seq::text, ',') FROM impolicy.flag WHERE node = 'n1'" "6"
expect_eq "checkpoint per node with the spec digest" a "
	SELECT c.first_seq, c.last_seq, c.removed,
	       c.digest = sha256((SELECT string_agg(int8send(p.seq) || p.rec_hash, ''::bytea ORDER BY p.seq)
	                          FROM impolicy.purged_record p WHERE p.node = 'n1'))
	FROM impolicy.chain_checkpoint c WHERE c.node = 'n1'" "1|7|3|t"
expect_eq "purge audited" a \
	"SELECT object->>'removed', actor FROM impolicy.audit_log WHERE action = 'purge'" "3|a"
expect_eq "the remaining chain still verifies across the gaps" a \
	"SELECT count(*) FROM impolicy.verify_chain('n1')" "0"
expect_eq "chain head after a purge" w \
	"SELECT seq FROM impolicy.writer_chain_head('n1')" "8"
expect_eq "second purge removes nothing" a "
	SELECT impolicy.purge() AS pid \\gset
	SELECT removed FROM impolicy.purge_run WHERE purge_id = :pid" "0"
expect_ok "sign the checkpoint" a "
	SELECT impolicy.checkpoint_sign(c.checkpoint_id, sha256('sig'), 'k1')
	FROM impolicy.chain_checkpoint c WHERE c.node = 'n1'"
expect_fail "a checkpoint is signed once" a "
	SELECT impolicy.checkpoint_sign(c.checkpoint_id, sha256('sig2'), 'k1')
	FROM impolicy.chain_checkpoint c WHERE c.node = 'n1'" "already signed"
expect_fail "checkpoints cannot be edited" postgres \
	"UPDATE impolicy.chain_checkpoint SET digest = '\\x00'" "audited function"
expect_fail "purge records cannot be deleted" postgres \
	"DELETE FROM impolicy.purged_record" "append-only"
expect_ok "releasing the user hold" a "
	SELECT impolicy.hold_release(h.hold_id, 'done')
	FROM impolicy.legal_hold h WHERE h.jid = 'carol@acme.example'"
expect_eq "a limited purge then takes it" a "
	SELECT impolicy.purge(1) AS pid \\gset
	SELECT removed FROM impolicy.purge_run WHERE purge_id = :pid" "1"
expect_eq "n1 after the second purge" postgres "
	SELECT string_agg(seq::text, ',' ORDER BY seq) FROM impolicy.stanza WHERE node = 'n1'" \
	"3,4,6,8"
expect_ok "retention class change" a \
	"SELECT impolicy.retention_class_set('10y', '10 years', 'test')"
expect_eq "retention changes are audited" a \
	"SELECT count(*) FROM impolicy.audit_log WHERE action = 'retention.set'" "1"

# ---- verify detects tampering (by a superuser who bypasses the triggers) -----
expect_ok "tamper" postgres "
	SET session_replication_role = replica;
	UPDATE impolicy.stanza SET body = 'seven!' WHERE node = 'n1' AND seq = 6;
	DELETE FROM impolicy.stanza WHERE node = 'n1' AND seq = 3;"
expect_eq "verify reports altered and deleted records" a "
	SELECT string_agg(seq || ':' || problem, ',' ORDER BY seq, problem)
	FROM impolicy.verify_chain('n1')" "3:missing,6:altered"
expect_ok "reorder and insert" postgres "
	SELECT t.put('n2', 1, '2026-01-02Z', 'a@x', 'b@x', NULL, 'one', '3y');
	SELECT t.put('n2', 2, '2026-01-01Z', 'a@x', 'b@x', NULL, 'two', '3y');
	SELECT t.put('n2', 3, '2026-01-03Z', 'a@x', 'b@x', NULL, 'three', '3y');
	SET session_replication_role = replica;
	UPDATE impolicy.stanza SET prev_hash = sha256('forged') WHERE node = 'n2' AND seq = 3;
	INSERT INTO impolicy.stanza SELECT node, seq, ts + interval '1 second',
	       direction, kind, stanza_type, from_bare, from_full, to_bare, to_full,
	       thread, conv_key, body, raw_xml, verdict, rule_ids, sections,
	       policy_digest, retention_class, hash_alg, key_id, prev_hash, rec_hash
	FROM impolicy.stanza WHERE node = 'n2' AND seq = 1;"
expect_eq "verify reports duplicate, reordered and inserted records" a "
	SELECT string_agg(seq || ':' || problem, ',' ORDER BY seq, problem)
	FROM impolicy.verify_chain('n2')" "1:duplicate,2:reordered,3:altered,3:broken-link"

# ---- hostile content round-trips byte for byte --------------------------------------
allbytes=$(awk 'BEGIN { for (i = 0; i < 256; i++) printf "%02x", i }')
hostile="'); DROP TABLE impolicy.stanza; -- \$\$ %I %L \\ \" ; é中🙂 <b>&amp;</b>"
expect_fail "keyed records name their key" w "
	$ins VALUES ('hnode', 1, '2026-11-25 10:00:00Z', 'inbound', 'message',
	NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '\\x00', 'reject',
	'{}', '{}', NULL, '3y', 'hmac-sha256', '\\x$zero', sha256('h1'))" "check constraint"
expect_ok "writer stores hostile content" w "
	$insk VALUES ('hnode', 1, '2026-11-25 10:00:00Z', 'inbound',
	'message', :'v', :'v', :'v', :'v', :'v', :'v', :'v', :'v',
	decode('$allbytes', 'hex') || convert_to(:'v', 'UTF8'), 'reject',
	ARRAY[:'v'], ARRAY[:'v'], NULL, '3y', 'hmac-sha256',
	'\\x$zero', sha256('h1'), :'v') ON CONFLICT DO NOTHING" -v "v=$hostile"
want_raw="$allbytes$(printf '%s' "$hostile" | hex)"
expect_eq "raw XML with NUL bytes round-trips" r \
	"SELECT encode(raw_xml, 'hex') FROM impolicy.review_stanza('hnode', 1)" "$want_raw"
expect_eq "body round-trips" r \
	"SELECT body FROM impolicy.review_stanza('hnode', 1)" "$hostile"
expect_eq "JIDs, arrays and thread round-trip" r "
	SELECT from_full = :'v' AND to_full = :'v' AND thread = :'v' AND conv_key = :'v'
	       AND rule_ids = ARRAY[:'v'] AND sections = ARRAY[:'v']
	FROM impolicy.review_stanza('hnode', 1)" "t" -v "v=$hostile"
expect_eq "hostile user name in a review function" r "
	SELECT count(*) FROM impolicy.review_user(:'v', '-infinity', 'infinity')" "1" -v "v=$hostile"
expect_eq "hostile text logged verbatim in the audit" postgres "
	SELECT count(*) FROM impolicy.audit_log
	WHERE action = 'review.user' AND object->>'jid' = :'v'" "1" -v "v=$hostile"
expect_eq "the stanza table is still there" postgres \
	"SELECT to_regclass('impolicy.stanza') IS NOT NULL" "t"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
