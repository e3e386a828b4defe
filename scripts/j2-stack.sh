#!/bin/sh
# scripts/j2-stack.sh -- a private jabberd2 2.7.0 (router, sm, c2s) on
# 127.0.0.1 for the end-to-end tests, the benchmark and the quick start.
#
#   sh scripts/j2-stack.sh start|stop|status|log
#   sh scripts/j2-stack.sh adduser JID PASSWORD [JID PASSWORD ...]
#
# Environment (all optional):
#   IMP_J2_DIR           state directory (default: var/j2stack in the
#                        checkout): etc/ data/ log/ run/ mods/
#   IMP_J2_DOMAIN        the served domain (default localhost)
#   IMP_J2_C2S_PORT      client port on 127.0.0.1 (default 5222)
#   IMP_J2_ROUTER_PORT   router port on 127.0.0.1 (default 5347)
#   IMP_J2_MODULE        path of mod_impolicy.so; unset or empty: no module.
#                        Set: <module>impolicy</module> right after
#                        `validate` in in-sess and after `session` in
#                        in-router, and an <impolicy> section in sm.xml
#   IMP_J2_IMPOLICY_XML  inner XML of that <impolicy> section, verbatim
#   IMP_J2_SM_ENV        extra "VAR=value ..." environment for the sm only
#                        (split on blanks: values cannot contain spaces).
#                        A fake clock: "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/
#                        faketime/libfaketime.so.1 FAKETIME_FMT=%Y-%m-%dT%T
#                        FAKETIME=@2026-11-27T12:00:00" (package faketime)
#   IMP_J2_EXPECT_FAIL   "sm": start succeeds only if the sm EXITS during
#                        startup; prints "sm exit status: N" and the sm's
#                        log on stdout, stops the router, exits 0.
#   IMP_J2_TLS           1: a self-signed certificate for the domain in
#                        etc/c2s.pem (made once); STARTTLS offered, not
#                        required.  Default 0: no TLS.
#   IMP_J2_OFFLINE       store (default): messages to offline users are
#                        kept and delivered at their next login (stock
#                        jabberd2); drop: <dropmessages/>.
#   IMP_J2_TIMEOUT       seconds each daemon gets to come up (default 15)
#
# start   writes the configs from contrib/jabberd2/*.xml into etc/, makes
#         data/sqlite.db when absent (users persist across restarts), then
#         starts router, sm (waits for "sm ready for sessions" and, with a
#         module, for both "module 'impolicy' added to chain" lines) and
#         c2s (waits for "ready for connections").  Prints nothing unless
#         something fails; then it prints the log tails, stops what it
#         started and exits 1.  Fails when the stack already runs.
# stop    SIGTERM to c2s and sm, then the router, by the PIDs in run/ (only
#         processes whose command line names this directory's config);
#         waits until each is gone or a zombie, SIGKILL after 10 s.
#         Idempotent.
# status  one line per daemon; exit 0 if all three run, else 3.
# log     the last IMP_J2_LOG_LINES (40) lines of log/{router,sm,c2s}.log.
# adduser creates or updates users (sqlite authreg + the sm's `active`
#         row); works before start and while running.  JID: node@domain
#         with node in [a-z0-9._-] and domain the stack's domain; the
#         password: any printable characters (plain text in the database).
#
# The daemons' logs since their last start are what `start` waits on (run/
# NAME.off holds the offset).  Offline storage is on by default: a test that
# counts bodies should use fresh users (or IMP_J2_OFFLINE=drop).  Hand-run
# tested through the e2e suite (tests/e2e/, which also logs in over STARTTLS).
#
# Daemons run as the calling user, in the foreground of a background job;
# their stdout and stderr go to the same log files as their own logging.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
dir=${IMP_J2_DIR:-$top/var/j2stack}
domain=${IMP_J2_DOMAIN:-localhost}
c2s_port=${IMP_J2_C2S_PORT:-5222}
router_port=${IMP_J2_ROUTER_PORT:-5347}
module=${IMP_J2_MODULE:-}
sm_env=${IMP_J2_SM_ENV:-}
expect_fail=${IMP_J2_EXPECT_FAIL:-}
tls=${IMP_J2_TLS:-0}
offline=${IMP_J2_OFFLINE:-store}
timeout=${IMP_J2_TIMEOUT:-15}
sbin=${IMP_J2_SBIN:-/usr/sbin}
templates=$top/contrib/jabberd2
schema=/usr/share/doc/jabberd2/db-setup.sqlite.gz

