#!/bin/sh
# scripts/pg-cluster.sh -- a private PostgreSQL 15 cluster for development and
# the archive tests.
#
#   sh scripts/pg-cluster.sh start|stop|status|psql [psql args...]|dsn
#
# Environment:
#   IMP_PG_DIR   cluster directory (default: build/pg in the checkout).  Holds
#                data/ (PGDATA), the Unix socket and server.log.
#   IMP_PG_PORT  port (default 54329).  The server listens on the Unix socket
#                in IMP_PG_DIR and on 127.0.0.1 only -- never on other
#                interfaces.
#   IMP_PG_BIN   PostgreSQL binaries (default /usr/lib/postgresql/15/bin).
#
# Contract: every command is idempotent (start on a running cluster, stop on a
# stopped one are no-ops that succeed).  `stop` stops the server by the PID in
# its postmaster.pid (SIGINT = fast shutdown) and waits for it to exit.
# initdb refuses to run as root, so when invoked as root the directory is
# given to the `postgres` OS user and the server runs as that user.
# Authentication: trust on the Unix socket, which lives in a 0700 directory
# only the server's OS user (and root) can enter; scram-sha-256 on 127.0.0.1,
# where no role has a password unless someone sets one.
# `start` and `dsn` print the libpq DSN to use on stdout.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
dir=${IMP_PG_DIR:-$top/build/pg}
port=${IMP_PG_PORT:-54329}
bin=${IMP_PG_BIN:-/usr/lib/postgresql/15/bin}
data=$dir/data
log=$dir/server.log

die() {
	echo "pg-cluster: $*" >&2
	exit 1
}

case $port in
'' | *[!0-9]*) die "IMP_PG_PORT must be a number: $port" ;;
esac
[ -x "$bin/initdb" ] || die "no $bin/initdb (install postgresql-15)"

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data=$dir/data
log=$dir/server.log

# Run a command as the cluster's OS user.
if [ "$(id -u)" = 0 ]; then
	pguser=postgres
	id "$pguser" >/dev/null 2>&1 || die "running as root needs a 'postgres' OS user"
	as_pg() {
		runuser -u "$pguser" -- "$@"
	}
else
	pguser=$(id -un)
	as_pg() {
		"$@"
	}
fi

dsn() {
	echo "host=$dir port=$port user=postgres dbname=postgres"
}

# PID of a live postmaster for this data directory, or nothing.
live_pid() {
	[ -f "$data/postmaster.pid" ] || return 0
	pid=$(head -n 1 "$data/postmaster.pid")
	case $pid in '' | *[!0-9]*) return 0 ;; esac
	kill -0 "$pid" 2>/dev/null || return 0
	# A stale pid file whose PID now belongs to another program must not
	# make `stop` signal that program.
	if [ -r "/proc/$pid/comm" ]; then
		case $(cat "/proc/$pid/comm") in
		postgres* | postmaster*) ;;
		*) return 0 ;;
		esac
	fi
	echo "$pid"
}

do_init() {
	[ -f "$data/PG_VERSION" ] && return 0
	if [ "$(id -u)" = 0 ]; then
		chown "$pguser" "$dir"
		as_pg test -w "$dir" ||
			die "$pguser cannot reach $dir (a parent directory is not searchable)"
	fi
	chmod 0700 "$dir"
	as_pg "$bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C \
		--auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 ||
		die "initdb failed, see $dir/initdb.log"
	# Our settings win over initdb's because they come last.
	cat >>"$data/postgresql.conf" <<EOF

# --- pg-cluster.sh: private test cluster ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
unix_socket_permissions = 0700
fsync = on
log_min_messages = warning
EOF
}

do_start() {
	do_init
	if [ -n "$(live_pid)" ]; then
		echo "pg-cluster: already running (pid $(live_pid))" >&2
		dsn
		return 0
	fi
	if [ "$(id -u)" = 0 ]; then
		chown -R "$pguser" "$dir"
	fi
	as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
		-o "-p $port -k $dir -h 127.0.0.1" start >/dev/null ||
		die "server did not start, see $log"
	dsn
}

do_stop() {
	pid=$(live_pid)
	if [ -z "$pid" ]; then
		echo "pg-cluster: not running" >&2
		return 0
	fi
	kill -INT "$pid" 2>/dev/null || true
	i=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le 300 ] || die "pid $pid did not stop within 30 s"
		sleep 0.1
	done
	echo "pg-cluster: stopped (pid $pid)" >&2
}

do_status() {
	pid=$(live_pid)
	if [ -n "$pid" ]; then
		echo "pg-cluster: running (pid $pid) in $dir"
		dsn
	else
		echo "pg-cluster: not running ($dir)"
		return 3
	fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
dsn) dsn ;;
psql)
	[ -n "$(live_pid)" ] || die "not running; run: $0 start"
	# Through the environment, so that -d DB or a DSN argument still works.
	PGHOST=$dir PGPORT=$port PGUSER=${PGUSER:-postgres} PGDATABASE=${PGDATABASE:-postgres}
	export PGHOST PGPORT PGUSER PGDATABASE
	exec "$bin/psql" "$@"
	;;
*)
	echo "usage: $0 start|stop|status|psql [args]|dsn" >&2
	exit 64
	;;
esac
