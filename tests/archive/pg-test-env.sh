# tests/archive/pg-test-env.sh -- sourced by the archive test scripts: a
# private PostgreSQL 15 cluster for one test run.
#
#   src=/path/to/checkout; . "$src/tests/archive/pg-test-env.sh"
#   pg_test_start NAME      # sets tmp, bin, IMP_PG_DIR, IMP_PG_PORT
#
# pg_test_start makes a temporary directory, starts a cluster in it through
# scripts/pg-cluster.sh on a random loopback port (a collision only costs a
# retry; IMP_TEST_PG_PORT_BASE=N picks it among N..N+99 instead) and installs an EXIT trap that stops the cluster and removes the
# directory on every exit.  It exits the calling script with status 1 when
# PostgreSQL is missing or will not start: a test that needs a server it
# cannot start fails loudly.  A background watcher does the same cleanup
# if the script is killed with SIGKILL (ctest's timeout), which no trap
# sees: it polls for the script's process and, once it is gone, stops the
# cluster.

pg_test_start() {
	bin=${IMP_PG_BIN:-/usr/lib/postgresql/15/bin}
	if [ ! -x "$bin/initdb" ]; then
		echo "$1: no PostgreSQL 15 in $bin (scripts/install-deps.sh)" >&2
		exit 1
	fi
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/imp-$1.XXXXXX") || exit 1
	# Run as root, the server runs as `postgres`, which must reach
	# $tmp/pg (itself 0700 and owned by the server's user).
	chmod 0755 "$tmp"
	IMP_PG_DIR="$tmp/pg"
	export IMP_PG_DIR
	trap pg_test_cleanup EXIT
	trap 'exit 2' INT TERM HUP
	_pg_owner=$$
	(
		trap '' INT TERM HUP
		while kill -0 "$_pg_owner" 2>/dev/null; do sleep 1; done
		if [ -d "$tmp" ]; then
			sh "$src/scripts/pg-cluster.sh" stop
			rm -rf "$tmp"
		fi
	) </dev/null >/dev/null 2>&1 &
	_pg_watcher=$!
	_pg_started=""
	for _ in 1 2 3 4 5 6; do
		_r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
		if [ -n "${IMP_TEST_PG_PORT_BASE:-}" ]; then
			IMP_PG_PORT=$((IMP_TEST_PG_PORT_BASE + _r % 100))
		else
			IMP_PG_PORT=$((20000 + _r % 30000))
		fi
		export IMP_PG_PORT
		if sh "$src/scripts/pg-cluster.sh" start >"$tmp/start.out" 2>&1; then
			_pg_started=yes
			break
		fi
	done
	if [ -z "$_pg_started" ]; then
		echo "$1: could not start PostgreSQL:" >&2
		cat "$tmp/start.out" "$IMP_PG_DIR/server.log" >&2 2>/dev/null
		exit 1
	fi
}

pg_test_cleanup() {
	sh "$src/scripts/pg-cluster.sh" stop >/dev/null 2>&1
	rm -rf "$tmp"
	[ -z "${_pg_watcher:-}" ] || kill "$_pg_watcher" 2>/dev/null || :
}
