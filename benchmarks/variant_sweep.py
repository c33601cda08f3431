"""Method variants × data seeds, pretrained in parallel processes, each probed two ways.

The exploration behind docs/benchmarks.md "What did not help" (session 2, one H200, 16 jobs at
once): variants of the xrdphase objectives and augmentations, optionally pretrained on every
series (transductive), each scored with the L-BFGS linear probe of Table 2 and with a probe fit
on strain-augmented copies of the labelled curves (each labelled curve re-sampled at uniform
d-spacing strains of −3 … +3 %, which should make the probe blind to pressure).

    python -m benchmarks.variant_sweep --device cuda --jobs 16 --variants base s6 \\
        --data-seeds 0 1 [--transductive base] [--out DIR]

One JSON line per pretraining is appended to DIR/variant_sweep.jsonl as it finishes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

SCORED_SERIES = ("D2", "D3", "D5", "D6", "D7", "D8", "D9")
PROBE_STRAINS = tuple(np.linspace(-0.03, 0.03, 7))


def _with_strain(max_strain: float) -> tuple:
    from napari_xrdphase.augment import PHYSICS_PIPELINE

    return tuple(
        ("d_stretch", {"max_strain": max_strain})
        if isinstance(step, tuple) and step[0] == "d_stretch"
        else step
        for step in PHYSICS_PIPELINE
    )


def variant_specs() -> dict[str, dict | None]:
    """Return {name: MethodSpec fields}; None = a method registered in ``ssl.METHODS``."""
    from napari_xrdphase.augment import PHYSICS_PIPELINE

    rr = ("inter", "intra", "external")
    return {
        "base": {"objectives": rr, "moco_weight": 0.0, "augmentations": PHYSICS_PIPELINE},
        "s6": {"objectives": rr, "moco_weight": 0.0, "augmentations": _with_strain(0.06)},
        "noext": {
            "objectives": ("inter", "intra"), "moco_weight": 0.0,
            "augmentations": PHYSICS_PIPELINE,
        },
        "noext_s6": {
            "objectives": ("inter", "intra"), "moco_weight": 0.0,
            "augmentations": _with_strain(0.06),
        },
        "inter_s6": {
            "objectives": ("inter",), "moco_weight": 0.0, "augmentations": _with_strain(0.06),
        },
        "ext_s6": {
            "objectives": ("external",), "moco_weight": 0.0, "augmentations": _with_strain(0.06),
        },
        "specrrmoco": None,
    }  # fmt: skip


def strained_copies(stack, rows, strains, input_length: int = 1024) -> np.ndarray:
    """Return prepared copies of ``rows`` at each uniform d-spacing strain (rows × strains)."""
    from napari_xrdphase.preprocess import minmax_rows, target_axis
    from napari_xrdphase.stack import convert_axis

    grid = target_axis(stack.axis, input_length)
    q_source = stack.axis_as("q")
    q_grid = convert_axis(grid, stack.axis_kind, stack.axis_unit, "q", None, stack.wavelength)
    order = np.argsort(q_source)
    curves = stack.curves(list(rows)).astype(np.float64)[:, order]
    # strain ε scales every d by (1 + ε): the strained curve at q is the original at q·(1 + ε)
    copies = [np.interp(q_grid * (1 + e), q_source[order], c) for c in curves for e in strains]
    return minmax_rows(np.array(copies))


def _mean_recall(runs) -> dict[str, float]:
    return {
        name: round(100 * float(np.mean([r["series"][name]["recall"] for r in runs])), 1)
        for name in SCORED_SERIES
    }


def _group_means(runs) -> dict[str, float]:
    from benchmarks.ablation import summarise

    return {key: round(100 * value[0], 1) for key, value in summarise(runs).items()}


def score_variant(encoder, suite) -> dict:
    """Score ``encoder`` with the L-BFGS probe of Table 2 and with a strain-augmented-label probe."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from benchmarks.ablation import evaluate_encoder
    from benchmarks.protocol import sample_labels, unlabelled_rows, weighted_scores

    truth = {s.stack.name: s.labels for s in suite}
    stacks = {s.stack.name: s.stack for s in suite}
    label_sets = [sample_labels(truth, 42, seed=k) for k in range(3)]
    embedded = {n: encoder.embed(s) for n, s in stacks.items()}
    lbfgs_runs = evaluate_encoder(encoder, suite, label_sets, embedded=embedded)
    strain_runs = []
    for labels in label_sets:
        x, y = [], []
        for n, rows in labels.items():
            ordered = sorted(rows)
            x.append(encoder.embed(strained_copies(stacks[n], ordered, PROBE_STRAINS)))
            y += [rows[i] for i in ordered for _ in PROBE_STRAINS]
        scaler = StandardScaler().fit(np.concatenate(x))
        probe = LogisticRegression(max_iter=5000, class_weight="balanced")
        probe.fit(scaler.transform(np.concatenate(x)), np.array(y))
        predicted = {n: probe.predict(scaler.transform(e)) for n, e in embedded.items()}
        strain_runs.append(weighted_scores(truth, predicted, unlabelled_rows(truth, labels)))
    return {
        "lbfgs": _group_means(lbfgs_runs), "lbfgs_series": _mean_recall(lbfgs_runs),
        "strainprobe": _group_means(strain_runs), "strainprobe_series": _mean_recall(strain_runs),
    }  # fmt: skip


def main(argv=None) -> int:
    from benchmarks.ablation import Pretrainer, make_job
    from napari_xrdphase import ssl
    from napari_xrdphase.synth import paper_suite

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["base"], choices=list(variant_specs()))
    parser.add_argument("--transductive", nargs="*", default=[], choices=list(variant_specs()))
    parser.add_argument("--data-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    args = parser.parse_args(argv)
    for name, fields in variant_specs().items():
        if fields is not None:
            ssl.METHODS[name] = ssl.MethodSpec(description=f"variant {name}", **fields)
    runs = [
        (name, d, transductive)
        for names, transductive in ((args.variants, False), (args.transductive, True))
        for name in names
        for d in args.data_seeds
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(runs)} pretrainings, {args.jobs} at a time", file=sys.stderr, flush=True)
    start = time.perf_counter()
    suites = {d: paper_suite(d) for d in args.data_seeds}
    with Pretrainer(args.jobs) as pretrainer, open(out / "variant_sweep.jsonl", "a") as log:
        jobs = [
            make_job(
                name,
                0,
                args.epochs,
                args.device,
                data_seed=d,
                n_points=4000,
                input_length=1024,
                transductive=transductive,
            )
            for name, d, transductive in runs
        ]
        for job in jobs:
            pretrainer.submit(job)
        for (name, d, transductive), job in zip(runs, jobs, strict=True):
            record = {"name": name, "data_seed": d, "seed": 0, "transductive": transductive,
                      "epochs": args.epochs}  # fmt: skip
            try:
                encoder, record["s_per_epoch"] = pretrainer.result(job)
                record.update(score_variant(encoder, suites[d]))
            except Exception as exc:  # one failed variant must not lose the others
                record["error"] = repr(exc)
            record["wall_s"] = round(time.perf_counter() - start)
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
