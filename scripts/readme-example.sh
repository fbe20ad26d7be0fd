#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's example (the first ```c block under "## The API in one
# example") as a C file: its #include lines, then the rest as the body of
# `int readme_example(void)`. The Makefile builds it into tests/test_readme,
# which runs it: the README shows code that compiles and works.
# Usage: scripts/readme-example.sh [README.md] > readme_example.c
set -eu
awk '
/^## The API in one example/ { sec = 1; next }
sec && /^```c$/ { on = 1; next }
on && /^```$/ { exit }
on && /^#include/ { inc[ni++] = $0; next }
on { body[nb++] = $0 }
END {
	if (!nb) {
		print "readme-example: no ```c block under \"## The API in one example\"" > "/dev/stderr"
		exit 1
	}
	print "/* Generated from README.md by scripts/readme-example.sh: do not edit. */"
	print "#include <stdio.h>"
	for (i = 0; i < ni; i++)
		print inc[i]
	print ""
	print "int readme_example(void);"
	print ""
	print "int readme_example(void)"
	print "{"
	for (i = 0; i < nb; i++)
		print (length(body[i]) ? "\t" body[i] : "")
	print "}"
}' "${1:-README.md}"
