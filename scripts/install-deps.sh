#!/bin/sh
# Install every build and test dependency of mod_impolicy from Debian 12's
# packages.  Idempotent: packages already present are left alone, and apt is
# only asked to update its lists when something is missing.  Run as root.
set -eu

PKGS="
build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
libyaml-dev libpcre2-dev libexpat1-dev libvectorscan-dev libutf8proc-dev
libssl-dev libpq-dev libstrophe-dev tzdata
postgresql-15 postgresql-client-15
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
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
