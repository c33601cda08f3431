"""Pool the per-run scores of benchmark JSON files into one table (mean ± std over all runs).

python -m benchmarks.summarize benchmarks/results/gpu_*_h200/*.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np

KEYS = (("Fe", "precision"), ("Fe", "recall"), ("FeO", "precision"), ("FeO", "recall"))


def pooled_table(paths) -> dict[str, dict]:
    """Return {variant (data seeds pooled): {runs, data_seeds, Fe_precision: (mean, std), ...}}."""
    pooled: dict[str, list] = defaultdict(list)
    seeds: dict[str, set] = defaultdict(set)
    for path in paths:
        with open(path) as handle:
            results = json.load(handle)
        for name, entry in results.get("variants", {}).items():
            variant, _, rest = name.partition("|")
            data_seed, _, mode = rest.partition("|")
            key = f"{variant} ({mode})" if mode else variant
            pooled[key] += entry["runs"]
            seeds[key].add(data_seed)
    table = {}
    for key, runs in pooled.items():
        row = {"runs": len(runs), "data_seeds": sorted(seeds[key])}
        for group, metric in KEYS:
            values = [r["groups"][group][metric] for r in runs]
            row[f"{group}_{metric}"] = (float(np.mean(values)), float(np.std(values)))
        table[key] = row
    return table


def main(argv=None) -> int:
    """Print the pooled table as markdown."""
    table = pooled_table(argv or sys.argv[1:])
    print("| method | Fe precision | Fe recall | FeO precision | FeO recall | runs | data seeds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for key, row in sorted(table.items(), key=lambda kv: -kv[1]["Fe_precision"][0]):
        cells = [f"{m * 100:.1f} ± {s * 100:.1f}" for m, s in (row[f"{g}_{k}"] for g, k in KEYS)]
        print(f"| {key} | {' | '.join(cells)} | {row['runs']} | {', '.join(row['data_seeds'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
