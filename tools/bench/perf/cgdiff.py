#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Per-message instruction counts from two callgrind runs of one scenario.

  cgdiff.py [--inclusive] [--lines FILE] SMALL.out N_SMALL BIG.out N_BIG

Runs callgrind_annotate on both profiles and prints, per function (or,
with --lines FILE, per source line of FILE), (Ir(BIG) - Ir(SMALL)) /
(N_BIG - N_SMALL): the cost of one more message (or round trip, join...),
with everything done once (start-up, open, close) cancelled out.
"""
import re
import signal
import subprocess
import sys

signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def annotate(path, inclusive, lines_of):
    args = ["callgrind_annotate", "--threshold=100"]
    if inclusive:
        args.append("--inclusive=yes")
    if lines_of:
        args += ["--auto=yes", "--context=0"]
    else:
        args.append("--auto=no")
    args.append(path)
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    res = {}
    total = 0
    if not lines_of:
        for ln in out.splitlines():
            m = re.match(r"\s*([\d,]+)\s+(\(\s*[\d.]+%\)\s+)?(.*)$", ln)
            if not m:
                continue
            v = int(m.group(1).replace(",", ""))
            name = m.group(3).strip()
            if name.startswith("PROGRAM TOTALS"):
                total = v
                continue
            if ":" not in name:
                continue
            name = re.sub(r" \[.*\]$", "", name)
            res[name] = res.get(name, 0) + v
        return total, res
    # per line of one file: "-- Auto-annotated source: FILE" sections
    cur = None
    for ln in out.splitlines():
        m = re.match(r"-- Auto-annotated source: (.*)", ln)
        if m:
            cur = m.group(1).strip()
            continue
        if cur is None or not cur.endswith(lines_of):
            continue
        m = re.match(r"\s*([\d,]+)\s+(\(\s*[\d.]+%\)\s+)?(.*)$", ln)
        if not m:
            continue
        src = m.group(3)
        key = src.strip()
        if key.startswith("=>"):
            key = "  " + re.sub(r" \(\d[\d,]*x\)$", "", key)
        res[key] = res.get(key, 0) + int(m.group(1).replace(",", ""))
    return total, res


def main():
    argv = sys.argv[1:]
    inclusive = "--inclusive" in argv
    if inclusive:
        argv.remove("--inclusive")
    lines_of = None
    if "--lines" in argv:
        i = argv.index("--lines")
        lines_of = argv[i + 1]
        del argv[i:i + 2]
    small, ns, big, nb = argv[0], int(argv[1]), argv[2], int(argv[3])
    t0, a = annotate(small, inclusive, lines_of)
    t1, b = annotate(big, inclusive, lines_of)
    d = nb - ns
    if not lines_of:
        print("%10.1f  PROGRAM TOTAL per unit" % ((t1 - t0) / d))
    rows = [((b.get(k, 0) - a.get(k, 0)) / d, k) for k in set(a) | set(b)]
    rows.sort(key=lambda r: -r[0])
    for v, k in rows:
        if abs(v) >= 0.05:
            print("%10.2f  %s" % (v, k))


main()
