"""Live refits: seconds from one more label to new probabilities, boundaries and novelty.

What the Classify dock's *live* mode runs in its worker thread after each label
(``XRDSession.compute_classification``): ``fit_classifier`` on cached embeddings
(``FeatureCache``: only the new curve's strained copies are embedded), then per series
``predict_proba`` and ``novelty`` on the cached embeddings and ``classify_series``. The redraw of
the layers in the GUI thread is not included.

A simulated Fe compression series of ``--curves`` curves (30 % before, 20 % during, 50 % after),
the built-in encoder; ``--start-labels`` curves labelled from the ground truth, evenly spread,
then ``--refits`` more, one at a time at random rows (seeded), each followed by a refit. Also
timed once: filling the cache (embedding every curve; the strain whitening's sample) and a
fit without the cache, as ``classify`` ran before.

    python -m benchmarks.live_refit [--curves 1000] [--refits 10] [--threads N]
                                    [--out benchmarks/results/live_refit/cpu.json] [--overwrite]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def measure(
    curves: int = 1000,
    start_labels: int = 20,
    refits: int = 10,
    seed: int = 0,
    threads: int | None = None,
    n_points: int = 2000,
) -> dict:
    """Return {refit_seconds: [...], median_refit_s, cache_fill_s, uncached_fit_s, ...}."""
    import torch

    from napari_xrdphase.classify import FeatureCache, fit_classifier
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.results import classify_series
    from napari_xrdphase.synth import simulate_series

    if threads is not None:  # after importing encoder.py, which then keeps this choice
        torch.set_num_threads(int(threads))
    n_before, n_during = round(0.3 * curves), round(0.2 * curves)
    series = simulate_series(
        "Fe", n_before, n_during, curves - n_before - n_during, n_points=n_points, seed=seed,
        name=f"Fe{curves}",
    )  # fmt: skip
    stack, truth = series.stack, np.asarray(series.labels)
    encoder = Encoder.builtin()
    rows = np.linspace(0, curves - 1, start_labels).round().astype(int)
    labels = {stack.name: {int(r): str(truth[r]) for r in rows}}
    rng = np.random.default_rng(seed)
    extra = rng.choice(np.setdiff1d(np.arange(curves), rows), size=refits, replace=False)

    def refit(cache):
        classifier = fit_classifier(encoder, [stack], labels, seed=0, cache=cache)
        embeddings = cache.embeddings(stack)
        result = classify_series(
            classifier, stack, classifier.predict_proba(embeddings), labels[stack.name],
            novelty=classifier.novelty(embeddings),
        )  # fmt: skip
        return result

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        start = time.perf_counter()
        fit_classifier(encoder, [stack], labels, seed=0)
        uncached = time.perf_counter() - start
        cache = FeatureCache(encoder)
        start = time.perf_counter()
        refit(cache)  # fills the cache: every curve, the whitening sample, the labels' copies
        fill = time.perf_counter() - start
        times = []
        for row in extra:
            labels[stack.name][int(row)] = str(truth[row])
            start = time.perf_counter()
            result = refit(cache)
            times.append(time.perf_counter() - start)
    return {
        "curves": curves,
        "points_per_curve": n_points,
        "start_labels": start_labels,
        "refits": refits,
        "torch_threads": torch.get_num_threads(),
        "refit_seconds": [round(t, 4) for t in times],
        "median_refit_s": round(float(np.median(times)), 4),
        "first_fit_filling_the_cache_s": round(fill, 3),
        "uncached_fit_s": round(uncached, 3),
        "boundaries": [str(b) for b in result.boundaries],
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
    }


def main(argv=None) -> int:
    """Run the benchmark, print the numbers and write JSON (an existing file only with --overwrite)."""
    from napari_xrdphase._files import atomic_write, check_output_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", type=int, default=1000, help="curves in the series (1000)")
    parser.add_argument(
        "--start-labels", type=int, default=20, help="curves labelled before the refits (20)"
    )
    parser.add_argument("--refits", type=int, default=10, help="labels added one by one (10)")
    parser.add_argument("--seed", type=int, default=0, help="simulation and row seed (0)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own)"
    )
    parser.add_argument(
        "--out", default="benchmarks/results/live_refit/cpu.json", help="JSON file to write"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    results = measure(args.curves, args.start_labels, args.refits, args.seed, args.threads)
    print(json.dumps(results, indent=2))
    out = check_output_path(Path(args.out), inputs=[], overwrite=args.overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2) + "\n"))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
