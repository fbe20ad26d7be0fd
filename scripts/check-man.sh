#!/bin/sh
# SPDX-License-Identifier: MIT
# The man pages agree with include/shmrpc.h: every function it exports
# (SHMRPC_API) has a page in docs/man/ (its group's page, or a .so link to
# it), that page names it under NAME and declares it in its SYNOPSIS as the
# header does (types and parameter names, whitespace aside), libshmrpc(3)
# lists it, and no page documents a function the header lacks. Every tool
# has its page. With man(1) installed, every page renders without warnings.
# Run by `make test`; exits non-zero on the first kind of mismatch found.
set -eu
cd "$(dirname "$0")/.."
dir=docs/man
fail=0
err() {
	echo "check-man: $*" >&2
	fail=1
}

# One declaration per line, whitespace normalised.
norm() {
	sed -e 's/[[:space:]][[:space:]]*/ /g' -e 's/( /(/g' -e 's/ )/)/g' -e 's/^ //' -e 's/ ;$/;/'
}

# The header's declarations: from a line that starts with SHMRPC_API to ';'.
header_decls() {
	awk '/^SHMRPC_API/ { d = ""; on = 1 }
	     on { d = d " " $0 }
	     on && /;/ { sub(/^ *SHMRPC_API/, "", d); print d; on = 0 }' include/shmrpc.h | norm
}

# A page's section @2 as text: roff macros turned into what they print
# (.B/.I join their arguments with spaces, .BI/.BR/... without), quotes
# and font escapes removed, \- and \e made - and \.
section() {
	awk -v want="$2" '
	function args(s, sep,   out, tok, n) {
		out = ""; n = 0
		while (length(s)) {
			sub(/^ +/, "", s)
			if (!length(s)) break
			if (substr(s, 1, 1) == "\"") {
				s = substr(s, 2); tok = s; sub(/".*/, "", tok); s = substr(s, length(tok) + 2)
			} else {
				tok = s; sub(/ .*/, "", tok); s = substr(s, length(tok) + 1)
			}
			out = out (n++ ? sep : "") tok
		}
		return out
	}
	/^\.SH / { sec = $0; sub(/^\.SH +"?/, "", sec); sub(/"$/, "", sec); next }
	sec != want { next }
	/^\.(B|I) / { line = $0; sub(/^\.[BI] /, "", line); print args(line, " "); next }
	/^\.(BI|BR|IR|RB|IB|RI) / { line = $0; sub(/^\.[A-Z][A-Z] /, "", line); print args(line, ""); next }
	/^\./ { next }
	{ print }' "$1" | sed -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' -e 's/\\e/\\/g'
}

# Declarations in a page's SYNOPSIS: from a line naming a shmrpc_ function
# (not a typedef) to ';'.
page_decls() {
	section "$1" SYNOPSIS | awk '
	!on && /shmrpc_[a-z_]*\(/ && !/^ *typedef/ && !/^#/ { d = ""; on = 1 }
	on { d = d " " $0 }
	on && /;/ { print d; on = 0 }' | norm
}

# The page that documents function @1 (following a .so link), or "".
page_of() {
	f=$dir/$1.3
	[ -f "$f" ] || return 0
	so=$(sed -n '1s/^\.so man3\/\(.*\)$/\1/p' "$f")
	if [ -n "$so" ]; then
		[ -f "$dir/$so" ] || { err "$f: .so to a missing page $so"; return 0; }
		f=$dir/$so
	fi
	echo "$f"
}

fns=$(header_decls | sed 's/^.*[ *]\(shmrpc_[a-z_]*\)(.*$/\1/')
[ -n "$fns" ] || err "no SHMRPC_API function found in include/shmrpc.h"
for fn in $fns; do
	page=$(page_of "$fn")
	if [ -z "$page" ]; then
		err "$fn: no page $dir/$fn.3 (its group's page, or a .so link to it)"
		continue
	fi
	section "$page" NAME | tr ',' ' ' | grep -qw -- "$fn" ||
		err "$fn: $page does not name it under NAME"
	want=$(header_decls | grep -- " $fn(\|\*$fn(" || true)
	page_decls "$page" | grep -qxF -- "$want" ||
		err "$fn: $page's SYNOPSIS does not declare it as the header does:
    header: $want
    page:   $(page_decls "$page" | grep -- "$fn(" || echo '(nothing)')"
	grep -qw -- "$fn" "$dir/libshmrpc.3" || err "$fn: not listed in libshmrpc(3)"
done

# No page for a function the header does not export.
for f in "$dir"/*.3; do
	name=$(basename "$f" .3)
	[ "$name" = libshmrpc ] && continue
	echo "$fns" | grep -qx -- "$name" || err "$f: no such function in include/shmrpc.h"
	head -1 "$f" | grep -q '^\.so ' && continue
	for n in $(section "$f" NAME | sed 's/ \\\{0,1\}- .*//' | tr ',' ' '); do
		echo "$fns" | grep -qx -- "$n" || err "$f: names $n, which the header does not export"
	done
done

for t in shmrpc-top.1 shmrpc-info.1 shmrpc-demo.1 shmrpc-kv.1 shmrpc-bench.1 shmrpc-reaper.8; do
	[ -f "$dir/$t" ] || err "no page $dir/$t"
done

if command -v man >/dev/null 2>&1; then
	for f in "$dir"/*.[0-9]; do
		head -1 "$f" | grep -q '^\.so ' && continue
		w=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l "$f" 2>&1 >/dev/null) ||
			err "$f: man cannot render it"
		[ -z "$w" ] || err "$f: warnings: $w"
	done
else
	echo "check-man: man(1) not installed: pages not rendered"
fi

[ "$fail" = 0 ] && echo "check-man: $(echo "$fns" | wc -w) functions, every one documented as declared"
exit "$fail"
