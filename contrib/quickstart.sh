#!/bin/sh
# contrib/quickstart.sh -- mod_impolicy's one-command quick start.
#
#   sudo sh contrib/quickstart.sh start|stop|status
#
# start   on a fresh Debian 12, from a clone of the repository: installs the
#         dependencies (scripts/install-deps.sh), builds impolicyctl and
#         mod_impolicy.so (build/quickstart, Release), starts a private
#         PostgreSQL 15 cluster (var/quickstart/pg) holding the compliance
#         archive, and jabberd2 (router, sm with mod_impolicy and the sample
#         policy contrib/policies/acme.yaml, c2s with STARTTLS on a
#         self-signed certificate) on 127.0.0.1 for the domain acme.example,
#         with demo users whose passwords are in var/quickstart/users.
#         Prints how to connect and where to look.  Idempotent: when
#         everything already runs it says so and exits 0.
# stop    stops jabberd2 and PostgreSQL (by PID).  The state under
#         var/quickstart (archive, users, spool) stays; `rm -rf
#         var/quickstart` after stop starts from scratch.
# status  what runs, and the archive's status.
#
# Environment: IMPOLICY_C2S_PORT (5222), IMPOLICY_ROUTER_PORT (5347),
# IMPOLICY_PG_PORT (55432) -- all on 127.0.0.1 only.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

state=$top/var/quickstart
build=$top/build/quickstart
ctl=$build/impolicyctl
module=$build/mod_impolicy.so
policy=$top/contrib/policies/acme.yaml
domain=acme.example
node=quickstart
users="alice bob compliance general.counsel"

c2s_port=${IMPOLICY_C2S_PORT:-5222}
router_port=${IMPOLICY_ROUTER_PORT:-5347}
pg_port=${IMPOLICY_PG_PORT:-55432}

IMP_PG_DIR=$state/pg
IMP_PG_PORT=$pg_port
IMP_J2_DIR=$state/xmpp
IMP_J2_DOMAIN=$domain
IMP_J2_C2S_PORT=$c2s_port
IMP_J2_ROUTER_PORT=$router_port
export IMP_PG_DIR IMP_PG_PORT IMP_J2_DIR IMP_J2_DOMAIN IMP_J2_C2S_PORT \
	IMP_J2_ROUTER_PORT

die() {
	echo "quickstart: $*" >&2
	exit 1
}

for p in "$c2s_port" "$router_port" "$pg_port"; do
	case $p in
	'' | *[!0-9]*) die "ports must be numbers: '$p'" ;;
	esac
