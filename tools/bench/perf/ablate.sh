#!/bin/sh
# SPDX-License-Identifier: MIT
# Build experiment copies of the library (docs/perf-notes.md, "Experiments"):
# lib/ and include/ of commit $ABLATE_BASE (default 2265c8a, the code the
# notes measured; the patch is against it) go to $ABL/src (default /tmp/pn/abl),
# ablate.patch adds PN_* knobs,
# and each variant below is compiled with its -D flags into
# $ABL/VARIANT/libshmrpc.a, with the scenario programs linked against it in
# $ABL/VARIANT/. Some knobs are UNSAFE (no fence: lost wakeups possible; no
# lock: one sending thread only): they measure what a cost is, nothing more.
# The library itself is not changed. Usage: ablate.sh [VARIANT...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
ABL=${ABL:-/tmp/pn/abl}
CC=${CC:-cc}
variants() {
	cat <<'EOV'
base		-DPN_BATCH
notxfence	-DPN_NO_TXFENCE
norxfence	-DPN_NO_RXFENCE
nofence		-DPN_NO_TXFENCE -DPN_NO_RXFENCE
noctr		-DPN_NO_CTR
nolock		-DPN_NO_LOCK
norxbusy	-DPN_NO_RXBUSY
noerrno		-DPN_NO_ERRNO
handle		-DPN_HANDLE
lazyhead	-DPN_LAZY_HEAD
safe		-DPN_NO_CTR -DPN_LAZY_HEAD -DPN_HANDLE -DPN_NO_ERRNO
safe_nolock	-DPN_NO_CTR -DPN_LAZY_HEAD -DPN_HANDLE -DPN_NO_ERRNO -DPN_NO_LOCK -DPN_NO_RXBUSY
ctrpriv		-DPN_CTR_PRIV
lockfold	-DPN_LOCKFOLD
prop		-DPN_CTR_PRIV -DPN_LOCKFOLD -DPN_HANDLE -DPN_NO_ERRNO -DPN_BATCH
prop_lazy	-DPN_CTR_PRIV -DPN_LOCKFOLD -DPN_HANDLE -DPN_NO_ERRNO -DPN_LAZY_HEAD
prop_nof	-DPN_CTR_PRIV -DPN_LOCKFOLD -DPN_HANDLE -DPN_NO_ERRNO -DPN_LAZY_HEAD -DPN_NO_TXFENCE
all		-DPN_NO_CTR -DPN_LAZY_HEAD -DPN_HANDLE -DPN_NO_ERRNO -DPN_NO_LOCK -DPN_NO_RXBUSY -DPN_NO_TXFENCE -DPN_NO_RXFENCE
EOV
}
ABLATE_BASE=${ABLATE_BASE:-2265c8a}
rm -rf "$ABL/src"
mkdir -p "$ABL/src"
git -C "$top" archive "$ABLATE_BASE" lib include | tar -x -C "$ABL/src"
(cd "$ABL/src" && patch -s -p1 <"$here/ablate.patch")
deps=$(pkg-config --libs liburing libsodium 2>/dev/null || echo -luring -lsodium)
want=" $* "
variants | while read -r name flags; do
	[ "$want" = "  " ] || case "$want" in *" $name "*) ;; *) continue ;; esac
	d=$ABL/$name
	rm -rf "$d"
	mkdir -p "$d/obj"
	for f in "$ABL"/src/lib/*.c; do
		$CC -std=c11 -D_GNU_SOURCE -O2 -g -fvisibility=hidden -pthread $flags \
			-I"$ABL/src/include" -I"$ABL/src/lib" -c -o "$d/obj/$(basename "$f" .c).o" "$f"
	done
	ar rcs "$d/libshmrpc.a" "$d"/obj/*.o
	(cd "$top" && LIBA="$d/libshmrpc.a" OUT="$d" "$here/build.sh" >/dev/null)
	echo "$name: $d"
done
