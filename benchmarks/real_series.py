"""Benchmark on a real measured series: the built-in encoder on a BaTiO3 temperature ramp.

The series (tests/data/batio3_ramp, 60 curves, 150–445 K, BSD-3) crosses the three transitions
of BaTiO3, which the published analysis puts at 185, 280 and 400 K. A user labels a few curves
of each phase far from the transitions and runs the product's classify path (built-in encoder,
linear classifier, ordered phases, boundaries). Prints each curve's predicted and published
phase and each boundary against the published temperature, for 1, 2 and 3 labels per phase;
writes benchmarks/results/real_series/batio3.json.
"""

from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path

import numpy as np

DATA = Path(__file__).parents[1] / "tests" / "data" / "batio3_ramp" / "batio3_ramp.npz"
OUT = Path(__file__).parent / "results" / "real_series" / "batio3.json"
# The source states no wavelength; the cubic lines index on a ≈ 4.01 Å at 0.167 Å (data README).
WAVELENGTH = 0.167
PHASES = ("R", "O", "T", "C")  # rhombohedral, orthorhombic, tetragonal, cubic
# Maffettone, Daly & Olds, Appl. Phys. Rev. 8, 041410 (2021): the BaTiO3 figure's transition lines
PUBLISHED_K = (185.0, 280.0, 400.0)
# the estimate's uncertainty: the cubic lines give 0.1671 Å for a = 4.01 Å, ±0.3 % for a = 4.00–4.02 Å
WAVELENGTHS = (0.166, 0.1665, 0.167, 0.1671, 0.1675, 0.168)


def published_phase(temperature: np.ndarray) -> np.ndarray:
    """Return each curve's phase by the published transitions ("" for a curve on a transition)."""
    t = np.asarray(temperature, dtype=np.float64)
    phases = np.asarray(PHASES)[np.searchsorted(PUBLISHED_K, t, side="right")]
    return np.where(np.isin(t, PUBLISHED_K), "", phases)


def far_labels(temperature: np.ndarray, per_phase: int) -> dict[int, str]:
    """Return {row: phase} for the ``per_phase`` curves of each phase farthest from every transition.

    What a user labels: the curves they are sure of. Ties go to the lower temperature.
    """
    t = np.asarray(temperature, dtype=np.float64)
    distance = np.min(np.abs(t[:, None] - np.asarray(PUBLISHED_K)[None, :]), axis=1)
    phase = published_phase(t)
    labels = {}
    for name in PHASES:
        rows = np.flatnonzero(phase == name)
        order = np.lexsort((t[rows], -distance[rows]))  # farthest first, then lowest temperature
        labels.update({int(r): name for r in rows[order[:per_phase]]})
    return dict(sorted(labels.items()))


def curves_between(temperature: np.ndarray, a: float, b: float) -> int:
    """Return how many curves lie strictly between temperatures ``a`` and ``b``."""
    t = np.asarray(temperature, dtype=np.float64)
    lo, hi = sorted((a, b))
    return int(np.count_nonzero((t > lo) & (t < hi)))


def boundaries_from_labels(temperature: np.ndarray, labels: np.ndarray) -> list[float]:
    """Return, per published transition, the midpoint between its phases' adjacent curves.

    For labels in PHASES order along the ramp (what the product's ordered decoding gives): the
    temperature halfway between the last curve before and the first curve after the change.
    NaN where the phases are not in that order or one of them is missing.
    """
    t = np.asarray(temperature, dtype=np.float64)
    rank = np.array([PHASES.index(str(x)) if str(x) in PHASES else -1 for x in labels])
    if np.any(rank < 0) or np.any(np.diff(rank) < 0):
        return [float("nan")] * len(PUBLISHED_K)
    found = []
    for k in range(1, len(PHASES)):
        below, above = np.flatnonzero(rank < k), np.flatnonzero(rank >= k)
        found.append(0.5 * (t[below[-1]] + t[above[0]]) if below.size and above.size else np.nan)
    return [float(v) for v in found]


def _scored(t: np.ndarray, predicted: np.ndarray, boundaries: list[tuple]) -> dict:
    """Return the comparison of per-curve phases and (from, to, value, low, high) boundaries with the paper."""
    truth = published_phase(t)
    scored = truth != ""  # the curves that sit on a published transition have no one phase
    wrong = scored & (predicted != truth)
    pairs = list(itertools.pairwise(PHASES))
    transitions = []
    for pair, published in zip(pairs, PUBLISHED_K, strict=True):
        found = [b for b in boundaries if tuple(b[:2]) == pair]
        value = float(found[0][2]) if found else float("nan")
        transitions.append(
            {
                "transition": f"{pair[0]} → {pair[1]}",
                "published_K": published,
                "boundary_K": value,
                "interval_K": [float(found[0][3]), float(found[0][4])] if found else None,
                "offset_K": value - published,
                "curves_between": curves_between(t, value, published) if found else None,
            }
        )
    return {
        "curves_scored": int(scored.sum()),
        "curves_off_published_phase": int(wrong.sum()),
        "off_temperatures_K": [float(v) for v in t[wrong]],
        "transitions": transitions,
        "extra_boundaries": sum(1 for b in boundaries if tuple(b[:2]) not in pairs),
        "predicted": [str(x) for x in predicted],
        "published": [str(x) for x in truth],
    }


