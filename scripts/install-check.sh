#!/bin/sh
# SPDX-License-Identifier: MIT
# Install into a scratch DESTDIR with PREFIX=/usr, then build tests/consumer.c
# against the installed files only (pkg-config) and run it on the installed
# shared library. Fails if anything is missing from the installation.
set -eu
cc=${CC:-cc}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
make --no-print-directory install DESTDIR="$dest" PREFIX=/usr >/dev/null
export PKG_CONFIG_PATH="$dest/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest"
flags=$(pkg-config --cflags --libs libshmrpc)
echo "install-check: cc consumer.c $flags"
$cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$dest/consumer" tests/consumer.c $flags
LD_LIBRARY_PATH="$dest/usr/lib" "$dest/consumer"
# Again with liburing's .pc out of sight (PKG_CONFIG_LIBDIR: ours only), as
# where liburing has no .pc: libshmrpc must still be found, dynamic and
# static (its private dependencies are -l flags, not Requires.private).
alone() { PKG_CONFIG_LIBDIR="$dest/usr/lib/pkgconfig" pkg-config "$@" libshmrpc; }
$cc -std=c11 -D_GNU_SOURCE -o "$dest/consumer-alone" tests/consumer.c $(alone --cflags --libs)
LD_LIBRARY_PATH="$dest/usr/lib" "$dest/consumer-alone" >/dev/null
$cc -std=c11 -D_GNU_SOURCE -o "$dest/consumer-alone-static" tests/consumer.c $(alone --cflags) \
	"$dest/usr/lib/libshmrpc.a" $(alone --static --libs | sed 's/-lshmrpc//')
"$dest/consumer-alone-static" >/dev/null &&
	echo "install-check: without liburing.pc: dynamic and static links ok"
# and against the static archive, with the private dependencies the .pc lists
static=$(pkg-config --static --libs libshmrpc | sed 's/-lshmrpc//')
$cc -std=c11 -D_GNU_SOURCE -o "$dest/consumer-static" tests/consumer.c \
	$(pkg-config --cflags libshmrpc) "$dest/usr/lib/libshmrpc.a" $static
"$dest/consumer-static" >/dev/null && echo "install-check: static link ok"
# The C++ header, from the installation only, with and without exceptions.
cxx=${CXX:-g++}
for x in "" -fno-exceptions; do
	$cxx -std=c++17 -Wall -Wextra -Werror $x -o "$dest/consumer-cc" tests/consumer.cc $flags
	LD_LIBRARY_PATH="$dest/usr/lib" "$dest/consumer-cc"
done
# The Python package, where the system python3 finds it for /usr, on the
# installed library (found by the loader, not by SHMRPC_LIBRARY).
py=${PYTHON:-/usr/bin/python3}
pydir=$("$py" python/sitedir.py /usr)
env -u SHMRPC_LIBRARY PYTHONPATH="$dest$pydir" LD_LIBRARY_PATH="$dest/usr/lib" \
	PYTHONDONTWRITEBYTECODE=1 "$py" tests/python/install_check.py "$dest"
