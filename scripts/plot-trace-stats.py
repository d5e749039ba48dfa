#!/usr/bin/env python3
"""Hit rate vs cache size per policy, one panel per trace, from `python -m builder trace-stats --json` files.

    scripts/plot-trace-stats.py OUT.png STATS.json [STATS.json ...]     (needs matplotlib)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

POLICIES = (("static", "-"), ("lru", "--"), ("decayed-frequency", ":"))


def main() -> int:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, files = Path(sys.argv[1]), [Path(f) for f in sys.argv[2:]]
    fig, axes = plt.subplots(1, len(files), figsize=(4.5 * len(files), 4), sharey=True, squeeze=False)
    for ax, path in zip(axes[0], files):
        stats = json.loads(path.read_text())
        for policy, style in POLICIES:
            points = [(c["share"] * 100, c["mean"] * 100) for c in stats["caches"] if c["policy"] == policy]
            label = f"{policy} ({stats['cache_profile']})" if policy == "static" else policy
            ax.plot(*zip(*points), style, marker="o", label=label)
        ax.set_title(f"{Path(stats['trace']).stem}: {stats['distinct_per_32_tokens']['mean']:.1f} distinct / 32 tokens", fontsize=9)
        ax.set_xlabel("cache size, % of the experts per layer")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("hit rate, % of selections")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
