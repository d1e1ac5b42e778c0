#!/bin/sh
# install-deps.sh installs every build, test and demo dependency of efm from
# Debian's archive.  It is idempotent: packages already present are left alone.
#
# libraft comes from bookworm-backports on Debian 12 (the bookworm 0.15
# package has known safety bugs); backports is enabled with a pin that lets
# only libraft (and its -dev package) come from it.
set -eu

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps.sh: must run as root (it calls apt-get)" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive

. /etc/os-release
codename=${VERSION_CODENAME:-}

if [ "$codename" = bookworm ]; then
	src=/etc/apt/sources.list.d/efm-bookworm-backports.sources
	if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
		cat >"$src" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	fi
	cat >/etc/apt/preferences.d/efm-libraft <<PIN
Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100

Package: libraft-dev libraft0 libraft2 libraft-tools
Pin: release n=bookworm-backports
Pin-Priority: 990
PIN
fi

# clang and its runtimes (libFuzzer, the sanitizers; only recommended by
# clang, so named here) build the fuzz targets that ./build.sh test runs.
packages="build-essential cmake pkg-config clang-format clang libclang-rt-dev
	libuv1-dev libpq-dev libraft-dev libssl-dev libcurl4-openssl-dev
	libcjson-dev libyaml-dev libsystemd-dev libcmocka-dev
	postgresql postgresql-contrib jq iproute2 procps iputils-ping
	python3 python3-pytest python3-psycopg2 python3-aiosmtpd"

missing=""
for p in $packages; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done

# libraft must be new enough even when some version is already installed.
if pkg-config --exists raft 2>/dev/null && ! pkg-config --atleast-version=0.18 raft; then
	missing="$missing libraft-dev"
fi

if [ -n "$missing" ]; then
	echo "install-deps.sh: installing:$missing"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if ! pkg-config --atleast-version=0.18 raft; then
	echo "install-deps.sh: libraft >= 0.18 is required, found $(pkg-config --modversion raft 2>/dev/null || echo none)" >&2
	exit 1
fi
