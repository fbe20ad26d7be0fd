#!/bin/sh
# SPDX-License-Identifier: MIT
# rounds.sh R "LABEL:COMMAND" ... : runs every command once per round, R
# rounds, interleaved (round 1 of all, then round 2...), so that all see the
# same disturbances of a shared machine; then per label the median, min and
# max of the first number after "PAT" in its output line (PAT defaults to
# the stream's ": ", i.e. msgs/s; set PAT='median ' for pn_pingpong...).
# ANALYZE_ONLY=1 only reads $LOG again (another PAT, another MAXOTHERS).
# Raw lines go to $LOG (default /tmp/pn/rounds.log). With MAXOTHERS=P, a
# run whose line says "others X%" with X > P (other processes used more than
# P% of the machine meanwhile) is left out, and counted as disturbed.
set -eu
R=$1
shift
LOG=${LOG:-/tmp/pn/rounds.log}
PAT=${PAT:-": "}
: "${ANALYZE_ONLY:=0}"
[ "$ANALYZE_ONLY" = 1 ] || : >"$LOG"
i=0
[ "$ANALYZE_ONLY" = 1 ] && i=$R
while [ "$i" -lt "$R" ]; do
	for spec in "$@"; do
		label=${spec%%:*}
		cmd=${spec#*:}
		out=$(sh -c "$cmd" 2>&1 | tail -n 1)
		printf '%s\t%s\n' "$label" "$out" >>"$LOG"
	done
	i=$((i + 1))
done
awk -F'\t' -v pat="$PAT" -v maxo="${MAXOTHERS:-}" '
{
	if (maxo != "" && match($2, /others [0-9.]+%/)) {
		o = substr($2, RSTART + 7, RLENGTH - 8) + 0;
		if (o > maxo + 0) { dist[$1]++; next }
	}
	s = $2; k = index(s, pat);
	if (!k) { bad[$1]++; next }
	s = substr(s, k + length(pat)); split(s, w, " "); v[$1, ++n[$1]] = w[1] + 0;
	if (!($1 in seen)) { seen[$1] = 1; order[++m] = $1 }
}
END {
	for (j = 1; j <= m; j++) {
		l = order[j]; c = n[l];
		for (a = 1; a <= c; a++) x[a] = v[l, a];
		for (a = 1; a <= c; a++) for (b = a + 1; b <= c; b++) if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
		med = c % 2 ? x[(c + 1) / 2] : (x[c / 2] + x[c / 2 + 1]) / 2;
		printf "%-14s median %8.3f  min %8.3f  max %8.3f  (n %d%s%s)\n", l, med, x[1], x[c], c, bad[l] ? ", " bad[l] " failed" : "", dist[l] ? ", " dist[l] " disturbed" : "";
	}
}' "$LOG"
