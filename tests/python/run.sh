#!/bin/sh
# SPDX-License-Identifier: MIT
# The Python binding's tests (pytest, this directory) against BUILD's
# libshmrpc.so.0 and the package in python/, with the backend the caller
# set ($SHMRPC_BACKEND). Run through BUILD/tests/test_python, which the
# Makefile writes, so scripts/run-tests.sh runs it once per backend like the
# C test programs. Extra arguments go to pytest (e.g. -k zerocopy).
# Usage: tests/python/run.sh BUILD [PYTEST-ARGS...]
set -u
build=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
lib=$build/libshmrpc.so.0

if ! "$py" -c 'import cffi, pytest' 2>/dev/null; then
	echo "test_python: $py lacks cffi or pytest (Debian: python3-cffi python3-pytest;" \
		"scripts/deps.sh test installs them)"
	exit 1
fi
# A sanitizer build of the library needs its runtime first in the process.
if readelf -d "$lib" 2>/dev/null | grep -q 'NEEDED.*libasan'; then
	LD_PRELOAD=$(${CC:-cc} -print-file-name=libasan.so)
	# Python itself is not built for LeakSanitizer: its leaks are not ours.
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
	export LD_PRELOAD ASAN_OPTIONS
fi
export SHMRPC_LIBRARY="$lib" SHMRPC_TEST_BUILD="$build" PYTHONPATH="$root/python"
export PYTHONDONTWRITEBYTECODE=1 PYTHON="$py"

# pytest's verdicts in the form scripts/run-tests.sh repeats at the end.
out=$(mktemp)
trap 'rm -f "$out"' EXIT
cd "$root" || exit 1
"$py" -m pytest -p no:cacheprovider -q -rfEs "$here" "$@" >"$out" 2>&1
rc=$?
sed -e 's/^FAILED /[  FAILED  ] /' -e 's/^ERROR /[  ERROR   ] /' "$out"
exit $rc
