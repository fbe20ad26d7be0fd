#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ratios.py LOG BASE [PAT]: per round (a round is one line of each label, in
the order rounds.sh ran them), each label's number after PAT (default ": ")
over BASE's in the same round; prints per label the median, min and max of
those ratios, and the median of the values themselves. Runs whose line
says "others X%" with X > $MAXOTHERS (if set) are left out."""
import os
import re
import statistics
import sys

log, base = sys.argv[1], sys.argv[2]
pat = sys.argv[3] if len(sys.argv) > 3 else ": "
maxo = os.environ.get("MAXOTHERS")
rounds, cur, order = [], {}, []
for ln in open(log):
    label, _, text = ln.rstrip("\n").partition("\t")
    if label in cur:
        rounds.append(cur)
        cur = {}
    if label not in order:
        order.append(label)
    m = re.search(r"others ([\d.]+)%", text)
    if maxo is not None and m and float(m.group(1)) > float(maxo):
        continue
    k = text.find(pat)
    if k < 0:
        continue
    try:
        cur[label] = float(text[k + len(pat):].split()[0])
    except ValueError:
        pass
if cur:
    rounds.append(cur)
for label in order:
    vals = [r[label] for r in rounds if label in r]
    rat = [r[label] / r[base] for r in rounds if label in r and base in r and r[base]]
    if not vals:
        continue
    print("%-12s value median %8.3f (n %d)   / %s: median %.3f  min %.3f  max %.3f  (n %d)" % (
        label, statistics.median(vals), len(vals), base,
        statistics.median(rat) if rat else float("nan"), min(rat) if rat else float("nan"),
        max(rat) if rat else float("nan"), len(rat)))
