#!/bin/sh
# SPDX-License-Identifier: MIT
# Check that calls between the files of shmrpc-bench go one way: every
# symbol a file uses from another file of the bench (nm: undefined in its
# object, defined in the other's) must be defined by a file of a lower rank
# below. Strictly lower ranks mean no two files call each other, directly
# or through a third. Calls through function pointers (a transport's send,
# a scenario's side run by the harness) are not links and not seen here.
# Usage: calls.sh [-v] OBJECT...   (-v: also print the file graph)
# bench.mk runs it on every build of shmrpc-bench; docs/bench.md draws it.
set -eu
verbose=
if [ "${1:-}" = -v ]; then
	verbose=1
	shift
fi
[ $# -gt 0 ] || { echo "usage: calls.sh [-v] OBJECT..." >&2; exit 2; }

# rank  files (lower ranks are called by higher ones, never the reverse)
ranks='
90 main
80 plan
70 run_pair syscalls fanout idle connect memory crash evlat rpc
70 report_table targets report_json report_plot
65 report_more
60 rounds
52 paced
51 pingpong stream memcpy
45 reaper_run
40 harness group
30 transports tr_group
25 tr_spin tr_futex tr_eventfd tr_pipe tr_unix tr_mqueue tr_zmq tr_nng tr_shmrpc tr_gshmrpc
20 ring ipcpath
10 opts results stats host syscount shmview proc report_fmt
'

tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.nm"' EXIT
for o in "$@"; do
	nm "$o" >"$tmp.nm" # a failing nm fails the check (set -e)
	awk -v f="$(basename "$o" .o)" '$1 == "U" { print "U", f, $2 }
		NF == 3 && $2 ~ /^[TDRBC]$/ { print "D", f, $3 }' "$tmp.nm" >>"$tmp"
done
awk -v ranks="$ranks" -v verbose="$verbose" '
BEGIN {
	n = split(ranks, line, "\n")
	for (i = 1; i <= n; i++) {
		k = split(line[i], w, " ")
		for (j = 2; j <= k; j++)
			rank[w[j]] = w[1] + 0
	}
}
$1 == "D" { def[$3] = $2; files[$2] = 1 }
$1 == "U" { use[++nu] = $2 " " $3; files[$2] = 1 }
END {
	bad = 0
	for (f in files)
		if (!(f in rank)) {
			printf "calls.sh: %s.c has no rank: add it to tools/bench/calls.sh\n", f
			bad = 1
		}
	for (i = 1; i <= nu; i++) {
		split(use[i], a, " ")
		if (!(a[2] in def) || def[a[2]] == a[1])
			continue
		e = a[1] " -> " def[a[2]]
		if (!(e in edge))
			order[++ne] = e
		edge[e] = edge[e] " " a[2]
	}
	for (i = 1; i <= ne; i++) {
		split(order[i], a, " ")
		if (verbose != "")
			printf "%s:%s\n", order[i], edge[order[i]]
		if ((a[1] in rank) && (a[3] in rank) && rank[a[3]] >= rank[a[1]]) {
			printf "calls.sh: %s.c (rank %d) calls up or across to %s.c (rank %d):%s\n",
				a[1], rank[a[1]], a[3], rank[a[3]], edge[order[i]]
			bad = 1
		}
	}
	exit bad
}' "$tmp"
