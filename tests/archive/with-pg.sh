#!/bin/sh
# tests/archive/with-pg.sh -- runs a test program against a private,
# freshly initialised PostgreSQL 15 cluster with the archive schema.
#
#   sh with-pg.sh SRCDIR PROGRAM [ARGS...]
#
# Starts a cluster through scripts/pg-cluster.sh in a temporary directory on
# a random free port, creates a database, applies mod_impolicy/sql/NNN_*.sql
# in order (each in one transaction) as the superuser, creates a login role
# that is only a member of impolicy_writer, then runs PROGRAM with:
#   IMP_TEST_DSN          the writer's DSN (least privilege, as the module)
#   IMP_TEST_ADMIN_DSN    the superuser's DSN (assertions)
#   IMP_TEST_PGCTL_STOP   shell command that stops the server (fast)
#   IMP_TEST_PGCTL_START  shell command that starts it again
#   IMP_TEST_TMP          a scratch directory (spools), removed afterwards
# The cluster is stopped and the directory removed on every exit.  Exits
# with PROGRAM's status (1 when the cluster cannot be set up).
set -u

if [ $# -lt 2 ]; then
	echo "usage: sh with-pg.sh SRCDIR PROGRAM [ARGS...]" >&2
	exit 64
fi
src=$(cd "$1" && pwd) || exit 64
shift
. "$src/tests/archive/pg-test-env.sh"
pg_test_start writer

db=imp_writer_test
psql_su() {
	"$bin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$IMP_PG_DIR" \
		-p "$IMP_PG_PORT" -U postgres "$@"
}
psql_su -d postgres -c "CREATE DATABASE $db" >/dev/null || exit 1
for f in "$src"/mod_impolicy/sql/[0-9][0-9][0-9]_*.sql; do
	psql_su -d "$db" -1 -f "$f" >"$tmp/apply.out" 2>&1 || {
		echo "with-pg: $f failed:" >&2
		cat "$tmp/apply.out" >&2
		exit 1
	}
done
psql_su -d "$db" -c "CREATE ROLE imp_test_writer LOGIN;
	GRANT impolicy_writer TO imp_test_writer;" >/dev/null || exit 1

IMP_TEST_DSN="host=$IMP_PG_DIR port=$IMP_PG_PORT dbname=$db user=imp_test_writer"
IMP_TEST_ADMIN_DSN="host=$IMP_PG_DIR port=$IMP_PG_PORT dbname=$db user=postgres"
IMP_TEST_PGCTL_STOP="sh '$src/scripts/pg-cluster.sh' stop >/dev/null 2>&1"
IMP_TEST_PGCTL_START="sh '$src/scripts/pg-cluster.sh' start >/dev/null"
IMP_TEST_TMP=$tmp
export IMP_TEST_DSN IMP_TEST_ADMIN_DSN IMP_TEST_PGCTL_STOP \
	IMP_TEST_PGCTL_START IMP_TEST_TMP
"$@"
