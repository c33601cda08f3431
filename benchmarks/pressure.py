"""Benchmark of the pressure fit: simulated series with a Pt or Au marker and sample lines.

Prints and writes benchmarks/results/pressure/pressure.json: median and 95th percentile of
|fitted − true pressure|, the share of curves with |ΔP| ≤ 1σ and ≤ 2σ, failed curves, ms/curve.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from napari_xrdphase.pressure import fit_pressure
from napari_xrdphase.synth import simulate_series

OUT = Path(__file__).parent / "results" / "pressure" / "pressure.json"


def run(seeds=range(6), n=(20, 10, 30)) -> dict:
    """Return the metrics per marker over Fe and FeO compression series of 60 curves."""
    report = {}
    for marker in ("Pt", "Au"):
        errors, sigmas, failed, total, seconds, pmax = [], [], 0, 0, 0.0, 0.0
        for seed in seeds:
            material = "Fe" if seed % 2 == 0 else "FeO"
            stack = simulate_series(material, *n, marker=marker, seed=seed).stack
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
        report[marker] = {
            "series": len(list(seeds)),
            "curves": total,
            "max_true_pressure_gpa": round(pmax, 1),
            "median_abs_error_gpa": round(float(np.median(err)), 4),
            "p95_abs_error_gpa": round(float(np.percentile(err, 95)), 4),
            "coverage_1sigma": round(float(np.mean(err <= sig)), 3),
            "coverage_2sigma": round(float(np.mean(err <= 2 * sig)), 3),
            "median_sigma_gpa": round(float(np.median(sig)), 4),
            "failed_curves": failed,
            "ms_per_curve": round(1e3 * seconds / total, 3),
        }
        print(marker, report[marker])
    return report


if __name__ == "__main__":
    result = run()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")
