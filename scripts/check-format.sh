#!/bin/sh
# SPDX-License-Identifier: MIT
# Fail if a C file differs from what clang-format (.clang-format: the kernel's
# style, 100 columns) makes of it. `scripts/check-format.sh -i` fixes them.
set -eu
files=$(git ls-files '*.c' '*.h' | grep -v '^bpf/vmlinux.h$')
if [ "${1:-}" = "-i" ]; then
	clang-format -i $files
	exit 0
fi
clang-format --dry-run -Werror $files
