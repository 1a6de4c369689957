#!/usr/bin/env python3
"""Compares our erc CSV with the PyTorch peer's: prints the largest relative difference per column."""
import csv
import sys

ours = {int(r["layer"]): r for r in csv.DictReader(open(sys.argv[1]))}
theirs = {int(r["layer"]): r for r in csv.DictReader(open(sys.argv[2]))}
worst = {}
for l, t in theirs.items():
    o = ours[l]
    for k in ("erc_loss", "erc_specialization", "erc_precision", "eps_mean", "coupling_alpha"):
        a, b = float(o[k]), float(t[k])
        worst[k] = max(worst.get(k, 0.0), abs(a - b) / max(abs(b), 1e-30))
print("max relative difference vs PyTorch:", ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
sys.exit(0 if all(v <= 1e-4 for v in worst.values()) else 1)
