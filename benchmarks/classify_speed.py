"""End-to-end speed of ``xrdphase classify``: the marginal cost per curve, and where it goes.

Writes NeXus series of ``--points``-point curves (a simulated Fe compression, the same phase
fractions at every size) and a labels CSV with the same number of labelled curves at the same
places along each series, then times, in one process and interleaving the sizes so that other
jobs on the machine slow every size alike:

- ``cli``: ``xrdphase classify`` end to end, in process (``napari_xrdphase.cli.main``);
- its stages, as ``cmd_classify`` runs them: ``read`` (``load_stack``), ``fit``
  (``fit_classifier``: labelled curves, strained copies, strain whitening), ``prepare``
  (resampling and scaling of the whole series), ``embed`` (``Encoder.embed`` of the whole
  series, prepare included), ``probabilities`` (the classifier on the embeddings),
  ``results`` (ordered labels and boundaries, ``results.classify_series``) and ``write``
  (``write_predictions_csv``).

The marginal cost per curve of each is ``(t_large - t_small) / (n_large - n_small)``, medians of
``--repeats``. ``--subprocess`` also times the command as a user runs it (a fresh process,
import and model loading included), with and without ONNX Runtime (``XRDPHASE_ONNX=0``) and,
with ``--baseline-src``, the code of another version (a ``git archive`` of it), interleaved.
``--suite`` compares the labels of the paper suite through the fast path and the eager
forward. ``--profile`` prints the cProfile of one in-process run on the largest size, sorted by
cumulative time.

    python -m benchmarks.classify_speed [--sizes 2000 20000] [--points 4000] [--repeats 3]
        [--threads 2] [--subprocess [--baseline-src DIR]] [--suite] [--profile]
        [--no-onnx] [--workdir DIR]
        [--out benchmarks/results/classify_speed/classify_speed.json]

A quick run: ``--sizes 500 2500 --repeats 2``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_OUT = "benchmarks/results/classify_speed/classify_speed.json"
# phase fractions of the simulated series and labelled curves per phase (same at every size)
FRACTIONS = (0.35, 0.15, 0.50)
LABELS_PER_PHASE = 8
STAGES = ("read", "checks", "fit", "prepare", "embed", "probabilities", "results", "write")


def write_series(folder: Path, n_curves: int, n_points: int, seed: int = 0) -> tuple[Path, Path]:
    """Write ``folder/series.nxs`` (n_curves simulated Fe curves) and ``folder/labels.csv``."""
    from napari_xrdphase.io import save_stack, write_labels_csv
    from napari_xrdphase.synth import simulate_series

    data, labels = folder / "series.nxs", folder / "labels.csv"
    if data.is_file() and labels.is_file():
        return data, labels
    folder.mkdir(parents=True, exist_ok=True)
    counts = [round(f * n_curves) for f in FRACTIONS]
    counts[-1] = n_curves - sum(counts[:-1])
    series = simulate_series("Fe", *counts, n_points=n_points, seed=seed, name="series")
    save_stack(series.stack, data, format="nexus")
    rows, start = [], 0
    for count in counts:
        # LABELS_PER_PHASE curves spread over the middle of each phase's block of curves
        picks = start + np.linspace(0.2 * count, 0.8 * count, LABELS_PER_PHASE).round().astype(int)
        rows += [("series", int(i), str(series.labels[i])) for i in picks]
        start += count
    write_labels_csv(labels, rows)
    return data, labels


def time_stages(data: Path, labels_path: Path, out_csv: Path) -> dict[str, float]:
    """Return seconds per stage of ``cmd_classify`` on one series (see the module doc)."""
    from napari_xrdphase.classify import fit_classifier
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.io import load_stack, read_labels_csv, write_predictions_csv
    from napari_xrdphase.preprocess import prepare_stack
    from napari_xrdphase.results import classify_series
    from napari_xrdphase.stack import describe_repeated_curves

    times: dict[str, float] = {}
    clock = time.perf_counter
    t = clock()
    stack = load_stack(data)
    times["read"] = clock() - t
    t = clock()
    describe_repeated_curves(stack)
    times["checks"] = clock() - t
    labels = read_labels_csv(labels_path)
    encoder = Encoder.builtin()
    t = clock()
    classifier = fit_classifier(encoder, [stack], labels, seed=0)
    times["fit"] = clock() - t
    prep = encoder.config["preprocessing"]
    t = clock()
    prepare_stack(
        stack, encoder.input_length, tuple(prep["axis_range"]), 4096,
        axis_kind=prep["axis_kind"], axis_unit=prep["axis_unit"],
    )  # fmt: skip
    times["prepare"] = clock() - t
    t = clock()
    embeddings = encoder.embed(stack)
    times["embed"] = clock() - t
    t = clock()
    proba = classifier.predict_proba(embeddings)
    times["probabilities"] = clock() - t
    t = clock()
    result = classify_series(classifier, stack, proba, labels.get(stack.name))
    times["results"] = clock() - t
    t = clock()
    write_predictions_csv(
        out_csv, [(stack, result.labels, result.probabilities)], classifier.classes
    )
    times["write"] = clock() - t
    out_csv.unlink()
    return times


def classify_args(data: Path, labels_path: Path, out_csv: Path) -> list[str]:
    """The ``xrdphase classify`` arguments every timed run uses."""
    return [
        "classify",
        str(data),
        "--labels",
        str(labels_path),
        "--out",
        str(out_csv),
        "--overwrite",
    ]


def time_cli(
    data: Path, labels_path: Path, out_csv: Path, profile: cProfile.Profile | None = None
) -> float:
    """Return seconds of ``xrdphase classify`` run in this process (its output discarded)."""
    from napari_xrdphase.cli import main

    argv = classify_args(data, labels_path, out_csv)
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        t = time.perf_counter()
        if profile is not None:
            profile.enable()
        code = main(argv)
        if profile is not None:
            profile.disable()
        elapsed = time.perf_counter() - t
    if code not in (0, None):
        raise RuntimeError(f"xrdphase classify failed: {sink.getvalue()[-2000:]}")
    return elapsed


def time_subprocess(
    data: Path, labels_path: Path, out_csv: Path, source: str | None = None, onnx: bool = True
) -> float:
    """Return seconds of ``xrdphase classify`` in a fresh process (code from ``source``, else this one)."""
    argv = [
        sys.executable,
        "-c",
        "import sys; from napari_xrdphase.cli import main; sys.exit(main())",
    ]
    argv += classify_args(data, labels_path, out_csv)
    env = dict(os.environ, PYTHONPATH=source or str(Path(__file__).resolve().parents[1]))
    env["XRDPHASE_ONNX"] = "1" if onnx else "0"
    t = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - t


def suite_check(seed: int = 0, label_fraction: float = 0.03) -> dict:
    """Return the labels of the paper suite through ONNX Runtime vs the eager forward, and every difference.

    One classifier per material (the series of D1–D9 that share its classes), fitted on
    ``label_fraction`` of each series' curves (ground truth, evenly spread); each series is
    then embedded by the fast path and by the eager ``ConvSC.forward`` and labelled by
    ``results.classify_series`` (ordered labels, as ``xrdphase classify`` writes them).
    """
    from napari_xrdphase.classify import fit_classifier
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.results import classify_series
    from napari_xrdphase.synth import paper_suite

    encoder = Encoder.builtin()
    eager = Encoder(encoder.model, encoder.config)
    eager.fast_inference = False
    suite = paper_suite(seed=seed)
    groups: dict[tuple, list] = {}
    for series in suite:
        groups.setdefault(tuple(sorted(set(series.labels.tolist()))), []).append(series)
    out = {"backend": encoder.cpu_backend, "series": {}, "differences": []}
    for members in groups.values():
        stacks = [m.stack for m in members]
        labels = {}
        for m in members:
            n = m.stack.n_curves
            rows = np.unique(
                np.linspace(0, n - 1, max(3, round(label_fraction * n))).round().astype(int)
            )
            labels[m.stack.name] = {int(r): str(m.labels[r]) for r in rows}
        classifier = fit_classifier(encoder, stacks, labels, seed=seed)
        for m in members:
            found = {}
            for name, enc in (("fast", encoder), ("eager", eager)):
                embeddings = enc.embed(m.stack)
                proba = classifier.predict_proba(embeddings)
                found[name] = classify_series(
                    classifier, m.stack, proba, labels[m.stack.name]
                ).labels
                found[name + "_embeddings"] = embeddings
            differ = np.flatnonzero(found["fast"] != found["eager"])
            gap = np.abs(found["fast_embeddings"] - found["eager_embeddings"]).max()
            out["series"][m.stack.name] = {
                "curves": m.stack.n_curves, "differences": int(differ.size),
                "max_abs_embedding_difference": float(gap),
                "accuracy": float(np.mean(found["fast"] == m.labels)),
            }  # fmt: skip
            out["differences"] += [
                {"series": m.stack.name, "curve": int(i), "fast": str(found["fast"][i]),
                 "eager": str(found["eager"][i])}
                for i in differ
            ]  # fmt: skip
    return out


def marginal_us(small: float, large: float, n_small: int, n_large: int) -> float:
    """Return the cost of one more curve in µs."""
    return 1e6 * (large - small) / (n_large - n_small)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs=2,
        default=[2000, 20000],
        metavar=("SMALL", "LARGE"),
        help="curves in the small and the large series (default 2000 20000)",
    )
    parser.add_argument("--points", type=int, default=4000, help="points per curve (default 4000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per size (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--subprocess",
        action="store_true",
        help="also time `xrdphase classify` in fresh processes: this code with and without "
        "ONNX Runtime, and --baseline-src if given (default: off)",
    )
    parser.add_argument(
        "--baseline-src",
        default=None,
        metavar="DIR",
        help="a source tree of another version (e.g. `git archive` of the branch point) timed "
        "in fresh processes beside this one (default: none)",
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the large run")
    parser.add_argument(
        "--no-onnx",
        action="store_true",
        help="set XRDPHASE_ONNX=0: the PyTorch forward pass (default: as installed)",
    )
    parser.add_argument(
        "--workdir", default=None, help="where the series are written (default: temp)"
    )
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    parser.add_argument(
        "--suite",
        action="store_true",
        help="also compare the labels of the paper suite D1–D9 through the fast "
        "path and the eager forward (default: off)",
    )
    args = parser.parse_args(argv)  # fmt: skip
    if args.no_onnx:
        os.environ["XRDPHASE_ONNX"] = "0"
    import torch

    torch.set_num_threads(args.threads)
    small, large = sorted(args.sizes)
    context = (
        tempfile.TemporaryDirectory()
        if args.workdir is None
        else contextlib.nullcontext(args.workdir)
    )
    with context as work:
        work = Path(work)
        files = {
            n: write_series(work / f"n{n}_p{args.points}", n, args.points) for n in (small, large)
        }
        out_csv = work / "predictions.csv"
        time_cli(*files[small], out_csv)  # warm-up: imports, model, caches
        variants = ["subprocess", "subprocess_torch"] if args.subprocess else []
        variants += ["subprocess_baseline"] if args.subprocess and args.baseline_src else []
        runs = {
            n: {"cli": [], **{s: [] for s in STAGES}, **{v: [] for v in variants}}
            for n in (small, large)
        }
        for _ in range(args.repeats):
            for n in (small, large):
                runs[n]["cli"].append(time_cli(*files[n], out_csv))
                for stage, seconds in time_stages(*files[n], out_csv).items():
                    runs[n][stage].append(seconds)
                for variant in variants:
                    source = args.baseline_src if variant == "subprocess_baseline" else None
                    onnx = variant != "subprocess_torch"
                    runs[n][variant].append(time_subprocess(*files[n], out_csv, source, onnx))
        if args.profile:
            profile = cProfile.Profile()
            time_cli(*files[large], out_csv, profile)
            text = io.StringIO()
            pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(35)
            print(text.getvalue())
    check = suite_check() if args.suite else None
    if check is not None:
        print(
            f"paper suite: {len(check['differences'])} label differences fast vs eager "
            f"({check['backend']}); "
            + ", ".join(
                f"{k} {v['max_abs_embedding_difference']:.1e}" for k, v in check["series"].items()
            )
        )
    medians = {n: {k: statistics.median(v) for k, v in r.items() if v} for n, r in runs.items()}
    marginal = {
        k: marginal_us(medians[small][k], medians[large][k], small, large) for k in medians[large]
    }
    marginal["forward"] = marginal["embed"] - marginal["prepare"]
    from napari_xrdphase.encoder import Encoder

    report = {
        "sizes": [small, large],
        "points": args.points,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "forward_backend": getattr(Encoder.builtin(), "cpu_backend", "torch"),
        "marginal_us_per_curve": marginal,
        "median_s": {str(n): m for n, m in medians.items()},
        "suite_check": check,
        "runs_s": {str(n): r for n, r in runs.items()},
        "load_average": os.getloadavg(),
        "machine": platform.machine(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    print(f"backend {report['forward_backend']}, {args.points} points, {small} vs {large} curves")
    print(f"{'stage':<20} {'t_small s':>10} {'t_large s':>10} {'µs/curve':>9}")
    for k in marginal:
        ts = [medians[n].get(k, float("nan")) for n in (small, large)]
        print(f"{k:<20} {ts[0]:>10.3f} {ts[1]:>10.3f} {marginal[k]:>9.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
