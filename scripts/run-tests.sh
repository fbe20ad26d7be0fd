#!/bin/sh
# SPDX-License-Identifier: MIT
# Run every test program in BUILD/tests once per wake backend, plus the
# model check of the wake protocol. Exits non-zero if anything failed.
# Usage: scripts/run-tests.sh [BUILD]   ($SHMRPC_TEST_BACKENDS: "futex uring";
# $SHMRPC_TESTS: only these test programs, e.g. "test_send test_ring")
set -u
build=${1:-build}
backends=${SHMRPC_TEST_BACKENDS:-"futex uring"}
per_test_timeout=${SHMRPC_TEST_TIMEOUT:-900}
failed=0
ran=0
# Each program's output also goes to a log; the failures' cmocka verdicts
# are repeated at the end, where a truncated CI log still shows them.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
summary=$logs/summary
: >"$summary"

have_backend() {
	# A backend the library refuses here (-EOPNOTSUPP) is reported, not run.
	"$build/tools/shmrpc-info" --backend "$1" >/dev/null 2>&1
}

for be in $backends; do
	if ! have_backend "$be"; then
		echo "=== backend $be: not available on this machine, skipped"
		continue
	fi
	for t in "$build"/tests/test_*; do
		[ -x "$t" ] || continue
		case "$t" in *.d | *.o) continue ;; esac
		if [ -n "${SHMRPC_TESTS:-}" ]; then
			case " $SHMRPC_TESTS " in *" $(basename "$t") "*) ;; *) continue ;; esac
		fi
		echo "=== $(basename "$t") [backend $be]"
		ran=$((ran + 1))
		log=$logs/$(basename "$t").$be
		# To a file, then shown: a pipe to tee would wait for any process
		# the test left holding its output. LeakSanitizer's warning in
		# forked children of threaded parents (it lists the parent's
		# threads) is noise, one line per child: left out of the display.
		SHMRPC_BACKEND=$be timeout -k 10 "$per_test_timeout" "$t" >"$log" 2>&1
		echo $? >"$log.rc"
		grep -v 'was not suspended. False leaks are possible' "$log"
		if [ "$(cat "$log.rc")" != 0 ]; then
			echo "FAILED: $(basename "$t") [backend $be]"
			{
				echo "FAILED: $(basename "$t") [backend $be], exit $(cat "$log.rc")"
				grep -aE '^\[ *(RUN|ERROR|LINE|FAILED) *\]|error:|ERROR: |runtime error' "$log" |
					grep -B1 -A3 -E 'ERROR|LINE|FAILED|error' | tail -40
			} >>"$summary"
			failed=$((failed + 1))
		fi
	done
done

# $SHMRPC_NO_MODEL=1: not this time (make faults, which runs one program).
if [ -x tests/model/run.sh ] && [ -z "${SHMRPC_NO_MODEL:-}" ]; then
	echo "=== model check of the wake protocol (spin)"
	ran=$((ran + 1))
	tests/model/run.sh || { echo "FAILED: model check"; failed=$((failed + 1)); }
fi

if [ -s "$summary" ]; then
	echo "=== what failed"
	cat "$summary"
fi
echo "=== $ran test runs, $failed failed"
[ "$ran" -gt 0 ] && [ "$failed" -eq 0 ]
