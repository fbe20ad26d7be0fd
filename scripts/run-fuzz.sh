#!/bin/sh
# SPDX-License-Identifier: MIT
# Run each libFuzzer harness built in BUILD/fuzz for SECONDS, seeded with
# tests/fuzz/corpus/<h>/ and tests/fuzz/regress/<h>/ (read, never written).
# What a run adds to the corpus goes to BUILD/corpus/<h>/ (kept for the
# next run), crashes, timeouts and leaks to BUILD/crashes/<h>/, the output
# to BUILD/fuzz-<h>.log. Prints each harness's speed and verdict; exits
# non-zero if any harness found something (or could not run).
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
	work=$build/corpus/$h
	crashes=$build/crashes/$h
	log=$build/fuzz-$h.log
	if [ ! -x "$bin" ]; then
		echo "=== fuzz $h: $bin missing (make fuzz-build)"
		failed=$((failed + 1))
		continue
	fi
	mkdir -p "$work" "$crashes"
	seeds=
	for d in tests/fuzz/corpus/$h tests/fuzz/regress/$h; do
		[ -d "$d" ] && seeds="$seeds $d"
	done
	echo "=== fuzz $h: ${secs}s"
	# -timeout: an input that runs 10 s is a hang; -rss_limit_mb: a leak.
	# $extra and $seeds unquoted on purpose: lists.
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$crashes/" $extra "$work" $seeds >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	if [ "$rc" -ne 0 ]; then
		verdict="FOUND SOMETHING (exit $rc): $(ls "$crashes" | tr '\n' ' ')"
		grep -aE 'ERROR|fuzz check failed|runtime error|SUMMARY' "$log" | head -10
		failed=$((failed + 1))
	else
		verdict=ok
	fi
	line=$(printf '%-14s %10s runs %8s exec/s  cov %5s  %s' "$h" "${runs:-?}" \
		"${rate:-?}" "${cov:-?}" "$verdict")
	echo "$line"
	summary="$summary$line
"
done
echo "=== fuzz summary (logs: $build/fuzz-<harness>.log)"
printf '%s' "$summary"
[ "$failed" -eq 0 ]
