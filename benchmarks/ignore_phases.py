"""Benchmark of classification blind to known phases (``--ignore-phases``).

Simulated Fe and FeO series (``synth.simulate_series``, ``separate_lines=True``: the same seed
gives the same sample with and without marker and medium lines) are classified with the
built-in encoder and ``fit_classifier`` with its defaults. The labels (~2 % of all curves in
the fit, ``protocol.sample_labels``) come only from series without marker or medium; each
label seed draws other label series and other labelled curves. The test series are other
seeds (compression and decompression alternating), each simulated in every variant:

* ``none``: no marker, no medium (the reference);
* ``Pt``, ``Pt+Ne``, ``Au``: those lines added to the same samples.

Each variant is classified unmasked and with ``ignore_phases`` = its phases, placed at the
simulator's pressure (its pressure log, the series' variable); with ``--fitted`` also at the
pressure fitted from the marker's lines (``pressure.with_fitted_pressure``). The reference is
also run masked with Pt,Ne (what masking does where there is nothing to mask). Accuracy is
per test series (all its curves are unlabelled), averaged per material and label seed; the
table gives the mean over label seeds ± their standard deviation, beside the reference (the
same series without lines, unmasked, same labels).

    python -m benchmarks.ignore_phases [--seeds 4] [--label-seeds 3] [--points 2000] [--fitted]
                                       [--quick] [--out DIR] [--overwrite]

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


def _summary(per_seed: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Return per material the mean and standard deviation over label seeds (percent)."""
    out = {}
    for m in COUNTS:
        values = [
            100 * float(np.mean([a for n, a in seed.items() if n.startswith(m + "_")]))
            for seed in per_seed
        ]
        out[m] = {"mean": float(np.mean(values)), "sd": float(np.std(values)), "per_seed": values}
    return out


def run(n_seeds: int = 4, n_label_seeds: int = 3, n_points: int = 2000, fitted: bool = False):
    """Return accuracy per condition, material and series (see the module docstring)."""
    from napari_xrdphase.classify import fit_classifier
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.pressure import PressureError, with_fitted_pressure

    encoder = Encoder.builtin()
    tests = {
        variant: [
            _series(m, 200 + k, k % 2 == 1, n_points, f"{m}_test{k}", **lines)
            for m in COUNTS
            for k in range(n_seeds)
        ]
        for variant, lines in VARIANTS.items()
    }
    conditions = [(v, "unmasked") for v in VARIANTS] + [(v, "masked") for v in VARIANTS]
    fitted_stacks, refused = {}, {}
    if fitted:
        for v in VARIANTS:
            if "marker" not in VARIANTS[v]:
                continue
            conditions.append((v, "masked, fitted P"))
            try:
                fitted_stacks[v] = [
                    with_fitted_pressure(s.stack, VARIANTS[v]["marker"]) for s in tests[v]
                ]
            except PressureError as exc:  # a series with a curve the fit lost is refused
                refused[v] = str(exc)
    per_condition = {c: [] for c in conditions}
    seconds = dict.fromkeys(conditions, 0.0)
    label_info, embedded = [], {}
    for label_seed in range(n_label_seeds):
        label_series = [
            _series(m, 100 + 10 * label_seed + k, k % 2 == 1, n_points, f"{m}_label{k}")
            for m in COUNTS
            for k in range(2)
        ]
        truth = {s.stack.name: s.labels for s in label_series}
        n_total = sum(s.stack.n_curves for s in label_series) + sum(
            s.stack.n_curves for s in tests["none"]
        )
        n_labels = max(3 * len(label_series), round(LABEL_FRACTION * n_total))
        labels = sample_labels(
            truth, n_labels, [s.stack.name for s in label_series], seed=label_seed
        )
        label_info.append({"seed": label_seed, "n_labels": n_labels, "n_curves_in_fit": n_total})
        for variant, how in conditions:
            series = tests[variant]
            if how == "masked, fitted P":
                if variant in refused:
                    continue
                stacks = fitted_stacks[variant]
            else:
                stacks = [s.stack for s in series]
            ignore = [] if how == "unmasked" else PHASES[variant]
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                classifier = fit_classifier(
                    encoder, [s.stack for s in label_series] + stacks, labels,
                    ignore_phases=ignore,
                )  # fmt: skip
                # the test series' (masked) embeddings do not depend on the labels: once
                if (variant, how) not in embedded:
                    embedded[(variant, how)] = [
                        encoder.embed(classifier.ignored.apply(st).stack if classifier.ignored
                                      else st)
                        for st in stacks
                    ]  # fmt: skip
                per_series = {
                    stack.name: float(
                        np.mean(
                            classifier.phase_labels(stack, classifier.predict_proba(e), None)
                            == s.labels
                        )
                    )
                    for stack, s, e in zip(stacks, series, embedded[(variant, how)], strict=True)
                }
            seconds[(variant, how)] += time.perf_counter() - start
            per_condition[(variant, how)].append(per_series)
        print(f"label seed {label_seed} done", file=sys.stderr, flush=True)

    reference = _summary(per_condition[("none", "unmasked")])
    results = []
    print(
        f"{'variant':<7} {'how':<17} {'Fe (ref)':>22} {'FeO (ref)':>22}  "
        "(mean ± sd over label seeds, %)"
    )
    for variant, how in conditions:
        row = {"variant": variant, "how": how, "ignore_phases": None if how == "unmasked" else
               PHASES[variant]}  # fmt: skip
        if how == "masked, fitted P" and variant in refused:
            row["refused"] = refused[variant]
            results.append(row)
            print(f"{variant:<7} {how:<17} refused: {refused[variant]}")
            continue
        summary = _summary(per_condition[(variant, how)])
        row["accuracy_percent"] = summary
        row["reference_percent"] = {m: reference[m]["mean"] for m in COUNTS}
        row["per_series_percent"] = [
            {n: 100 * a for n, a in seed.items()} for seed in per_condition[(variant, how)]
        ]
        row["seconds"] = seconds[(variant, how)]
        results.append(row)
        cells = "".join(
            f" {summary[m]['mean']:6.1f} ± {summary[m]['sd']:4.1f} ({reference[m]['mean']:5.1f})"
            for m in COUNTS
        )
        print(f"{variant:<7} {how:<17}{cells}", flush=True)
    return {
        "what": "accuracy per test series (all curves), mean per material and label seed, then "
        "mean ± sd over label seeds; built-in encoder, fit_classifier defaults, labels only from "
        "series without marker or medium; reference: the same series without lines, unmasked",
        "label_seeds": label_info,
        "n_points": n_points,
        "n_test_series_per_material": n_seeds,
        "counts": COUNTS,
        "machine": f"{platform.processor() or platform.machine()}, CPU",
        "results": results,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", type=int, default=4,
        help="test series per material, compression and decompression alternating (default 4)",
    )  # fmt: skip
    parser.add_argument(
        "--label-seeds", type=int, default=3,
        help="label draws, each with its own label series and labelled curves (default 3)",
    )  # fmt: skip
    parser.add_argument("--points", type=int, default=2000, help="points per curve (default 2000)")
    parser.add_argument(
        "--quick", action="store_true",
        help="for development: 2 test series per material, 1 label seed, 1000 points "
        "(default: off)",
    )  # fmt: skip
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
    if args.quick:
        args.seeds, args.label_seeds, args.points = 2, 1, 1000
    report = run(args.seeds, args.label_seeds, args.points, args.fitted)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
