#!/bin/sh
# SPDX-License-Identifier: MIT
# Build the Debian packages (debian/) in a scratch copy of this tree, then
# check them: what each contains (dpkg -c), lintian, and, as root, install
# them on this machine: shmrpc-info runs, a consumer builds against the
# installed -dev package with pkg-config (dynamic and static) and runs, the
# man pages and the reaper's unit are in place (enabled, not started: see
# below), the Python module works; then purge them and check nothing is
# left. Results in build/deb/ (the .debs, build.log, lintian.txt).
#
# Usage: scripts/build-deb.sh [--no-install]
# Needs: scripts/deps.sh deb. Refuses to install over an installed libshmrpc.
#
# python3-shmrpc packages python/shmrpc, which the bindings bring: without
# it the build uses the nopython profile and leaves that package out.
#
# Where systemd runs, installing shmrpc-tools would start a host-wide
# shmrpc-reaper, which would reclaim the dead nodes of every domain on the
# machine (other people's tests among them): a temporary policy-rc.d keeps
# it from starting; the unit is still enabled, as the package does.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
out=$top/build/deb
install=1
[ "${1:-}" = --no-install ] && install=0
pkgs="libshmrpc0 libshmrpc-dev shmrpc-tools python3-shmrpc"
scratch=$(mktemp -d)
policy_rcd=
installed=

say() { echo "build-deb: $*"; }
die() {
	echo "build-deb: FAILED: $*" >&2
	exit 1
}
cleanup() {
	[ -z "$installed" ] || apt-get purge -y -qq $installed >/dev/null 2>&1 || true
	[ -z "$policy_rcd" ] || rm -f "$policy_rcd"
	rm -rf "$scratch"
}
trap cleanup EXIT

# --- build, in a copy of the tracked files as they are in the work tree
mkdir -p "$scratch/libshmrpc" "$out"
rm -f "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
git ls-files -z | xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
	tar --null -T - -cf - | tar -xf - -C "$scratch/libshmrpc"
profile=
if [ ! -d python/shmrpc ]; then
	profile=-Pnopython
	say "no python/shmrpc (the bindings are not merged): python3-shmrpc left out (-Pnopython)"
	pkgs="libshmrpc0 libshmrpc-dev shmrpc-tools"
fi
say "dpkg-buildpackage -us -uc -b $profile (log: build/deb/build.log)"
if ! (cd "$scratch/libshmrpc" && DEB_BUILD_OPTIONS="parallel=2 ${DEB_BUILD_OPTIONS:-}" \
	nice -n 10 dpkg-buildpackage -us -uc -b $profile) >"$out/build.log" 2>&1; then
	tail -40 "$out/build.log" >&2
	die "dpkg-buildpackage (build/deb/build.log)"
