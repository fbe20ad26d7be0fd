#!/bin/sh
# SPDX-License-Identifier: MIT
# Make sure the Debian packages that building, testing and benchmarking
# libshmrpc need are installed. As root, install the missing ones; otherwise
# print the exact command and fail. Usage: scripts/deps.sh [build|test|bench|deb|fuzz]
set -eu
what=${1:-test}

pkgs="build-essential pkg-config liburing-dev libsodium-dev libbpf-dev libelf-dev zlib1g-dev clang llvm bpftool libncurses-dev"
case "$what" in
test) pkgs="$pkgs libcmocka-dev spin tmux strace procps python3-cffi python3-pytest libnats-dev nats-server" ;;
bench) pkgs="$pkgs libcmocka-dev gnuplot-nox strace procps python3-cffi libzmq3-dev libnng-dev libnats-dev nats-server" ;;
# libFuzzer and the sanitizers' runtimes (clang's), llvm-symbolizer for
# readable crash stacks
fuzz) pkgs="$pkgs libclang-rt-14-dev" ;;
build) ;;
# scripts/build-deb.sh: debian/control's Build-Depends, and lintian
deb) pkgs="$pkgs debhelper dpkg-dev lintian libsodium-dev libcmocka-dev man-db dh-python python3 libnats-dev" ;;
*) echo "usage: $0 [build|test|bench|deb|fuzz]" >&2; exit 2 ;;
esac

missing=
for p in $pkgs; do
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	case "$st" in
	ii*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "libshmrpc needs these Debian packages; run as root:" >&2
	echo "  apt-get update && apt-get install -y$missing" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
