#!/bin/sh
# SPDX-License-Identifier: MIT
# cg.sh NAME N1 N2 PROGRAM ARGS... (ARGS may contain @N, replaced by N1, N2)
# Runs PROGRAM under callgrind twice, with @N = N1 and N2, into
# $CGDIR/NAME.N1 and NAME.N2 (default /tmp/pn), then prints the
# instructions per unit (cgdiff.py), exclusive and inclusive.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
name=$1 n1=$2 n2=$3
shift 3
dir=${CGDIR:-/tmp/pn}
mkdir -p "$dir"
for n in "$n1" "$n2"; do
	args=""
	for a in "$@"; do
		[ "$a" = @N ] && a=$n
		args="$args $a"
	done
	valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$dir/$name.$n" \
		$args >"$dir/$name.$n.log" 2>&1
done
echo "== $name: exclusive instructions per unit"
"$here/cgdiff.py" "$dir/$name.$n1" "$n1" "$dir/$name.$n2" "$n2"
echo "== $name: inclusive"
"$here/cgdiff.py" --inclusive "$dir/$name.$n1" "$n1" "$dir/$name.$n2" "$n2"