def classify_with_builtin(stack, encoder, labels: dict[int, str], seed: int) -> dict:
    """Return the product's per-curve phases and boundaries for ``labels`` (the classify path)."""
    from napari_xrdphase.classify import fit_classifier
    from napari_xrdphase.results import classify_series

    with warnings.catch_warnings():  # one label per phase: the fit warns that it cannot validate
        warnings.simplefilter("ignore", UserWarning)
        classifier = fit_classifier(encoder, [stack], {stack.name: labels}, seed=seed)
    proba = classifier.predict_proba(classifier.embed(stack))
    result = classify_series(classifier, stack, proba, labels)
    found = [(b.from_label, b.to_label, b.value, b.low, b.high) for b in result.boundaries]
    return _scored(np.asarray(stack.variable, dtype=np.float64), result.labels, found)


def nearest_labelled_raw_curve(stack, labels: dict[int, str]) -> dict:
    """Return the phases of each curve's nearest labelled curve on the raw, min–max scaled curves."""
    from napari_xrdphase.preprocess import minmax_rows

    t = np.asarray(stack.variable, dtype=np.float64)
    curves = minmax_rows(stack.intensities)
    rows = np.array(list(labels))
    distance = ((curves[:, None, :] - curves[rows][None, :, :]) ** 2).sum(axis=-1)
    predicted = np.array([labels[int(r)] for r in rows[distance.argmin(axis=1)]])
    found = boundaries_from_labels(t, predicted)
    return _scored(
        t,
        predicted,
        [(a, b, v, v, v) for (a, b), v in zip(itertools.pairwise(PHASES), found, strict=True)],
    )


def run(labels_per_phase=(1, 2, 3), wavelengths=WAVELENGTHS, seed: int = 0) -> dict:
    """Return the built-in encoder's phases and boundaries per label count and per wavelength.

    Label counts at ``WAVELENGTH``; the wavelength sweep (the uncertainty of its estimate) with 2
    labels per phase; the nearest labelled raw curve as a reference that needs no wavelength.
    """
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.io import load_stack

    stack = load_stack(DATA)
    stack.wavelength = WAVELENGTH
    t = np.asarray(stack.variable, dtype=np.float64)
    encoder = Encoder.builtin()
    report = {
        "data": str(DATA.relative_to(Path(__file__).parents[1])),
        "published_transitions_K": list(PUBLISHED_K),
        "wavelength_A": WAVELENGTH,
        "seed": seed,
        "labels_per_phase": {},
        "wavelength_sweep": {},
        "nearest_raw_curve": {},
    }
    for per_phase in labels_per_phase:
        labels = far_labels(t, per_phase)
        run_report = classify_with_builtin(stack, encoder, labels, seed)
        run_report["labelled_temperatures_K"] = {str(int(t[r])): p for r, p in labels.items()}
        report["labels_per_phase"][str(per_phase)] = run_report
        _print_run(
            f"built-in encoder, {per_phase} label(s) per phase, {WAVELENGTH} Å", t, run_report
        )
    labels = far_labels(t, 2)
    for wavelength in wavelengths:
        stack.wavelength = wavelength
        run_report = classify_with_builtin(stack, encoder, labels, seed)
        report["wavelength_sweep"][f"{wavelength:g}"] = run_report
        _print_run(
            f"built-in encoder, 2 labels per phase, {wavelength:g} Å", t, run_report, short=True
        )
    for per_phase in labels_per_phase:
        run_report = nearest_labelled_raw_curve(stack, far_labels(t, per_phase))
        report["nearest_raw_curve"][str(per_phase)] = run_report
        _print_run(
            f"nearest labelled raw curve, {per_phase} label(s) per phase", t, run_report, short=True
        )
    return report


def _print_run(title: str, t: np.ndarray, run: dict, short: bool = False) -> None:
    print(f"\n{title}")
    if "labelled_temperatures_K" in run:
        print(
            "  labelled: "
            + ", ".join(f"{k} K {v}" for k, v in run["labelled_temperatures_K"].items())
        )
    if not short:
        print("  T (K)     " + " ".join(f"{int(v):>3d}" for v in t))
        print("  product   " + " ".join(f"{p:>3s}" for p in run["predicted"]))
        print("  published " + " ".join(f"{p or '|':>3s}" for p in run["published"]))
    for item in run["transitions"]:
        print(
            f"  {item['transition']}: product {item['boundary_K']:g} K, published "
            f"{item['published_K']:g} K, offset {item['offset_K']:+g} K, "
            f"{item['curves_between']} curve(s) between"
        )
    print(
        f"  curves off the published phase: {run['curves_off_published_phase']} of "
        f"{run['curves_scored']} ({', '.join(f'{v:g}' for v in run['off_temperatures_K']) or 'none'} K)"
    )


if __name__ == "__main__":
    import argparse

    from benchmarks._report import add_json_out_argument

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.real_series", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the classifier's validation split (default 0)"
    )
    add_json_out_argument(parser, OUT)
    args = parser.parse_args()
    result = run(seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