fi
grep -E '^dpkg-gensymbols: warning' "$out/build.log" || true
cp "$scratch"/*.deb "$scratch"/*.changes "$scratch"/*.buildinfo "$out/"
changes=$(ls "$out"/*.changes)

# --- contents
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
deb() { ls "$out/$1"_*.deb; }
has() { # package, then paths that must be in it
	p=$1
	shift
	list=$(dpkg -c "$(deb "$p")" | awk '{ print $6 }' | sed 's|^\./|/|')
	for f; do
		echo "$list" | grep -qx -- "$f" || die "$p has no $f"
	done
}
for p in $pkgs; do
	say "dpkg -c $(basename "$(deb "$p")")"
	dpkg -c "$(deb "$p")" | awk '{ print "    " $1, $6, $7, $8 }'
done
ver=$(sed -n 's/^VERSION := //p' Makefile)
has libshmrpc0 "/usr/lib/$ma/libshmrpc.so.$ver" "/usr/lib/$ma/libshmrpc.so.0"
has libshmrpc-dev /usr/include/shmrpc.h "/usr/lib/$ma/libshmrpc.so" "/usr/lib/$ma/libshmrpc.a" \
	"/usr/lib/$ma/pkgconfig/libshmrpc.pc" /usr/share/man/man3/libshmrpc.3.gz \
	/usr/share/man/man3/shmrpc_send.3.gz /usr/share/man/man3/shmrpc_commit.3.gz
[ ! -f include/shmrpc.hpp ] || has libshmrpc-dev /usr/include/shmrpc.hpp
has shmrpc-tools /usr/bin/shmrpc-top /usr/bin/shmrpc-info /usr/bin/shmrpc-demo /usr/bin/shmrpc-kv \
	/usr/bin/shmrpc-bench /usr/bin/shmrpc-reaper /lib/systemd/system/shmrpc-reaper.service \
	/usr/share/man/man1/shmrpc-top.1.gz /usr/share/man/man1/shmrpc-info.1.gz \
	/usr/share/man/man1/shmrpc-demo.1.gz /usr/share/man/man1/shmrpc-bench.1.gz \
	/usr/share/man/man8/shmrpc-reaper.8.gz
[ -n "$profile" ] || has python3-shmrpc /usr/lib/python3/dist-packages/shmrpc/__init__.py
dpkg-deb -I "$(deb shmrpc-tools)" postinst | grep -q 'deb-systemd-helper' ||
	die "shmrpc-tools' postinst does not enable the unit (dh_installsystemd)"
dpkg-deb -I "$(deb libshmrpc0)" symbols | grep -q 'shmrpc_send@LIBSHMRPC_0.1' ||
	die "libshmrpc0 has no symbols file"

# --- lintian (debian/*.lintian-overrides explain what it still reports)
say "lintian $(basename "$changes") (build/deb/lintian.txt)"
lintian --info --display-info --fail-on error,warning "$changes" >"$out/lintian.txt" 2>&1 ||
	{
		cat "$out/lintian.txt" >&2
		die "lintian"
	}
sed 's/^/    /' "$out/lintian.txt"

[ "$install" = 1 ] || exit 0
if [ "$(id -u)" -ne 0 ]; then
	say "not root: packages built and checked, not installed"
	exit 0
fi

# --- install on this machine, use, purge
for p in $pkgs; do
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	case "$st" in
	"" | un* | pn*) ;;
	*) die "$p is installed already ($st): not touching it" ;;
	esac
done
if [ -d /run/systemd/system ] && [ ! -e /usr/sbin/policy-rc.d ]; then
	policy_rcd=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\n# build-deb.sh: no service starts while it installs\nexit 101\n' >$policy_rcd
	chmod 0755 $policy_rcd
fi
debs=
for p in $pkgs; do debs="$debs $(deb "$p")"; done
say "apt-get install$debs"
installed=$pkgs
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $debs \
	>"$out/install.log" 2>&1 || {
	cat "$out/install.log" >&2
	die "apt-get install"
}

ver=$(dpkg-query -W -f='${Version}' libshmrpc0 | sed 's/-[^-]*$//')
/usr/bin/shmrpc-info >"$scratch/info" || die "shmrpc-info failed"
grep -q "^libshmrpc $ver " "$scratch/info" || die "shmrpc-info is not version $ver"
sed 's/^/    /' "$scratch/info"
/usr/bin/shmrpc-top --version | grep -q "$ver" || die "shmrpc-top --version"
[ -L /etc/systemd/system/multi-user.target.wants/shmrpc-reaper.service ] ||
	die "shmrpc-reaper.service is not enabled"
[ "$(man -w shmrpc_commit)" = /usr/share/man/man3/shmrpc_send.3.gz ] ||
	die "man shmrpc_commit does not find shmrpc_send(3)"
man -w shmrpc-reaper >/dev/null || die "no man page shmrpc-reaper(8)"

cc=${CC:-cc}
(
	cd "$scratch"
	$cc -std=c11 -D_GNU_SOURCE -Wall -Werror -o consumer "$top/tests/consumer.c" \
		$(pkg-config --cflags --libs libshmrpc)
	./consumer
	libdir=$(pkg-config --variable=libdir libshmrpc)
	$cc -std=c11 -D_GNU_SOURCE -o consumer-static "$top/tests/consumer.c" \
		$(pkg-config --cflags libshmrpc) "$libdir/libshmrpc.a" \
		$(pkg-config --static --libs libshmrpc | sed 's/-lshmrpc//')
	./consumer-static >/dev/null
	! ldd consumer-static | grep -q libshmrpc
) || die "a consumer of the installed libshmrpc-dev"
say "consumer built with pkg-config against the installed packages: dynamic and static ok"
if [ -z "$profile" ]; then
	/usr/bin/python3 - <<'EOF' || die "python3-shmrpc (the system python3)"
import os, shmrpc
dom = "deb-check-%d" % os.getpid()
with shmrpc.Node("a", domain=dom) as a, shmrpc.Node("b", domain=dom) as b:
    a.send("b", b"hello")
    data, sender = b.recv(timeout=5)
    assert (data, sender) == (b"hello", "a"), (data, sender)
print("build-deb: python3-shmrpc: a round trip ok")
EOF
fi

say "apt-get purge $pkgs"
apt-get purge -y -qq $pkgs >>"$out/install.log" 2>&1 || die "apt-get purge"
installed=
left=$(dpkg -S 'shmrpc' 2>/dev/null || true)
[ -z "$left" ] || die "left after the purge: $left"
[ ! -e /etc/systemd/system/multi-user.target.wants/shmrpc-reaper.service ] ||
	die "the unit's symlink outlived the purge"
say "installed, used and purged: nothing left"
