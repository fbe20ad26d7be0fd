#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Model-check the wake protocol (tests/model/wake.pml, docs/wake-protocol.md).
# Every variant has an expected verdict: the protocol must verify with zero
# errors, each mutant must be caught. Exits 1 if any variant disagrees, 2 if
# a tool is missing or a search was incomplete (a bound hit is not a pass).
#
#   tests/model/run.sh            all variants, $JOBS (default 2) at a time
#   KEEP=1 tests/model/run.sh     keep the build directory (trails, pan output)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-cc}
JOBS=${JOBS:-2}

for tool in spin "$CC"; do
	command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: $tool not found" >&2; exit 2; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmrpc-model.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
	echo "build directory: $tmp"
else
	trap 'rm -rf "$tmp"' EXIT
	trap 'exit 130' INT TERM
fi
cp "$here/wake.pml" "$tmp/"

# name  expect  mode  spin -D flags
# Mutants run with -DNOGHOST: they must fail through a real symptom (a
# deadlock = lost wakeup, or a record lost or repeated), not only through
# the ghost invariant. The -sc rows of M2/M5/M6 pass on purpose: without
# store buffers the fences they drop cannot matter, which is why the TSO
# model exists. M3 passes on purpose: see docs/wake-protocol.md. There is
# no SC row for the protocol: every SC run is also a TSO run (flush at once).
variants() {
	cat <<'EOF'
sc-progress	pass	np
tso-bell2	pass	safety	-DTSO -DRING0_BELL
tso-late	pass	safety	-DTSO -DANNOUNCE_LATE
tso		pass	safety	-DTSO
bell-last	fail	safety	-DBELL_LAST -DNOGHOST
M1		fail	safety	-DM1 -DNOGHOST
M2-tso		fail	safety	-DM2 -DTSO -DNOGHOST
M2-sc		pass	safety	-DM2
M3		pass	safety	-DM3 -DTSO
M4		fail	safety	-DM4 -DNOGHOST
M5-tso		fail	safety	-DM5 -DTSO -DNOGHOST
M5-sc		pass	safety	-DM5
M6-tso		fail	safety	-DM6 -DTSO -DNOGHOST
M6-sc		pass	safety	-DM6
M7		fail	safety	-DM7 -DNOGHOST
EOF
}

# check NAME EXPECT MODE FLAGS...: writes $tmp/NAME.res (verdict line) and
# $tmp/NAME.rc (0 as expected, 1 unexpected, 2 incomplete or broken)
check() {
	name=$1 expect=$2 mode=$3
	shift 3
	d=$tmp/$name
	mkdir "$d"
	if [ "$mode" = np ]; then
		cflags="-DNP" pflags="-l"
	else
		cflags="-DSAFETY" pflags=""
	fi
	# a mutant's counter-example comes early: compile time dominates there
	opt=-O1
	[ "$expect" = fail ] && opt=-O0
	rc=2 got="" what=""
	if (cd "$d" && spin "$@" -a ../wake.pml >spin.out 2>&1 &&
		$CC $opt $cflags -DMEMLIM=3072 -w -o pan pan.c >cc.out 2>&1); then
		(cd "$d" && ./pan -m200000 $pflags >pan.out 2>&1) || true
		out=$d/pan.out
		errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$out")
		states=$(awk '/states, stored/ { print $1; exit }' "$out")
		secs=$(sed -n 's/^pan: elapsed time \([0-9.e+-]*\).*/\1/p' "$out")
		what=$(sed -n '/^pan:1: /{s/^pan:1: //;s/ (at depth.*//;s/^\(assertion violated\) .\{40,\}/\1 (INV)/;p;q;}' "$out")
		if [ -z "$errors" ] || grep -q -e 'depth too small' -e 'MEMLIM' -e 'out of memory' "$out"; then
			got="incomplete search"
		elif [ "$errors" -eq 0 ]; then
			got=pass
		else
			got=fail
		fi
		case $got in
		"$expect") rc=0 ;;
		pass | fail) rc=1 ;;
		esac
	else
		got="spin or cc failed"
		what=$(cat "$d/spin.out" "$d/cc.out" 2>/dev/null | head -n 3 | tr '\n' ' ')
	fi
	case $rc in 0) v=ok ;; 1) v=WRONG ;; *) v=BROKEN ;; esac
	printf '%-6s %-12s expect %-4s got %-4s %10s states %6ss  %s%s\n' "$v" "$name" "$expect" \
		"$got" "${states:-?}" "${secs:-?}" "${what}" "${*:+  [$*]}" >"$tmp/$name.res"
	echo "$rc" >"$tmp/$name.rc"
}

# JOBS lanes, round-robin over the list; results printed in list order
lane=0
while [ "$lane" -lt "$JOBS" ]; do
	(
		i=0
		variants | while read -r name expect mode flags; do
			[ $((i % JOBS)) -eq "$lane" ] && check "$name" "$expect" "$mode" $flags
			i=$((i + 1))
		done
	) &
	lane=$((lane + 1))
done
wait

worst=0
for name in $(variants | cut -f1); do
	cat "$tmp/$name.res"
	rc=$(cat "$tmp/$name.rc")
	[ "$rc" -gt "$worst" ] && worst=$rc
done
case $worst in
0) echo "model: all variants as expected" ;;
1) echo "model: FAILED (a variant disagrees with its expected verdict)" ;;
*) echo "model: BROKEN (tool failure or incomplete search)" ;;
esac
exit "$worst"
