"""Benchmark of the pressure fit: simulated series with a Pt or Au marker and sample lines.

Prints and writes benchmarks/results/pressure/pressure.json: median and 95th percentile of
|fitted − true pressure|, the share of curves with |ΔP| ≤ 1σ and ≤ 2σ, failed curves, ms/curve.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from napari_xrdphase.pressure import fit_pressure
from napari_xrdphase.synth import simulate_series

OUT = Path(__file__).parent / "results" / "pressure" / "pressure.json"


MEDIA = (None, "Ne", "Ar", "NaCl-B1")


def _series(marker: str, seed: int, n, with_media: bool):
    """Fe (even seed) or FeO compression series; with_media: a medium and every 3rd decompressed."""
    material = "Fe" if seed % 2 == 0 else "FeO"
    if not with_media:
        return simulate_series(material, *n, marker=marker, seed=seed).stack
    return simulate_series(
        material, *n, marker=marker, seed=seed, decompression=seed % 3 == 0,
        medium=MEDIA[seed % 4], separate_lines=True,
    ).stack  # fmt: skip


def run(seeds=range(6), n=(20, 10, 30), media_seeds=range(6, 18)) -> dict:
    """Return the metrics per marker over Fe and FeO series of 60 curves, without and with media.

    "Pt", "Au": compression series, marker only. "Pt+medium", "Au+medium": series with a pressure
    medium (none, Ne, Ar, NaCl-B1 in turn; Ne and Ar fcc like the markers), every third one a
    decompression.
    """
    report = {}
    # one-time costs (imports, first calls) are not the method's: a warm-up fit before timing
    fit_pressure(simulate_series("Fe", 2, 0, 2, n_points=500, marker="Pt", seed=0).stack, "Pt")
    cases = [(m, m, seeds, False) for m in ("Pt", "Au")]
    cases += [(f"{m}+medium", m, media_seeds, True) for m in ("Pt", "Au")]
    for key, marker, case_seeds, with_media in cases:
        errors, sigmas, failed, total, seconds, pmax = [], [], 0, 0, 0.0, 0.0
        for seed in case_seeds:
            stack = _series(marker, seed, n, with_media)
            start = time.perf_counter()
            fit = fit_pressure(stack, marker)
            seconds += time.perf_counter() - start
            ok = ~fit.failed
            errors.append(np.abs(fit.pressure - stack.variable)[ok])
            sigmas.append(fit.sigma[ok])
            failed += int(fit.failed.sum())
            total += stack.n_curves
            pmax = max(pmax, float(stack.variable.max()))
        err, sig = np.concatenate(errors), np.concatenate(sigmas)
        report[key] = {
            "series": len(list(case_seeds)),
            "curves": total,
            "max_true_pressure_gpa": round(pmax, 1),
            "median_abs_error_gpa": round(float(np.median(err)), 4),
            "p95_abs_error_gpa": round(float(np.percentile(err, 95)), 4),
            "coverage_1sigma": round(float(np.mean(err <= sig)), 3),
            "coverage_2sigma": round(float(np.mean(err <= 2 * sig)), 3),
            "median_sigma_gpa": round(float(np.median(sig)), 4),
            "failed_curves": failed,
            "ms_per_curve": round(1e3 * seconds / total, 3),
            # the CPU is shared: its load while timing tells how far ms_per_curve is inflated
            "load_average_1min": round(os.getloadavg()[0], 2),
            "cpu_count": os.cpu_count(),
        }
        print(key, report[key])
    return report


if __name__ == "__main__":
    import argparse

    from benchmarks._report import add_json_out_argument

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pressure", description=__doc__.splitlines()[0]
    )
    add_json_out_argument(parser, OUT)
    args = parser.parse_args()
    result = run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