done
# Paths go into sm.xml.
case $top in
*[\&\<\>\'\"@]*) die "the checkout's path has one of & < > ' \" @: $top" ;;
esac

j2() {
	sh "$top/scripts/j2-stack.sh" "$@"
}

pg() {
	sh "$top/scripts/pg-cluster.sh" "$@"
}

# Superuser DSN over the cluster's private Unix socket (root or the
# postgres OS user only).
admin_dsn="host=$state/pg port=$pg_port user=postgres dbname=postgres"

psql_admin() {
	pg psql -X -q -v ON_ERROR_STOP=1 "$@"
}

random_pw() {
	od -An -N12 -tx1 /dev/urandom | tr -d ' \n'
}

# Create login role $1 (member of $2) or reset its password to $3.
# Identifiers are fixed; the password goes through psql's literal quoting.
login_role() {
	psql_admin -v role="$1" -v grp="$2" -v pw="$3" <<'EOF'
SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') AS have \gset
\if :have
ALTER ROLE :"role" LOGIN PASSWORD :'pw';
\else
CREATE ROLE :"role" LOGIN PASSWORD :'pw';
\endif
GRANT :"grp" TO :"role";
EOF
}

# Write $1 (mode 0600) from stdin.
write_secret() {
	(umask 077 && cat >"$1.tmp") && mv "$1.tmp" "$1"
}

running() {
	j2 status >/dev/null 2>&1 && pg status >/dev/null 2>&1
}

print_info() {
	if [ -f "$state/etc/reviewer.dsn" ]; then
		reviewer="
  As the reviewer role (audited review functions only):
    psql \"\$(cat $state/etc/reviewer.dsn)\" -c 'SELECT * FROM impolicy.review_queue()'"
	else
		reviewer=""
	fi
	cat <<EOF

mod_impolicy quick start is running.

Connect with any XMPP client (Gajim, Conversations, Dino, Profanity, ...):
  server 127.0.0.1, port $c2s_port (STARTTLS with a self-signed
  certificate for $domain: trust it when the client asks; its copy is
  $state/xmpp/etc/c2s.crt), or plain without TLS.
  Accounts ("JID password" lines, mode 0600): $state/users
    $(cut -d' ' -f1 "$state/users" | tr '\n' ' ')

Try, between alice and bob:
  - a card number: "my card is 4556 7375 8689 9855" -> refused with a
    policy-violation error and an explanation from $domain (well-known
    test numbers such as 4111 1111 1111 1111 are deliberately let through);
  - profanity -> delivered with the words masked; the original is archived;
  - log in as compliance@$domain to receive the compliance notifications;
  - talk with general.counsel@$domain (privileged, legal counsel).
  The policy is $policy; edit it and the module reloads it within a second
  (check it first: $ctl check $policy).

The archive (PostgreSQL 15 on the private socket $state/pg, port $pg_port):
  psql "$admin_dsn" \\
    -c 'SELECT ts, kind, verdict, rule_ids, from_full, to_full, body FROM impolicy.stanza ORDER BY ts DESC LIMIT 20'
  $ctl verify --dsn "$admin_dsn"
  $ctl archive-status --dsn "$admin_dsn" --spool-dir $state/spool$reviewer
  $ctl archive-status --spool-dir $state/spool --node $node   (the running module's counters)
  (psql is /usr/lib/postgresql/15/bin/psql, or: sh scripts/pg-cluster.sh psql
   with IMP_PG_DIR=$state/pg IMP_PG_PORT=$pg_port)

Logs: $state/xmpp/log/{router,sm,c2s}.log  (sh scripts/j2-stack.sh log with
  IMP_J2_DIR=$state/xmpp)
Status: sh contrib/quickstart.sh status
Stop:   sh contrib/quickstart.sh stop
EOF
}

do_start() {
	if running; then
		echo "quickstart: already running"
		print_info
		return 0
	fi

	sh scripts/install-deps.sh
	echo "quickstart: building impolicyctl and mod_impolicy.so in $build"
	mkdir -p "$build"
	if ! {
		cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DIMP_TESTS=OFF \
			-DIMP_BENCH=OFF &&
			cmake --build "$build" -j"${IMP_JOBS:-2}" \
				--target impolicyctl mod_impolicy
	} >"$build/quickstart-build.log" 2>&1; then
		tail -n 40 "$build/quickstart-build.log" >&2
		die "the build failed, see $build/quickstart-build.log"
	fi
	"$ctl" check "$policy"

	# The PostgreSQL server runs as `postgres` when we are root: it must
	# be able to reach var/quickstart/pg.
	mkdir -p "$state/etc" "$state/spool"
	chmod 0755 "$top/var" "$state"
	chmod 0700 "$state/etc" "$state/spool"

	echo "quickstart: starting PostgreSQL on $state/pg, 127.0.0.1:$pg_port"
	pg start >/dev/null
	"$ctl" db init --dsn "$admin_dsn"

	# The module's login role: impolicy_writer only (INSERT, no SELECT).
	# Made once; the password lives in the DSN file only.
	if [ ! -s "$state/etc/dsn" ]; then
		pw=$(random_pw)
		login_role impolicy_sm impolicy_writer "$pw"
		echo "host=127.0.0.1 port=$pg_port dbname=postgres user=impolicy_sm password=$pw" |
			write_secret "$state/etc/dsn"
	fi
	# A reviewer login for the audited review functions.
	if [ ! -s "$state/etc/reviewer.dsn" ]; then
		pw=$(random_pw)
		login_role impolicy_review impolicy_reviewer "$pw"
		echo "host=127.0.0.1 port=$pg_port dbname=postgres user=impolicy_review password=$pw" |
			write_secret "$state/etc/reviewer.dsn"
	fi

	# Demo users: passwords made once, kept across restarts.
	if [ ! -s "$state/users" ]; then
		for u in $users; do
			echo "$u@$domain $(random_pw)"
		done | write_secret "$state/users"
	fi
	# shellcheck disable=SC2046
	j2 adduser $(cat "$state/users")

	# A partly running stack (e.g. after a crash) is stopped first.
	j2 stop

	newnode=""
	[ -f "$state/etc/node-created" ] || newnode="
      <new-node/>"
	echo "quickstart: starting jabberd2 for $domain on 127.0.0.1:$c2s_port"
	IMP_J2_MODULE=$module IMP_J2_TLS=1 IMP_J2_IMPOLICY_XML="    <policy>$policy</policy>
    <local-domain>$domain</local-domain>
    <reload-interval>1</reload-interval>
    <on-load-failure>closed</on-load-failure>
    <notify><jid>compliance@$domain</jid></notify>
    <archive>
      <dsn-file>$state/etc/dsn</dsn-file>
      <node>$node</node>
      <spool-dir>$state/spool</spool-dir>
      <durability>strict</durability>
      <on-failure>closed</on-failure>$newnode
    </archive>" j2 start ||
		die "jabberd2 did not start (ports $c2s_port/$router_port in use? set IMPOLICY_C2S_PORT / IMPOLICY_ROUTER_PORT)"
	: >"$state/etc/node-created"
	print_info
}

do_stop() {
	j2 stop
	pg stop
	echo "quickstart: stopped (state kept in $state)"
}

do_status() {
	rc=0
	j2 status || rc=$?
	pg status || rc=$?
	if [ -x "$ctl" ] && pg status >/dev/null 2>&1; then
		echo
		"$ctl" archive-status --dsn "$admin_dsn" --spool-dir "$state/spool" ||
			rc=$?
	fi
	if [ -x "$ctl" ]; then
		echo "The running module's writer (status file):"
		"$ctl" archive-status --spool-dir "$state/spool" --node "$node" ||
			rc=$?
	fi
	return $rc
}

cmd=${1:-}
case $cmd in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 64
	;;
esac
