"""Benchmark of the live pressure fit: curves fitted as they arrive against the finished series.

Simulated Fe series with a Pt or Au marker: the first curves are fitted as one series
(``PressureTrack.begin``), then each further curve alone as it arrives (``extend``). Prints
and writes benchmarks/results/pressure/live.json: per series the median and largest
|live − finished-series pressure|, the largest of those in units of the larger σ of the two
fits, the median |ΔP| against the simulated truth for both, failed curves and ms per arrival.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from napari_xrdphase.pressure import PressureTrack, fit_pressure
from napari_xrdphase.synth import simulate_series

OUT = Path(__file__).parent / "results" / "pressure" / "live.json"
CASES = (("Pt", 1), ("Au", 2), ("Pt", 4), ("Au", 6))


def run(cases=CASES, n=(15, 8, 17), n_points=1500, first=6) -> dict:
    """Return the agreement of live and finished-series fits per (marker, seed)."""
    report = {}
    for marker, seed in cases:
        stack = simulate_series("Fe", *n, marker=marker, n_points=n_points, seed=seed).stack
        whole = fit_pressure(stack, marker)
        track = PressureTrack(marker)
        fits = [track.begin(stack.subset(slice(0, first)))]
        start = time.perf_counter()
        fits += [track.extend(stack.curves()[i : i + 1]) for i in range(first, stack.n_curves)]
        seconds = time.perf_counter() - start
        live = np.concatenate([f.pressure for f in fits])
        sigma = np.concatenate([f.sigma for f in fits])
        difference = np.abs(live - whole.pressure)
        report[f"{marker} seed {seed}"] = {
            "curves": stack.n_curves,
            "curves_at_start": first,
            "median_abs_live_minus_finished_gpa": round(float(np.nanmedian(difference)), 4),
            "max_abs_live_minus_finished_gpa": round(float(np.nanmax(difference)), 4),
            "max_difference_in_larger_sigma": round(
                float(np.nanmax(difference / np.maximum(sigma, whole.sigma))), 3
            ),
            "median_abs_error_live_gpa": round(
                float(np.nanmedian(np.abs(live - stack.variable))), 4
            ),
            "median_abs_error_finished_gpa": round(
                float(np.nanmedian(np.abs(whole.pressure - stack.variable))), 4
            ),
            "failed_live": int(np.isnan(live).sum()),
            "failed_finished": int(whole.failed.sum()),
            "ms_per_arrival": round(1e3 * seconds / (stack.n_curves - first), 2),
            "load_average_1min": round(os.getloadavg()[0], 2),
        }
        print(f"{marker} seed {seed}", report[f"{marker} seed {seed}"])
    return report


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.live_pressure", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON to write (default {OUT})")
    args = parser.parse_args()
    result = run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
