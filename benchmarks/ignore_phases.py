"""Benchmark of classification blind to known phases (``--ignore-phases``).

Simulated Fe and FeO series (``synth.simulate_series``, ``separate_lines=True``: the same seed
gives the same sample with and without marker and medium lines) are classified with the
built-in encoder and ``fit_classifier`` with its defaults. The labels (~2 % of all curves in
the fit, ``protocol.sample_labels``) come only from series without marker or medium; the test
series are other seeds, each simulated in every variant:

* ``none``: no marker, no medium (the reference);
* ``Pt``, ``Pt+Ne``, ``Au``: those lines added to the same samples.

Each variant is classified unmasked and with ``ignore_phases`` = its phases, placed at the
simulator's pressure (its pressure log, the series' variable); with ``--fitted`` also at the
pressure fitted from the marker's lines (``pressure.with_fitted_pressure``). The reference is
also run masked with Pt,Ne (what masking costs where there is nothing to mask). Accuracy is
per test series (all its curves are unlabelled), then averaged per material.

    python -m benchmarks.ignore_phases [--seeds 2] [--points 2000] [--fitted] [--out DIR] [--overwrite]

Writes DIR/ignore_phases.json (default benchmarks/results/ignore_phases/).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.protocol import sample_labels

OUT = Path(__file__).parent / "results" / "ignore_phases"
LABEL_FRACTION = 0.02
COUNTS = {"Fe": (30, 10, 40), "FeO": (30, 15, 45)}
VARIANTS = {"none": {}, "Pt": {"marker": "Pt"}, "Pt+Ne": {"marker": "Pt", "medium": "Ne"},
            "Au": {"marker": "Au"}}  # fmt: skip
PHASES = {"none": "Pt,Ne", "Pt": "Pt", "Pt+Ne": "Pt,Ne", "Au": "Au"}


def _series(material, seed, decompression, n_points, name, **lines):
    from napari_xrdphase.synth import simulate_series

    return simulate_series(
        material, *COUNTS[material], decompression=decompression, n_points=n_points, seed=seed,
        name=name, separate_lines=True, **lines,
    )  # fmt: skip


def run(n_seeds: int = 2, n_points: int = 2000, fitted: bool = False) -> dict:
    """Return accuracy per condition, material and series (see the module docstring)."""
    from napari_xrdphase.classify import fit_classifier
    from napari_xrdphase.encoder import Encoder

    encoder = Encoder.builtin()
    label_series = [
        _series(m, 100 + k, k % 2 == 1, n_points, f"{m}_label{k}") for m in COUNTS for k in range(2)
    ]
    tests = {
        variant: [
            _series(m, 200 + k, k % 2 == 1, n_points, f"{m}_test{k}", **lines)
            for m in COUNTS
            for k in range(n_seeds)
        ]
        for variant, lines in VARIANTS.items()
    }
    truth = {s.stack.name: s.labels for s in label_series}
    n_total = sum(s.stack.n_curves for s in label_series) + sum(
        s.stack.n_curves for s in tests["none"]
    )
    n_labels = max(3 * len(label_series), round(LABEL_FRACTION * n_total))
    labels = sample_labels(truth, n_labels, [s.stack.name for s in label_series], seed=0)

    conditions = [(v, "unmasked") for v in VARIANTS] + [(v, "masked") for v in VARIANTS]
    if fitted:
        conditions += [(v, "masked, fitted P") for v in VARIANTS if "marker" in VARIANTS[v]]
    results = []
    for variant, how in conditions:
        series = tests[variant]
        stacks = [s.stack for s in series]
        if how == "masked, fitted P":
            from napari_xrdphase.pressure import PressureError, with_fitted_pressure

            marker = VARIANTS[variant]["marker"]
            try:
                stacks = [with_fitted_pressure(s, marker) for s in stacks]
            except PressureError as exc:  # a series with a curve the fit lost is refused
                results.append({"variant": variant, "how": how, "refused": str(exc)})
                print(f"{variant:<6} {how:<17} refused: {exc}", flush=True)
                continue
        ignore = [] if how == "unmasked" else PHASES[variant]
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            classifier = fit_classifier(
                encoder, [s.stack for s in label_series] + stacks, labels, ignore_phases=ignore
            )
            per_series = {
                stack.name: float(np.mean(classifier.predict(stack) == s.labels))
                for stack, s in zip(stacks, series, strict=True)
            }
        seconds = time.perf_counter() - start
        by_material = {
            m: 100 * float(np.mean([a for n, a in per_series.items() if n.startswith(m + "_")]))
            for m in COUNTS
        }
        row = {
            "variant": variant, "how": how, "ignore_phases": ignore or None,
            "accuracy_percent": by_material,
            "per_series_percent": {n: 100 * a for n, a in per_series.items()}, "seconds": seconds,
        }  # fmt: skip
        results.append(row)
        print(
            f"{variant:<6} {how:<17} Fe {by_material['Fe']:5.1f} %  FeO {by_material['FeO']:5.1f} %"
            f"  ({seconds:.0f} s)",
            flush=True,
        )
    return {
        "what": "accuracy per test series (all curves), mean per material, built-in encoder, "
        "fit_classifier defaults, labels only from series without marker or medium",
        "n_labels": n_labels,
        "n_curves_in_fit": n_total,
        "label_series": [s.stack.name for s in label_series],
        "n_points": n_points,
        "n_test_series_per_material": n_seeds,
        "counts": COUNTS,
        "machine": f"{platform.processor() or platform.machine()}, CPU",
        "results": results,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", type=int, default=2,
        help="test series per material, compression and decompression alternating (default 2)",
    )  # fmt: skip
    parser.add_argument("--points", type=int, default=2000, help="points per curve (default 2000)")
    parser.add_argument(
        "--fitted", action="store_true",
        help="also mask at the pressure fitted from the marker's lines (default: off)",
    )  # fmt: skip
    parser.add_argument("--out", default=str(OUT), help=f"folder for the JSON (default {OUT})")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing JSON (default: keep it)"
    )
    args = parser.parse_args(argv)
    from napari_xrdphase._files import check_output_path

    out = check_output_path(
        Path(args.out) / "ignore_phases.json", inputs=[], overwrite=args.overwrite
    )
    report = run(args.seeds, args.points, args.fitted)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