die() {
	echo "j2-stack: $*" >&2
	exit 1
}

num() {
	case $2 in
	'' | *[!0-9]*) die "$1 must be a number: '$2'" ;;
	esac
}

num IMP_J2_C2S_PORT "$c2s_port"
num IMP_J2_ROUTER_PORT "$router_port"
num IMP_J2_TIMEOUT "$timeout"
case $domain in
'' | *[!a-z0-9.-]*) die "IMP_J2_DOMAIN must be lower-case [a-z0-9.-]: '$domain'" ;;
esac
case $expect_fail in
'' | sm) ;;
*) die "IMP_J2_EXPECT_FAIL must be empty or 'sm': '$expect_fail'" ;;
esac
case $tls in
0 | 1) ;;
*) die "IMP_J2_TLS must be 0 or 1: '$tls'" ;;
esac
case $offline in
store | drop) ;;
*) die "IMP_J2_OFFLINE must be store or drop: '$offline'" ;;
esac

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# Paths are pasted into XML: keep them free of markup characters.
case $dir in
*[\&\<\>\'\"@]*) die "IMP_J2_DIR contains one of & < > ' \" @: $dir" ;;
esac

libdir=${IMP_J2_LIBDIR:-}
if [ -z "$libdir" ]; then
	for d in /usr/lib/x86_64-linux-gnu/jabberd2 /usr/lib/*/jabberd2 \
		/usr/lib/jabberd2; do
		if [ -f "$d/mod_session.so" ]; then
			libdir=$d
			break
		fi
	done
	[ -n "$libdir" ] || die "no jabberd2 modules found (apt-get install jabberd2)"
fi

# Running and not a zombie (orphans are reaped slowly in some VMs).
alive() {
	[ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# PID of daemon $1 started from this directory, or nothing.  A stale PID
# that now belongs to another program does not count.
live_pid() {
	f=$dir/run/$1.pid
	[ -f "$f" ] || return 0
	p=$(cat "$f")
	case $p in '' | *[!0-9]*) return 0 ;; esac
	alive "$p" || return 0
	tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null |
		grep -qF -- "$dir/etc/$1.xml" || return 0
	echo "$p"
}

# The part of log $1 written since the daemon's last start.
since_start() {
	off=0
	[ -f "$dir/run/$1.off" ] && off=$(cat "$dir/run/$1.off")
	tail -c +$((off + 1)) "$dir/log/$1.log" 2>/dev/null || true
}

show_logs() {
	for n in router sm c2s; do
		[ -f "$dir/log/$n.log" ] || continue
		echo "== $dir/log/$n.log (since the last start, last 30 lines)"
		since_start "$n" | tail -n 30
	done
}

# Send SIGTERM to the given PIDs, wait, SIGKILL after 10 s.
terminate() {
	for p in "$@"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "$@"; do
		i=0
		while alive "$p"; do
			i=$((i + 1))
			if [ $i -eq 100 ]; then
				echo "j2-stack: pid $p ignored SIGTERM for 10 s; SIGKILL" >&2
				kill -KILL "$p" 2>/dev/null || true
			fi
			[ $i -le 150 ] || die "pid $p did not exit"
			sleep 0.1
		done
	done
}

do_stop() {
	first=""
	for n in c2s sm; do
		p=$(live_pid "$n")
		[ -z "$p" ] || first="$first $p"
	done
	# shellcheck disable=SC2086
	[ -z "$first" ] || terminate $first
	p=$(live_pid router)
	[ -z "$p" ] || terminate "$p"
	rm -f "$dir/run/router.pid" "$dir/run/sm.pid" "$dir/run/c2s.pid"
}

# Give up on start: say why, show the logs, stop what was started.
fail() {
	echo "j2-stack: $*" >&2
	show_logs >&2
	do_stop
	exit 1
}

init_db() {
	mkdir -p "$dir/data"
	[ -f "$dir/data/sqlite.db" ] && return 0
	command -v sqlite3 >/dev/null || die "sqlite3 is missing (apt-get install sqlite3)"
	[ -f "$schema" ] || die "no $schema (apt-get install jabberd2)"
	zcat "$schema" | sqlite3 -bail "$dir/data/sqlite.db.tmp" >/dev/null ||
		die "could not create the sqlite database"
	mv "$dir/data/sqlite.db.tmp" "$dir/data/sqlite.db"
}

hex() {
	printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'
}

do_adduser() {
	if [ $# -lt 2 ] || [ $(($# % 2)) -ne 0 ]; then
		die "usage: $0 adduser JID PASSWORD [JID PASSWORD ...]"
	fi
	realm=$domain
	[ -f "$dir/etc/domain" ] && realm=$(cat "$dir/etc/domain")
	init_db
	sql=".timeout 5000
BEGIN IMMEDIATE;"
	while [ $# -gt 0 ]; do
		jid=$1 pass=$2
		shift 2
		node=${jid%%@*}
		host=${jid#*@}
		case $node in
		'' | *[!a-z0-9._-]*) die "adduser: bad JID '$jid' (node must be [a-z0-9._-])" ;;
		esac
		if [ "$node@$host" != "$jid" ] || [ "$host" != "$realm" ]; then
			die "adduser: '$jid' is not node@$realm (the stack's domain)"
		fi
		[ -n "$pass" ] || die "adduser: empty password for $jid"
		case $pass in
		*[![:print:]]*) die "adduser: the password for $jid has control characters" ;;
		esac
		# Values go in as hex blob literals: nothing of them is parsed
		# as SQL.
		u="CAST(X'$(hex "$node")' AS TEXT)"
		r="CAST(X'$(hex "$realm")' AS TEXT)"
		pw="CAST(X'$(hex "$pass")' AS TEXT)"
		o="CAST(X'$(hex "$node@$realm")' AS TEXT)"
		sql="$sql
DELETE FROM authreg WHERE username = $u AND realm = $r;
INSERT INTO authreg(username, realm, password) VALUES ($u, $r, $pw);
INSERT INTO active(\"collection-owner\", \"time\")
  SELECT $o, strftime('%s', 'now')
  WHERE NOT EXISTS (SELECT 1 FROM active WHERE \"collection-owner\" = $o);"
	done
	printf '%s\nCOMMIT;\n' "$sql" | sqlite3 -bail "$dir/data/sqlite.db" >/dev/null ||
		die "adduser: sqlite3 failed"
}

# Write etc/$1 from the template, filling in the placeholders.
render() {
	J2T_DIR=$dir J2T_DOMAIN=$domain J2T_C2S_PORT=$c2s_port \
		J2T_ROUTER_PORT=$router_port J2T_SECRET=$secret J2T_LIBDIR=$libdir \
		J2T_TLS_ATTR=$tls_attr J2T_IMPOLICY_IN_SESS=$chain_line \
		J2T_IMPOLICY_IN_ROUTER=$chain_line J2T_OFFLINE=$offline_xml \
		J2T_IMPOLICY_SECTION=$section \
		awk '
		function subst(line, key, val, out, i, pat) {
			pat = "@" key "@"
			out = ""
			while ((i = index(line, pat)) > 0) {
				out = out substr(line, 1, i - 1) val
				line = substr(line, i + length(pat))
			}
			return out line
		}
		BEGIN {
			n = split("DIR DOMAIN C2S_PORT ROUTER_PORT SECRET LIBDIR TLS_ATTR", keys, " ")
		}
		{
			t = $0
			gsub(/^[ \t]+|[ \t]+$/, "", t)
			# whole-line placeholders: the value (any number of lines)
			# or nothing
			if (t ~ /^@(IMPOLICY_IN_SESS|IMPOLICY_IN_ROUTER|OFFLINE|IMPOLICY_SECTION)@$/) {
				v = ENVIRON["J2T_" substr(t, 2, length(t) - 2)]
				if (v != "")
					print v
				next
			}
			line = $0
			for (k = 1; k <= n; k++)
				line = subst(line, keys[k], ENVIRON["J2T_" keys[k]])
			print line
		}' "$templates/$1" >"$dir/etc/$1.tmp"
	mv "$dir/etc/$1.tmp" "$dir/etc/$1"
}

make_cert() {
	pem=$dir/etc/c2s.pem
	if [ -s "$pem" ] && [ "$(cat "$pem.domain" 2>/dev/null)" = "$domain" ]; then
		return 0
	fi
	command -v openssl >/dev/null || die "openssl is missing (apt-get install openssl)"
	(
		umask 077
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
			-subj "/CN=$domain" -addext "subjectAltName=DNS:$domain" \
			-keyout "$pem.key" -out "$pem.crt" >"$dir/log/openssl.log" 2>&1
	) || die "openssl could not make a certificate, see $dir/log/openssl.log"
	cat "$pem.crt" "$pem.key" >"$pem.tmp"
	chmod 0600 "$pem.tmp"
	mv "$pem.tmp" "$pem"
	rm -f "$pem.key"
	mv "$pem.crt" "$dir/etc/c2s.crt"
	echo "$domain" >"$pem.domain"
}

# Start daemon $1 in the background; its PID goes to run/$1.pid.
launch() {
	log=$dir/log/$1.log
	: >>"$log"
	wc -c <"$log" | tr -d ' ' >"$dir/run/$1.off"
	if [ "$1" = sm ]; then
		# shellcheck disable=SC2086
		env $sm_env "$sbin/jabberd2-sm" -c "$dir/etc/sm.xml" \
			</dev/null >>"$log" 2>&1 &
	else
		"$sbin/jabberd2-$1" -c "$dir/etc/$1.xml" </dev/null >>"$log" 2>&1 &
	fi
	echo $! >"$dir/run/$1.pid"
	launched=$!
}

# Wait until the log of daemon $1 (PID $2) has every line of $3
# (newline-separated fixed strings).  Fails on a line of $4 (same form),
# on the daemon's exit and after IMP_J2_TIMEOUT seconds.
await() {
	i=0
	while :; do
		new=$(since_start "$1")
		ok=1
		while IFS= read -r pat; do
			[ -n "$pat" ] || continue
			case $new in
			*"$pat"*) ;;
			*) ok=0 ;;
			esac
		done <<EOF
$3
EOF
		[ $ok = 0 ] || return 0
		while IFS= read -r pat; do
			[ -n "$pat" ] || continue
			case $new in
			*"$pat"*) fail "$1 failed to start: it logged \"$pat\"" ;;
			esac
		done <<EOF
$4
EOF
		alive "$2" || fail "$1 (pid $2) exited during startup"
		i=$((i + 1))
		[ $i -le $((timeout * 10)) ] ||
			fail "$1 did not come up within $timeout s"
		sleep 0.1
	done
}

do_start() {
	for n in router sm c2s; do
		p=$(live_pid "$n")
		[ -z "$p" ] || die "already running ($n pid $p in $dir); run stop first"
	done
	for n in router sm c2s; do
		[ -x "$sbin/jabberd2-$n" ] || die "no $sbin/jabberd2-$n (apt-get install jabberd2)"
	done
	[ -f "$templates/sm.xml" ] || die "no templates in $templates"
	if [ -n "$module" ]; then
		[ -f "$module" ] || die "IMP_J2_MODULE: no such file: $module"
		module=$(cd "$(dirname "$module")" && pwd)/$(basename "$module")
	fi

	chmod 0700 "$dir"
	mkdir -p "$dir/etc" "$dir/data" "$dir/log" "$dir/run" "$dir/mods"
	rm -f "$dir/run/router.pid" "$dir/run/sm.pid" "$dir/run/c2s.pid"
	echo "$domain" >"$dir/etc/domain"
	if [ ! -s "$dir/etc/router.secret" ]; then
		(umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' \
			>"$dir/etc/router.secret")
	fi
	secret=$(cat "$dir/etc/router.secret")
	init_db

	# One module directory: Debian's modules plus ours.
	rm -f "$dir"/mods/mod_*.so
	for m in "$libdir"/mod_*.so; do
		ln -s "$m" "$dir/mods/$(basename "$m")"
	done
	chain_line="" section=""
	if [ -n "$module" ]; then
		ln -s "$module" "$dir/mods/mod_impolicy.so"
		chain_line="      <module>impolicy</module>"
		section="  <impolicy>
${IMP_J2_IMPOLICY_XML:-}
  </impolicy>"
	fi
	offline_xml=""
	[ "$offline" = store ] || offline_xml="    <dropmessages/>"
	tls_attr=""
	if [ "$tls" = 1 ]; then
		make_cert
		tls_attr=" pemfile='$dir/etc/c2s.pem'"
	fi
	(
		umask 077
		for t in router.xml router-users.xml sm.xml c2s.xml; do
			render "$t"
		done
	)
	if grep -n '@[A-Z_]*@' "$dir/etc/router.xml" "$dir/etc/sm.xml" \
		"$dir/etc/c2s.xml" "$dir/etc/router-users.xml" >&2; then
		die "unfilled placeholder in the generated configs"
	fi

	launch router
	await router "$launched" "listening for incoming connections" "unable to listen"

	launch sm
	smpid=$launched
	if [ "$expect_fail" = sm ]; then
		i=0
		while alive "$smpid"; do
			case $(since_start sm) in
			*"ready for sessions"*)
				fail "the sm came up, but IMP_J2_EXPECT_FAIL=sm expects it to exit"
				;;
			esac
			i=$((i + 1))
			[ $i -le $((timeout * 10)) ] ||
				fail "the sm did not exit within $timeout s (IMP_J2_EXPECT_FAIL=sm)"
			sleep 0.1
		done
		status=0
		wait "$smpid" || status=$?
		rm -f "$dir/run/sm.pid"
		echo "sm exit status: $status"
		since_start sm
		do_stop
		return 0
	fi
	want="ready for sessions"
	if [ -n "$module" ]; then
		want="$want
module 'impolicy' added to chain 'in-sess'
module 'impolicy' added to chain 'in-router'"
	fi
	await sm "$smpid" "$want" "failed loading module
init for module"

	launch c2s
	await c2s "$launched" "listening for connections
ready for connections" "failed to listen
failed to load"
}

do_status() {
	all=0
	for n in router sm c2s; do
		p=$(live_pid "$n")
		if [ -n "$p" ]; then
			echo "$n: running (pid $p)"
		else
			echo "$n: not running"
			all=3
		fi
	done
	echo "state: $dir"
	return $all
}

do_log() {
	for n in router sm c2s; do
		echo "== $dir/log/$n.log"
		tail -n "${IMP_J2_LOG_LINES:-40}" "$dir/log/$n.log" 2>/dev/null || true
	done
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
log) do_log ;;
adduser) do_adduser "$@" ;;
*)
	echo "usage: $0 start|stop|status|log|adduser JID PASSWORD [JID PASSWORD ...]" >&2
	exit 64
	;;
esac
