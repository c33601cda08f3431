"""Encoders on structure types their training never showed (and on the Fe/FeO suites).

The built-in encoder is trained on ``napari_xrdphase.synth_library.training_library``, which
never contains the structure types of ``synth_library.LEFT_OUT_TYPES`` (spinel, wurtzite,
rutile). This benchmark simulates series made only of those types (``random_series`` with
``types=LEFT_OUT_TYPES``: first-order transitions between two of them and continuous
distortions of one; pressure and temperature series; data seed ``--data-seed``) and scores
each encoder with the paper's protocol: 3 % of the curves labelled, drawn from every series
with each class of a series labelled at least once (``benchmarks.protocol.sample_labels``),
one classifier for all series (the product's ``classify.fit_classifier``, its labels in phase
order along the ramp), weighted precision / recall on every unlabelled curve, averaged per
series and per left-out type (the series' low-variable phase), over ``--label-seeds`` label
draws (``out_of_family``). As a user with one new material would, ``out_of_family_per_series``
fits one classifier per series on that series' labels of the same draws (three or four).
``raw_logistic`` (logistic regression on the prepared curves) is the reference without an
encoder.

With ``--suites paper independent`` the same encoders are also scored on the Fe/FeO paper
suite and the independent simulator, as the ``builtin`` rows of ``benchmarks.finetune``.

    python -m benchmarks.out_of_family [--encoder NAME=PATH ...] [--series 18] [--data-seed 0]
        [--label-seeds 3] [--suites paper independent] [--out FILE] [--overwrite]

Without ``--encoder`` the shipped built-in encoder is scored (``builtin``). Writes
benchmarks/results/out_of_family/out_of_family.json unless ``--out`` is given. Cost on one thread
of the shared 2-core CPU: about 6 minutes for three encoders and every section (the series
simulate in a few seconds; most of the time is the per-series classifiers and the two Fe/FeO
suites).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from types import SimpleNamespace

import numpy as np

LABEL_FRACTION = 0.03


def out_of_family_suite(n_series: int = 18, seed: int = 0) -> list[SimpleNamespace]:
    """Return ``n_series`` series of left-out types only; ``material`` is the first phase's type."""
    from napari_xrdphase.synth_library import LEFT_OUT_TYPES, random_series

    suite = []
    for index in range(n_series):
        first = LEFT_OUT_TYPES[index % len(LEFT_OUT_TYPES)]
        series_seed = int(np.random.SeedSequence([int(seed), index]).generate_state(1)[0])
        series = random_series(
            series_seed, LEFT_OUT_TYPES, first_type=first, name=f"O{index:02d}_{first}"
        )
        suite.append(SimpleNamespace(stack=series.stack, labels=series.labels, material=first))
    return suite


def label_sets(suite, label_seeds: int) -> list[dict]:
    """Return ``label_seeds`` draws of LABEL_FRACTION of the curves, from every series."""
    from benchmarks.protocol import sample_labels

    truth = {s.stack.name: s.labels for s in suite}
    n_labels = max(1, round(LABEL_FRACTION * sum(len(y) for y in truth.values())))
    return [sample_labels(truth, n_labels, series=list(truth), seed=k) for k in range(label_seeds)]


def _scores(summary: dict) -> dict:
    scores = {k: v for k, v in summary.items() if k[-2:] in ("_P", "_R")}
    for key in ("P", "R"):
        values = [v[0] for k, v in scores.items() if k.endswith("_" + key)]
        scores["mean_" + key] = [float(np.mean(values)), None]
    return scores


def per_series_scores(runs_of, suite, labels) -> dict:
    """Score a classifier fitted on each series alone, with that series' labels of each draw.

    ``runs_of(suite, label_sets)`` is ``encoder_runs`` or ``raw_logistic_runs``; returns
    {"<type>_P"/"_R", "mean_P"/"_R": [mean, std over draws]}.
    """
    values: dict[str, list] = {}
    for series in suite:
        name = series.stack.name
        runs = runs_of([series], [{name: draw[name]} for draw in labels])
        for key in ("precision", "recall"):
            per_draw = [100 * r["series"][name][key] for r in runs]
            values.setdefault(f"{series.material}_{key[0].upper()}", []).append(per_draw)
            values.setdefault(f"mean_{key[0].upper()}", []).append(per_draw)
    # mean over series per draw, then mean ± std over draws
    return {
        k: [float(np.mean(np.mean(v, axis=0))), float(np.std(np.mean(v, axis=0)))]
        for k, v in values.items()
    }


