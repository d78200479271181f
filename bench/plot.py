"""Draws the convergence CDFs of `weft-bench`'s latency samples.

Usage: python3 bench/plot.py target/bench/latencies.csv bench/convergence.png

One panel per (world size, change): the fraction of clients that had ACKed
the change by a given time, one line per system (log time axis).
"""

import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

CHANGES = [
    ("full", "full push (connect)"),
    ("a", "(a) VirtualService edited"),
    ("b", "(b) 10% pods replaced"),
    ("c", "(c) new Service"),
]
COLORS = {"Weft": "tab:blue", "istiod": "tab:orange"}


def main(source, target):
    samples = defaultdict(list)
    with open(source, newline="") as f:
        for row in csv.DictReader(f):
            size = (int(row["services"]), int(row["proxies"]))
            samples[(size, row["change"], row["system"])].append(float(row["latency_ms"]))
    sizes = sorted({key[0] for key in samples})
    if not sizes:
        sys.exit(f"{source} holds no samples: did weft-bench finish a run?")
    fig, axes = plt.subplots(
        len(sizes), len(CHANGES), figsize=(4 * len(CHANGES), 3 * len(sizes)), squeeze=False
    )
    for row, size in enumerate(sizes):
        for col, (change, title) in enumerate(CHANGES):
            ax = axes[row][col]
            for system, color in COLORS.items():
                values = sorted(samples.get((size, change, system), []))
                if not values:
                    continue
                fractions = [(i + 1) / len(values) for i in range(len(values))]
                ax.step(values, fractions, where="post", color=color, label=system)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_ylim(0, 1.02)
            ax.grid(True, which="both", alpha=0.3)
            ax.set_title(f"{title}\n{size[0]} services, {size[1]} proxies", fontsize=9)
            if col == 0:
                ax.set_ylabel("fraction of proxies converged")
            if row == len(sizes) - 1:
                ax.set_xlabel("ms after the change")
            ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(target, dpi=90)
    print(f"plot: {target}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
