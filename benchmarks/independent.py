"""The product on series it has never seen: an independent simulator, written to files, read back.

The paper-suite benchmark (``python -m benchmarks``) scores the method on the project's own
simulator (``napari_xrdphase.synth``). This one asks what a user gets on data from elsewhere:
``benchmarks.independent_suite`` simulates Fe and FeO series from its own physics (pseudo-Voigt
lines, other wavelengths, 2θ windows, point counts, pressure media and calibrants) and writes
them as other programs do (Dioptas/pyFAI ``.xy`` folders, Fit2D ``.chi``, ``.npz``/HDF5); the
series are read back with ``load_stack`` like a user's files. Then, with 2.8 % of the curves
labelled from every second series of each material:

* ``builtin``: the encoder shipped in the package, no pretraining (``xrdphase classify``
  without ``--model``);
* ``pretrained``: ``pretrain`` on every loaded series without labels, the default method,
  ``--epochs`` epochs (what the Pretrain dock does);
* ``random_init``: an untrained ConvSC;
* ``raw_logistic``: logistic regression on the prepared curves.

Each is scored on every unlabelled curve (weighted precision / recall per material) and on
the boundaries ``find_boundaries`` reports against the simulated truth (pressure error of
each true boundary found, and how many are missed or spurious).

    python -m benchmarks.independent [--epochs 60] [--seeds 0 1] [--label-seeds 3] [--out DIR]

(also the ``independent`` step of ``python -m benchmarks``)

Writes DIR/independent.json and DIR/independent.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from napari_xrdphase.defaults import PROBE_STRAIN, PROBE_STRAIN_STEPS, PROBE_WHITENING_STRAIN

LABEL_FRACTION = 0.028


def load_written_suite(suite, folder) -> list[SimpleNamespace]:
    """Write ``suite`` with ``write_suite``, read each series back with ``load_stack``.

    Returns objects with ``stack`` (as read), ``labels`` and ``material`` (the simulator's).
    Formats that carry no wavelength (Fit2D ``.chi``, bare ``.dat``) get the simulator's, as
    a user types it into the Data dock or passes ``--wavelength``; ``wavelength_given`` says so.
    """
    from benchmarks.independent_suite import write_suite
    from napari_xrdphase.io import load_stack

    paths = write_suite(suite, folder)
    loaded = []
    for series in suite:
        stack = load_stack(paths[series.name])
        if stack.n_curves != len(series.labels):
            raise RuntimeError(
                f"{series.name}: read {stack.n_curves} curves, wrote {len(series.labels)}"
            )
        stack.name = series.name
        given = stack.wavelength is None
        if given:
            stack.wavelength = float(series.wavelength)
        loaded.append(
            SimpleNamespace(
                stack=stack, labels=series.labels, material=series.material, wavelength_given=given
            )
        )
    return loaded


def labelled_series(suite) -> tuple[str, ...]:
    """Return every second series of each material (the first, third, …), in suite order."""
    chosen = []
    for material in dict.fromkeys(s.material for s in suite):
        names = [s.stack.name for s in suite if s.material == material]
        chosen += names[::2]
    return tuple(chosen)


def true_boundaries(variable: np.ndarray, labels: np.ndarray) -> list[tuple[str, str, float]]:
    """Return (from, to, value) at each change of the true label, midway between the two curves."""
    out = []
    for i in np.flatnonzero(labels[1:] != labels[:-1]):
        out.append((str(labels[i]), str(labels[i + 1]), float((variable[i] + variable[i + 1]) / 2)))
    return out


def boundary_errors(variable, truth, predicted, proba, classes, phase_order=None) -> dict:
    """Compare ``find_boundaries`` on the predictions with the true boundaries of one series.

    Each true boundary is matched to the predicted boundary between the same two phases
    nearest to it; returns the absolute errors of the matched ones, whether the truth lies in
    the reported interval, and the counts of missed and spurious boundaries.
    """
    from napari_xrdphase.boundaries import find_boundaries

    found = find_boundaries(variable, predicted, proba, classes, phase_order=phase_order)
    truths = true_boundaries(variable, truth)
    errors, covered, used = [], [], set()
    for a, b, value in truths:
        candidates = [
            (abs(f.value - value), k)
            for k, f in enumerate(found)
            if (f.from_label, f.to_label) == (a, b) and k not in used
        ]
        if not candidates:
            continue
        error, k = min(candidates)
        used.add(k)
        errors.append(error)
        covered.append(
            bool(min(found[k].low, found[k].high) <= value <= max(found[k].low, found[k].high))
        )
    return {
        "errors": errors,
        "covered": covered,
        "missed": len(truths) - len(errors),
        "spurious": len(found) - len(used),
    }


def score(suite, labels, predictions, probabilities, classes, phase_order=None) -> dict:
    """Return per-series and per-material scores of one labelled run."""
    from benchmarks.protocol import unlabelled_rows, weighted_scores

    truth = {s.stack.name: np.asarray(s.labels) for s in suite}
    scores = weighted_scores(truth, predictions, unlabelled_rows(truth, labels))
    groups = {}
    for material in dict.fromkeys(s.material for s in suite):
        names = [s.stack.name for s in suite if s.material == material]
        groups[material] = {
            key: float(np.mean([scores["series"][n][key] for n in names]))
            for key in ("precision", "recall")
        }
    boundaries = {
        s.stack.name: boundary_errors(
            s.stack.variable,
            truth[s.stack.name],
            predictions[s.stack.name],
            probabilities[s.stack.name],
            classes,
            phase_order,
        )
        for s in suite
    }
    return {"series": scores["series"], "groups": groups, "boundaries": boundaries}


def encoder_runs(
    encoder, suite, label_sets, ordered: bool = True, strain: float = PROBE_STRAIN,
    n_strained: int = PROBE_STRAIN_STEPS, whitening_strain: float = PROBE_WHITENING_STRAIN,
) -> list[dict]:  # fmt: skip
    """Probe ``encoder`` (the product's ``fit_classifier``) on each label set and score it.

    The predictions are the product's: ``Classifier.phase_labels`` with the labelled curves
    fixed, in phase order along the ramp unless ``ordered`` is False. ``strain``,
    ``n_strained`` and ``whitening_strain`` go to ``fit_classifier``.
    """
    from napari_xrdphase.classify import fit_classifier

    stacks = [s.stack for s in suite]
    runs = []
    for labels in label_sets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            classifier = fit_classifier(
                encoder, stacks, labels, seed=0, ordered=ordered, strain=strain,
                n_strained=n_strained, whitening_strain=whitening_strain,
            )  # fmt: skip
        proba = {s.name: classifier.predict_proba(s) for s in stacks}
        classes = list(classifier.classes)
        predicted = {
            s.name: classifier.phase_labels(s, proba[s.name], labels.get(s.name)) for s in stacks
        }
        runs.append(score(suite, labels, predicted, proba, classes, classifier.phase_order))
    return runs


def raw_logistic_runs(suite, label_sets, ordered: bool = True) -> list[dict]:
    """Score logistic regression on the prepared curves (``protocol.raw_logistic_predictions``).

    Its probabilities are turned into labels as the product's are (``phase_labels``).
    """
    from sklearn.preprocessing import StandardScaler

    from benchmarks.protocol import _labelled, _logistic, prepared_curves, product_labels
    from napari_xrdphase.classify import check_labels, labelled_phase_order

    prepared = prepared_curves(suite)
    stacks = [s.stack for s in suite]
    runs = []
    for labels in label_sets:
        x, y = _labelled(prepared, labels)
        scaler = StandardScaler().fit(x)
        model = _logistic(0).fit(scaler.transform(x), y)
        proba = {n: model.predict_proba(scaler.transform(c)) for n, c in prepared.items()}
        classes = [str(c) for c in model.classes_]
        order = labelled_phase_order(check_labels(stacks, labels))[0] if ordered else None
        predicted = product_labels(suite, labels, classes, proba, ordered)
        runs.append(score(suite, labels, predicted, proba, classes, order))
    return runs


def summarise(runs) -> dict:
    """Mean ± std of the per-material scores, and the pooled boundary errors, over ``runs``."""
    out = {}
    for material in runs[0]["groups"]:
        for key in ("precision", "recall"):
            values = 100 * np.array([r["groups"][material][key] for r in runs])
            out[f"{material}_{key[0].upper()}"] = [float(values.mean()), float(values.std())]
    errors = [e for r in runs for b in r["boundaries"].values() for e in b["errors"]]
    covered = [c for r in runs for b in r["boundaries"].values() for c in b["covered"]]
    n_true = sum(len(b["errors"]) + b["missed"] for r in runs for b in r["boundaries"].values())
    out["boundary_median_error"] = float(np.median(errors)) if errors else None
    out["boundary_p90_error"] = float(np.percentile(errors, 90)) if errors else None
    out["boundaries_found"] = len(errors) / n_true if n_true else None
    out["boundaries_covered"] = float(np.mean(covered)) if covered else None
    out["spurious_per_series"] = float(
        np.mean([b["spurious"] for r in runs for b in r["boundaries"].values()])
    )
    return out


def series_table(suite) -> list[dict]:
    """Describe each series as read back: material, curves, points, axis, file, pressure range."""
    rows = []
    for s in suite:
        st = s.stack
        rows.append({
            "name": st.name, "material": s.material, "curves": st.n_curves,
            "points": int(st.axis.size), "axis": f"{st.axis_kind} [{st.axis_unit}]",
            "range": [float(st.axis.min()), float(st.axis.max())],
            "pressure": [float(np.min(st.variable)), float(np.max(st.variable))],
            "decompression": bool(st.variable[-1] < st.variable[0]),
            "source": st.metadata.get("source", ""),
            "wavelength": st.wavelength, "wavelength_given": s.wavelength_given,
            "classes": {str(c): int(n) for c, n in zip(*np.unique(s.labels, return_counts=True), strict=True)},
        })  # fmt: skip
    return rows


def report(result: dict, level: int = 1) -> str:
    """Return the markdown report of a run (its title a heading of ``level``)."""
    cfg = result["config"]
    materials = list(dict.fromkeys(r["material"] for r in result["series"]))
    lines = [
        "#" * level + " The product on an independent simulator's files",
        "",
        f"Independent suite seeds {cfg['data_seeds']}; {cfg['n_labels']} labels from "
        f"{', '.join(cfg['labelled'])}, "
        + (
            "3 per phase and series, the curves farthest from the other phases (--label-style "
            "far)"
            if cfg.get("label_style") == "far"
            else f"{100 * LABEL_FRACTION:.1f} %, {cfg['label_seeds']} draws"
        )
        + f"; pretrained: {cfg['method']}, {cfg['epochs']} epochs, seed 0, on every series "
        f"without labels. Weighted precision / recall in %, mean ± std over data seeds × draws; "
        + ("phases in order along the ramp, labelled curves fixed (the product's labels)."
           if cfg.get("ordered", True) else "each curve labelled on its own (--unordered).")
        + (f" Probe (not raw logistic regression): each labelled curve also under "
           f"{cfg['n_strained']} strains in ±{100 * cfg['strain']:g} %."
           if cfg.get("n_strained") else " Probe without strained copies.")
        + (f" Features whitened against a {100 * cfg['whitening_strain']:g} % strain."
           if cfg.get("whitening_strain") else " No strain whitening."),
        "",
        "| method | " + " | ".join(f"{m} P | {m} R" for m in materials)
        + " | boundary error, median / 90th pct | found | truth in interval | spurious / series |",
        "| --- |" + " --- |" * (2 * len(materials) + 4),
    ]  # fmt: skip
    for name, s in result["summary"].items():
        cells = [
            f"{s[f'{m}_{k}'][0]:.1f} ± {s[f'{m}_{k}'][1]:.1f}" for m in materials for k in "PR"
        ]
        med, p90 = s["boundary_median_error"], s["boundary_p90_error"]
        cells.append("–" if med is None else f"{med:.2f} / {p90:.2f} GPa")
        cells.append(
            "–" if s["boundaries_found"] is None else f"{100 * s['boundaries_found']:.0f} %"
        )
        cells.append(
            "–" if s["boundaries_covered"] is None else f"{100 * s['boundaries_covered']:.0f} %"
        )
        cells.append(f"{s['spurious_per_series']:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Recall per series on its unlabelled curves (mean over runs; * labelled series):",
        "",
    ]
    names = [r["name"] for r in result["series"]]
    labelled = set(cfg["labelled"])
    lines.append("| method | " + " | ".join(n + "*" * (n in labelled) for n in names) + " |")
    lines.append("| --- |" + " --- |" * len(names))
    for name, per_series in result["recall_per_series"].items():
        lines.append(f"| {name} | " + " | ".join(f"{per_series[n]:.1f}" for n in names) + " |")
    lines += ["", "Series (first data seed, as read back):", ""]
    lines.append("| series | material | curves | points | axis | pressure (GPa) | file |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for r in result["series"]:
        direction = "↓" if r["decompression"] else "↑"
        lines.append(
            f"| {r['name']} | {r['material']} | {r['curves']} | {r['points']} | {r['axis']} "
            f"{r['range'][0]:.3g}–{r['range'][1]:.3g} | {r['pressure'][0]:.1f}–"
            f"{r['pressure'][1]:.1f} {direction} | {Path(r['source']).name} |"
        )
    lines.append("")
    return "\n".join(lines)


def run(
    data_seeds=(0,), label_seeds: int = 3, epochs: int = 60, method: str | None = None,
    device: str = "cpu", input_length: int = 1024, ordered: bool = True,
    strain: float = PROBE_STRAIN, n_strained: int = PROBE_STRAIN_STEPS,
    label_style: str = "random", whitening_strain: float = PROBE_WHITENING_STRAIN,
) -> dict:  # fmt: skip
    """Score the methods on independent suites of ``data_seeds``; return the JSON-ready result.

    ``label_style`` "random": ``label_seeds`` draws of 2.8 % (``protocol.sample_labels``);
    "far": one set of 3 curves per phase and labelled series, farthest from the other phases
    (``protocol.far_labels``), as a user picks clear curves.

    ``epochs`` = 0 leaves out the ``pretrained`` row (no pretraining at all). ``ordered``
    False labels each curve on its own (``fit_classifier(ordered=False)``); ``strain`` and
    ``n_strained`` set the probe's strained copies and ``whitening_strain`` its strain
    whitening (``fit_classifier``'s).
    """
    from benchmarks.independent_suite import independent_suite
    from benchmarks.protocol import far_labels, sample_labels
    from napari_xrdphase.defaults import DEFAULT_METHOD
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.preprocess import common_window
    from napari_xrdphase.training import pretrain

    method = method or DEFAULT_METHOD
    probe = {
        "ordered": ordered, "strain": float(strain), "n_strained": int(n_strained),
        "whitening_strain": float(whitening_strain),
    }  # fmt: skip
    runs: dict[str, list] = {"builtin": [], "random_init": [], "raw_logistic": []}
    if epochs > 0:
        runs["pretrained"] = []
    timing, series, labelled, n_labels = {}, None, (), None
    start = time.perf_counter()
    for data_seed in data_seeds:
        with tempfile.TemporaryDirectory(prefix="xrdphase-independent-") as folder:
            suite = load_written_suite(independent_suite(seed=data_seed), folder)
            series = series if series is not None else series_table(suite)
        truth = {s.stack.name: s.labels for s in suite}
        labelled = labelled_series(suite)
        n_labels = max(1, round(LABEL_FRACTION * sum(len(y) for y in truth.values())))
        if label_style == "far":
            label_sets = [far_labels(truth, labelled)]
        else:
            label_sets = [
                sample_labels(truth, n_labels, series=labelled, seed=k) for k in range(label_seeds)
            ]
        n_labels = sum(len(rows) for rows in label_sets[0].values())
        runs["builtin"] += encoder_runs(Encoder.builtin(), suite, label_sets, **probe)
        window = common_window([s.stack for s in suite])
        untrained = Encoder.random(seed=0, input_length=input_length, window=window)
        runs["random_init"] += encoder_runs(untrained, suite, label_sets, **probe)
        runs["raw_logistic"] += raw_logistic_runs(suite, label_sets, ordered)
        if epochs > 0:
            t0 = time.perf_counter()
            encoder = pretrain(
                [s.stack for s in suite], method=method, epochs=epochs, seed=0, device=device,
                input_length=input_length,
            )  # fmt: skip
            timing.setdefault("pretrain_s", []).append(time.perf_counter() - t0)
            runs["pretrained"] += encoder_runs(encoder.to("cpu"), suite, label_sets, **probe)
        print(f"[independent] data seed {data_seed} done ({time.perf_counter() - start:.0f} s)",
              file=sys.stderr, flush=True)  # fmt: skip
    names = [r["name"] for r in series]
    return {
        "config": {
            "data_seeds": list(data_seeds), "label_seeds": label_seeds, "epochs": epochs,
            "method": method, "n_labels": n_labels, "labelled": list(labelled),
            "label_style": label_style, **probe,
        },
        "series": series,
        "summary": {name: summarise(r) for name, r in runs.items()},
        "recall_per_series": {
            name: {
                n: 100 * float(np.mean([x["series"][n]["recall"] for x in r])) for n in names
            }
            for name, r in runs.items()
        },
        "timing": timing,
        "runs": runs,
    }  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="independent data seeds")
    parser.add_argument("--label-seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=60, help="pretraining epochs (0: skip)")
    parser.add_argument("--method", default=None, help="pretraining method (default: the default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/independent")
    parser.add_argument(
        "--unordered", action="store_true",
        help="label each curve on its own instead of in phase order along the ramp",
    )  # fmt: skip
    parser.add_argument(
        "--strain", type=float, default=PROBE_STRAIN,
        help=f"probe strain, fit_classifier(strain=...) (default {PROBE_STRAIN:g}; 0: no copies)",
    )  # fmt: skip
    parser.add_argument(
        "--n-strained", type=int, default=PROBE_STRAIN_STEPS,
        help=f"strained copies per labelled curve (default {PROBE_STRAIN_STEPS})",
    )  # fmt: skip
    parser.add_argument(
        "--whitening-strain", type=float, default=PROBE_WHITENING_STRAIN,
        help="strain whitening of the probe's features, fit_classifier(whitening_strain=...) "
        f"(default {PROBE_WHITENING_STRAIN:g}; 0: off)",
    )  # fmt: skip
    parser.add_argument(
        "--label-style", choices=("random", "far"), default="random",
        help="random: --label-seeds draws of 2.8 %%; far: 3 curves per phase and series, "
        "farthest from the other phases",
    )  # fmt: skip
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = run(
        args.seeds,
        args.label_seeds,
        args.epochs,
        args.method,
        args.device,
        ordered=not args.unordered,
        strain=args.strain,
        n_strained=args.n_strained,
        label_style=args.label_style,
        whitening_strain=args.whitening_strain,
    )
    (out / "independent.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "independent.md").write_text(report(result))
    print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