def run(encoders: dict, n_series: int, data_seed: int, n_label_seeds: int, suites=()) -> dict:
    """Return {"config", "out_of_family": {row: scores}, suite: {row: scores}} for ``encoders``."""
    import torch

    from benchmarks.finetune import SUITES
    from benchmarks.independent import encoder_runs, raw_logistic_runs, summarise
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.synth_library import LEFT_OUT_TYPES

    suite = out_of_family_suite(n_series, data_seed)
    labels = label_sets(suite, n_label_seeds)
    out = {
        "config": {
            "left_out_types": list(LEFT_OUT_TYPES), "n_series": n_series,
            "n_curves": int(sum(s.stack.n_curves for s in suite)), "data_seed": data_seed,
            "label_seeds": n_label_seeds, "label_fraction": LABEL_FRACTION,
            "encoders": dict(encoders), "torch_threads": torch.get_num_threads(),
            "series": [{"name": s.stack.name, **{k: s.stack.metadata[k] for k in (
                "kind", "transition", "types", "formula", "direction")}} for s in suite],
        },
    }  # fmt: skip
    loaded = {
        name: Encoder.builtin() if path == "builtin" else Encoder.load(path)
        for name, path in encoders.items()
    }
    rows = {"raw_logistic": _scores(summarise(raw_logistic_runs(suite, labels)))}
    print(f"[out_of_family] raw_logistic {rows['raw_logistic']}", file=sys.stderr, flush=True)
    for name, encoder in loaded.items():
        t0 = time.perf_counter()
        rows[name] = _scores(summarise(encoder_runs(encoder, suite, labels)))
        print(f"[out_of_family] {name} ({time.perf_counter() - t0:.0f} s) {rows[name]}",
              file=sys.stderr, flush=True)  # fmt: skip
    out["out_of_family"] = rows
    # the product's use: a user labels a few curves of their own material's series
    per_series = {"raw_logistic": per_series_scores(raw_logistic_runs, suite, labels)}
    for name, encoder in loaded.items():
        per_series[name] = per_series_scores(
            lambda one, draws, e=encoder: encoder_runs(e, one, draws), suite, labels
        )
        print(f"[out_of_family] per series {name} {per_series[name]}", file=sys.stderr, flush=True)
    out["out_of_family_per_series"] = per_series
    for suite_name in suites:
        make, scores = SUITES[suite_name]
        other, other_labels, _ = make(data_seed, n_label_seeds)
        out[suite_name] = {}
        for name, encoder in loaded.items():
            out[suite_name][name] = scores(encoder, other, other_labels)
            print(f"[out_of_family] {suite_name} {name} {out[suite_name][name]}",
                  file=sys.stderr, flush=True)  # fmt: skip
    return out


def report(result: dict) -> str:
    """Return the result as Markdown tables (mean over label seeds, %)."""
    lines = []
    for section in ("out_of_family", "out_of_family_per_series", "paper", "independent"):
        if section not in result:
            continue
        rows = result[section]
        keys = sorted({k for v in rows.values() for k in v})
        lines += [f"## {section}", "", "| encoder | " + " | ".join(keys) + " |"]
        lines.append("|---" * (len(keys) + 1) + "|")
        for name, scores in rows.items():
            cells = [f"{scores[k][0]:.1f}" if k in scores else "" for k in keys]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _encoder_argument(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"give NAME=PATH (or NAME=builtin), got {text!r}")
    return name, path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", action="append", type=_encoder_argument, default=[],
                        metavar="NAME=PATH", help="an encoder file to score (repeat); "
                        "NAME=builtin: the shipped one (default: builtin=builtin)")  # fmt: skip
    parser.add_argument("--series", type=int, default=18, help="out-of-family series (18)")
    parser.add_argument("--data-seed", type=int, default=0, help="simulation seed (default 0)")
    parser.add_argument("--label-seeds", type=int, default=3, help="label draws (default 3)")
    parser.add_argument("--suites", nargs="*", default=[], choices=["paper", "independent"])
    parser.add_argument("--out", default="benchmarks/results/out_of_family/out_of_family.json")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    from napari_xrdphase._files import check_output_path

    out = check_output_path(args.out, inputs=[], overwrite=args.overwrite)
    encoders = dict(args.encoder) or {"builtin": "builtin"}
    result = run(encoders, args.series, args.data_seed, args.label_seeds, args.suites)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    out.with_suffix(".md").write_text(report(result))
    print(report(result))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
