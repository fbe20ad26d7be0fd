#!/bin/sh
# SPDX-License-Identifier: MIT
# Calls between lib/ files go one way, down the layers of docs/architecture.md,
# and lib/ keeps its files and functions small.
#
# Usage: scripts/check-layers.sh [-v] [BUILD]   (BUILD defaults to build)
#   -v  also list every call between two lib files that the check saw
#
# 1. Layers. The order is the list of *.c names in the ```layers block of
#    docs/architecture.md (bottom first). It builds lib/'s objects, then, for
#    each object, takes the symbols it needs (nm -u) and the lib object that
#    defines each (nm --defined-only): a call, or a data reference, from file
#    A to file B. B must come before A in the order. A static inline function
#    of a header counts for the object that uses it; a function pointer
#    passed down (a backend's ops, a callback) is no reference at all, which
#    is how a lower layer is allowed to call back up. Fails on a reference
#    upward, on a lib file missing from the order, and on an shmrpc__ symbol
#    that one file alone uses (it should be static).
# 2. Sizes. Files over MAX_LINES lines and functions over MAX_FUNC lines (the
#    body, between the braces at column 0 of kernel style): fails for lib/,
#    reports tools/.
set -eu
cd "$(dirname "$0")/.."

MAX_LINES=${MAX_LINES:-600}
MAX_FUNC=${MAX_FUNC:-60}
verbose=0
if [ "${1:-}" = "-v" ]; then
	verbose=1
	shift
fi
build=${1:-build}
doc=docs/architecture.md
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ------------------------------------------------------------ the order
awk '/^```layers/ { on = 1; next } on && /^```/ { exit } on' "$doc" |
	grep -o '[a-z_0-9]*\.c' >"$tmp/order" || true
if [ ! -s "$tmp/order" ]; then
	echo "check-layers: no \`\`\`layers block with file names in $doc" >&2
	exit 2
fi
dups=$(sort "$tmp/order" | uniq -d)
if [ -n "$dups" ]; then
	echo "check-layers: listed twice in $doc: $dups" >&2
	fail=1
fi
for f in lib/*.c; do
	if ! grep -qx "$(basename "$f")" "$tmp/order"; then
		echo "check-layers: $f is not in the layers of $doc" >&2
		fail=1
	fi
done
while read -r f; do
	[ -f "lib/$f" ] || {
		echo "check-layers: $doc lists $f, which lib/ does not have" >&2
		fail=1
	}
done <"$tmp/order"

# ------------------------------------------------------------ the calls
objs=$(for f in lib/*.c; do echo "$build/${f%.c}.o"; done)
make --no-print-directory -s B="$build" $objs >/dev/null
: >"$tmp/defs"
: >"$tmp/uses"
for f in lib/*.c; do
	f=$(basename "$f")
	o=$build/lib/${f%.c}.o
	nm --defined-only -g "$o" | awk -v f="$f" 'NF == 3 { print $3, f }' >>"$tmp/defs"
	nm -u "$o" | awk -v f="$f" '{ print $NF, f }' >>"$tmp/uses"
done
# rank of each file (unlisted: 0, reported above), the definer of each
# symbol, then every use of a symbol that another lib file defines
awk '{ print $1, NR }' "$tmp/order" >"$tmp/rank"
awk -v defs="$tmp/defs" '
	FILENAME != defs && FNR == NR { rank[$1] = $2; next }
	FILENAME == defs { def[$1] = $2; next }
	($1 in def) && def[$1] != $2 {
		a = $2; b = def[$1]
		print (rank[b] < rank[a] ? "ok" : "UP"), a, b, $1
	}' "$tmp/rank" "$tmp/defs" "$tmp/uses" | sort -u >"$tmp/calls"
if [ "$verbose" = 1 ]; then
	awk '$1 == "ok" { print "  lib/" $2 " -> lib/" $3 ": " $4 }' "$tmp/calls"
fi
if grep -q '^UP' "$tmp/calls"; then
	echo "check-layers: calls upward (a file may call only files below it in $doc):" >&2
	awk '$1 == "UP" { print "  lib/" $2 " -> lib/" $3 ": " $4 }' "$tmp/calls" >&2
	fail=1
fi

# shmrpc__ symbols that no other lib file uses, nor any test or tool: static
awk '$1 ~ /^shmrpc__/ { print }' "$tmp/defs" | while read -r sym f; do
	awk -v s="$sym" '$4 == s { found = 1 } END { exit !found }' "$tmp/calls" && continue
	grep -rqw -- "$sym" tests tools 2>/dev/null && continue
	echo "  lib/$f: $sym"
done >"$tmp/single"
if [ -s "$tmp/single" ]; then
	echo "check-layers: used by one file alone, make them static:" >&2
	cat "$tmp/single" >&2
	fail=1
fi
ncalls=$(grep -c . "$tmp/calls" || true)
npairs=$(awk '{ print $2, $3 }' "$tmp/calls" | sort -u | grep -c . || true)

# ------------------------------------------------------------ the sizes
# One line per function longer than the limit: "file:line: name: N lines".
func_sizes() {
	awk -v max="$MAX_FUNC" '
	/^\{$/ && prev != "" { name = prev; start = FNR; next }
	/^\}/ && start {
		n = FNR - start - 1
		if (n > max) {
			sub(/\(.*/, "", name); sub(/.*[ *]/, "", name)
			printf "%s:%d: %s: %d lines\n", FILENAME, start, name, n
		}
		start = 0
	}
	$0 ~ /^[A-Za-z_]/ { prev = $0 }' "$@"
}
big_files() {
	for f in "$@"; do
		n=$(wc -l <"$f")
		[ "$n" -gt "$MAX_LINES" ] && echo "$f: $n lines"
	done
	return 0
}
lib_big=$(big_files lib/*.c lib/*.h; func_sizes lib/*.c lib/*.h)
tools_big=$(big_files $(find tools -name '*.[ch]' | sort); func_sizes $(find tools -name '*.c' | sort))
if [ -n "$tools_big" ]; then
	echo "check-layers: tools/ over $MAX_LINES lines a file or $MAX_FUNC a function (reported):"
	echo "$tools_big" | sed 's/^/  /'
fi
if [ -n "$lib_big" ]; then
	echo "check-layers: lib/ over $MAX_LINES lines a file or $MAX_FUNC a function:" >&2
	echo "$lib_big" | sed 's/^/  /' >&2
	fail=1
fi

if [ "$fail" = 0 ]; then
	echo "check-layers: $(grep -c . "$tmp/order") files in $(awk '/^```layers/ { on = 1; next } on && /^```/ { exit } on' "$doc" | grep -c .) layers; $npairs pairs of files, $ncalls references, all downward; lib/ within $MAX_LINES lines a file, $MAX_FUNC a function"
else
	echo "check-layers: FAILED" >&2
fi
exit "$fail"
