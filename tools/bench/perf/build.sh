#!/bin/sh
# SPDX-License-Identifier: MIT
# Build the perf-notes scenario programs (docs/perf-notes.md) into
# $B/perf/ (default build/perf/) against $B/libshmrpc.a: run `make lib`
# first. LIBA=path/to/libshmrpc.a builds them against another copy of the
# library (an experiment's, see docs/perf-notes.md) into $OUT.
# Not part of make test or make bench.
set -eu
top=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$top"
B=${B:-build}
LIBA=${LIBA:-$B/libshmrpc.a}
OUT=${OUT:-$B/perf}
CC=${CC:-cc}
deps=$(pkg-config --libs liburing libsodium 2>/dev/null || echo -luring -lsodium)
mkdir -p "$OUT"
flags="-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -pthread -Iinclude -Itools/bench -Itools/bench/perf"
$CC $flags -o "$OUT/pn_stream" tools/bench/perf/pn_stream.c tools/bench/ring.c "$LIBA" $deps
for p in pn_pingpong pn_connect pn_join pn_syscost pn_prim; do
	[ -f tools/bench/perf/$p.c ] || continue
	$CC $flags -o "$OUT/$p" tools/bench/perf/$p.c tools/bench/ring.c "$LIBA" $deps
done
echo "built in $OUT"
