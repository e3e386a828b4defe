#!/bin/sh
# Install every build and test dependency of mod_impolicy from Debian 12's
# packages.  Idempotent: packages already present are left alone, and apt is
# only asked to update its lists when something is missing.  Run as root.
# jabberd2 is only used through scripts/j2-stack.sh (private instances on
# loopback): when this script installs it, it keeps the package from
# starting the system-wide jabberd2 (a policy-rc.d that forbids starts, for
# the duration of the install, when the system has none), whose ports
# would collide with the quick start's.
set -eu

PKGS="
build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
libyaml-dev libpcre2-dev libexpat1-dev libvectorscan-dev libutf8proc-dev
libssl-dev libpq-dev libstrophe-dev tzdata
postgresql-15 postgresql-client-15
jabberd2 sqlite3 faketime openssl
"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install)" >&2
	exit 1
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
rc_policy=/usr/sbin/policy-rc.d
case " $missing " in
*" jabberd2 "*)
	if [ ! -e "$rc_policy" ]; then
		trap 'rm -f "$rc_policy"' EXIT
		trap 'exit 2' INT TERM HUP
		printf '#!/bin/sh\n# install-deps.sh: no daemon starts during the install\nexit 101\n' >"$rc_policy"
		chmod 0755 "$rc_policy"
	fi
	;;
esac
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
