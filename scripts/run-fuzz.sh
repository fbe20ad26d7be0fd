#!/bin/sh
# SPDX-License-Identifier: MIT
# Run every libFuzzer harness built in BUILD/fuzz for SECONDS each, seeded
# with tests/fuzz/corpus/<h>/ and tests/fuzz/regress/<h>/ (read only); the
# corpus a run grows goes to BUILD/corpus/<h>/, crashes, timeouts and leaks
# to BUILD/crashes/<h>/. Prints each harness's speed and verdict, and exits
# non-zero if any harness found something.
# Usage: scripts/run-fuzz.sh BUILD SECONDS "HARNESSES" "EXTRA LIBFUZZER ARGS"
set -u
build=${1:-build-fuzz}
secs=${2:-60}
targets=${3:-"ring_consumer ring_producer ring_check registry node top"}
extra=${4:-}
failed=0
summary=

for h in $targets; do
	bin=$build/fuzz/fuzz_$h
	if [ ! -x "$bin" ]; then
		echo "=== fuzz $h: $bin missing (make fuzz-build)"
		failed=$((failed + 1))
		continue
	fi
	work=$build/corpus/$h
	crashes=$build/crashes/$h
	log=$build/fuzz-$h.log
	mkdir -p "$work" "$crashes" tests/fuzz/corpus/$h tests/fuzz/regress/$h
	echo "=== fuzz $h: ${secs}s"
	# -timeout: an input that runs 10 s is a hang; -rss_limit_mb: a leak.
	# $extra unquoted on purpose: several options.
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$crashes/" $extra "$work" tests/fuzz/corpus/$h \
		tests/fuzz/regress/$h >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	tsecs=$(sed -n 's/^stat::.*//p' "$log" >/dev/null; echo "$secs")
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
	rate=$(awk -v r="${runs:-0}" -v s="$tsecs" 'BEGIN { printf "%d", s > 0 ? r / s : 0 }')
	if [ "$rc" -ne 0 ]; then
		verdict="FOUND SOMETHING (exit $rc): $(ls "$crashes" | tr '\n' ' ')"
		grep -E 'ERROR|fuzz check failed|runtime error|SUMMARY' "$log" | head -10
		failed=$((failed + 1))
	else
		verdict=ok
	fi
	line=$(printf '%-14s %9s runs %7s exec/s  %-10s %s' "$h" "${runs:-?}" "$rate" "$cov" "$verdict")
	echo "$line"
	summary="$summary$line
"
done
echo "=== fuzz summary (logs: $build/fuzz-<harness>.log)"
printf '%s' "$summary"
[ "$failed" -eq 0 ]
