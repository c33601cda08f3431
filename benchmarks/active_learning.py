"""Ask, don't guess: does labelling the curves ``suggest`` proposes beat labelling others?

A simulated user starts from one labelled curve per phase in a single series per material
(the series drawn by the seed among those that hold all three phases, the curve at random in
each phase), then repeats: fit the classifier (the product's ``fit_classifier`` defaults,
strain whitening included), ask for ``--batch`` curves, answer them from the simulated truth,
refit — up to ``--rounds`` rounds (6 × 4 = 24 answered curves over the whole suite). Beside
it, with the same starting labels and the same number of labels per round:

* ``random``: curves drawn at random among the unlabelled curves of the whole suite;
* ``far``: the curves a beamline scientist labels by eye (``protocol.far_labels``' ranking):
  in each series and phase the curves farthest (in rows) from any other phase, taken in turn
  over (series, phase) pairs in a seeded order.

After each round every unlabelled curve of every series is scored: weighted precision /
recall of the product's labels (``results.classify_series``: phase order along the ramp,
labelled curves pinned), averaged per material — the metric of the other benchmarks.

Also: ``propose_phases`` (``xrdphase segment``, no labels) against the truth — adjusted Rand
index and phases found per series (``benchmarks.segment``, which runs it alone) — and the
median time of ``suggest_curves`` on 2,000 curves
(classifier and embeddings given: the cost of choosing, not of embedding).

Embeddings are cached by the exact curves embedded (``CachedEncoder``): every fit embeds the
same strain-whitening sample, so the cache changes no number, only the time.

    python -m benchmarks.active_learning [--seeds 0 1 2 3 4] [--rounds 6] [--batch 4]
        [--paper-only] [--quick] [--out DIR]

Writes DIR/active_learning.json and DIR/active_learning.md
(default DIR: benchmarks/results/active_learning).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
import warnings

import numpy as np

from benchmarks._report import write_report
from benchmarks.protocol import GROUPS, unlabelled_rows, weighted_scores
from benchmarks.segment import segment_scores, segment_table

STRATEGIES = ("suggest", "random", "far")


class CachedEncoder:
    """An encoder whose ``embed`` remembers its answer for the exact same curves."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self.cache: dict[str, np.ndarray] = {}

    def __getattr__(self, name):
        return getattr(self.encoder, name)

    def embed(self, data, *args, **kwargs):
        from napari_xrdphase.stack import SpectraStack

        if not isinstance(data, SpectraStack) or args or kwargs:
            return self.encoder.embed(data, *args, **kwargs)
        digest = hashlib.sha1()
        digest.update(np.ascontiguousarray(np.asarray(data.intensities)).tobytes())
        digest.update(np.ascontiguousarray(data.axis).tobytes())
        digest.update(f"{data.axis_kind}|{data.axis_unit}|{data.wavelength}".encode())
        key = digest.hexdigest()
        if key not in self.cache:
            self.cache[key] = self.encoder.embed(data)
        return self.cache[key]


def start_labels(truth, materials, seed):
    """One labelled curve per phase in one series per material, drawn by ``seed``."""
    rng = np.random.default_rng(seed)
    labels = {}
    for names in materials.values():
        full = [n for n in names if np.unique(truth[n]).size == 3]
        name = full[int(rng.integers(len(full)))]
        y = np.asarray(truth[name])
        labels[name] = {int(rng.choice(np.flatnonzero(y == c))): str(c) for c in np.unique(y)}
    return labels


def far_order(truth, seed):
    """Every curve as a by-eye labeller takes them: farthest from another phase first.

    Series × phase queues (rows sorted by distance to the nearest other phase, farthest
    first), visited in turn in a seeded order of the queues.
    """
    queues = []
    for name, y in truth.items():
        y = np.asarray(y)
        rows = np.arange(y.size)
        for cls in np.unique(y):
            own, others = rows[y == cls], rows[y != cls]
            distance = (
                np.abs(own[:, None] - others[None, :]).min(axis=1)
                if others.size
                else np.zeros(own.size, dtype=int)
            )
            queues.append([(name, int(r)) for r in own[np.argsort(-distance, kind="stable")]])
    rng = np.random.default_rng(seed)
    queues = [queues[i] for i in rng.permutation(len(queues))]
    order = []
    for depth in range(max(len(q) for q in queues)):
        order += [q[depth] for q in queues if depth < len(q)]
    return order


def evaluate(classifier, stacks, embeddings, truth, labels, materials):
    """Weighted precision/recall of the product's labels on every unlabelled curve."""
    from napari_xrdphase.results import classify_series

    predicted = {}
    for stack in stacks:
        proba = classifier.predict_proba(embeddings[stack.name])
        result = classify_series(classifier, stack, proba, labels.get(stack.name))
        predicted[stack.name] = np.asarray(result.labels)
    scores = weighted_scores(truth, predicted, unlabelled_rows(truth, labels))
    groups = {}
    for material, names in materials.items():
        present = [scores["series"][n] for n in names]
        groups[material] = {
            k: float(np.mean([s[k] for s in present])) for k in ("precision", "recall")
        }
    return {"series": scores["series"], "groups": groups}


def run_strategy(strategy, encoder, stacks, embeddings, truth, materials, seed, rounds, batch):
    """Return the scores after each round (0 = the starting labels) and the labels asked."""
    from napari_xrdphase.classify import fit_classifier
    from napari_xrdphase.suggest import suggest_curves

    labels = {k: dict(v) for k, v in start_labels(truth, materials, seed).items()}
    rng = np.random.default_rng(1000 + seed)
    queue = far_order(truth, seed)
    history, asked = [], []
    for round_ in range(rounds + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            classifier = fit_classifier(encoder, stacks, labels, seed=seed)
        history.append(evaluate(classifier, stacks, embeddings, truth, labels, materials))
        if round_ == rounds:
            break
        if strategy == "suggest":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                picks = suggest_curves(
                    encoder, stacks, labels, batch, seed=seed, classifier=classifier,
                    embeddings=embeddings,
                )  # fmt: skip
            chosen = [(p.dataset, p.index) for p in picks]
        elif strategy == "random":
            free = [(n, int(r)) for n, rows in unlabelled_rows(truth, labels).items() for r in rows]
            chosen = [free[i] for i in rng.choice(len(free), size=batch, replace=False)]
        else:
            chosen = [(n, r) for n, r in queue if r not in labels.get(n, {})][:batch]
        for name, row in chosen:
            labels.setdefault(name, {})[row] = str(truth[name][row])
        asked.append(chosen)
    return history, asked


def suggest_time(encoder, n_curves=2000, repeats=5):
    """Median seconds of ``suggest_curves`` on ``n_curves`` curves (classifier, embeddings given)."""
    from napari_xrdphase.classify import fit_classifier
    from napari_xrdphase.suggest import suggest_curves
    from napari_xrdphase.synth import simulate_series

    third = n_curves // 3
    series = simulate_series("Fe", third, n_curves - 2 * third, third, n_points=1500, seed=7)
    stack = series.stack
    embeddings = {stack.name: encoder.embed(stack)}
    y = np.asarray(series.labels)
    labels = {stack.name: {int(np.flatnonzero(y == c)[0]): str(c) for c in np.unique(y)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classifier = fit_classifier(encoder, [stack], labels, whitening_strain=0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        suggest_curves(
            encoder, [stack], labels, 4, classifier=classifier, embeddings=embeddings
        )  # fmt: skip
        times.append(time.perf_counter() - start)
    return {"curves": stack.n_curves, "median_s": float(np.median(times)), "repeats": repeats}


def run_suite(label, stacks, truth, materials, decompression, encoder, args):
    embeddings = {s.name: encoder.embed(s) for s in stacks}
    result = {"strategies": {}, "segment": None}
    for strategy in STRATEGIES:
        runs = []
        for seed in args.seeds:
            start = time.perf_counter()
            history, asked = run_strategy(
                strategy, encoder, stacks, embeddings, truth, materials, seed, args.rounds,
                args.batch,
            )  # fmt: skip
            runs.append({"seed": seed, "history": history, "asked": asked})
            print(
                f"[{label}] {strategy} seed {seed}: "
                + " ".join(f"{h['groups'][m]['recall']:.3f}" for h in history for m in materials)
                + f" ({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        result["strategies"][strategy] = runs
    result["segment"] = segment_scores(encoder, stacks, truth, decompression, embeddings)
    return result


def summary_table(result, materials, rounds, batch):
    """Markdown rows: labels asked | per strategy and material, mean (min–max) P / R."""
    lines = [
        "| answered | "
        + " | ".join(f"{s} {m} P / R" for s in STRATEGIES for m in materials)
        + " |",
        "|---" * (1 + len(STRATEGIES) * len(materials)) + "|",
    ]
    for r in range(rounds + 1):
        cells = []
        for strategy in STRATEGIES:
            runs = result["strategies"][strategy]
            for m in materials:
                p = [run["history"][r]["groups"][m]["precision"] for run in runs]
                q = [run["history"][r]["groups"][m]["recall"] for run in runs]
                cells.append(
                    f"{100 * np.mean(p):.1f} / {100 * np.mean(q):.1f} "
                    f"({100 * min(q):.1f}–{100 * max(q):.1f})"
                )
        lines.append(f"| {r * batch} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.active_learning", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="seeds of the starting labels, random draws and far order (default 0–4)",
    )
    parser.add_argument("--rounds", type=int, default=6, help="rounds of questions (default 6)")
    parser.add_argument("--batch", type=int, default=4, help="curves asked per round (default 4)")
    parser.add_argument(
        "--paper-only",
        action="store_true",
        help="skip the independent simulator (benchmarks.independent_suite; default: both suites)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one seed, 3 rounds, paper suite only, no timing on 2,000 curves (a smoke run)",
    )
    parser.add_argument(
        "--out",
        default="benchmarks/results/active_learning",
        help="folder of active_learning.json / .md (default %(default)s)",
    )
    args = parser.parse_args(argv)  # fmt: skip
    if args.quick:
        args.seeds, args.rounds, args.paper_only = args.seeds[:1], min(args.rounds, 3), True

    import torch

    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.synth import PAPER_SUITE, paper_suite

    # the fits are tiny (tens of labelled curves): on a shared CPU, torch's thread pool makes
    # the L-BFGS steps ~15× slower than one thread (measured: 15 s → 0.8 s per fit)
    torch.set_num_threads(1)

    encoder = CachedEncoder(Encoder.builtin())
    out = {"settings": vars(args).copy(), "suites": {}}
    started = time.perf_counter()
    suite = paper_suite(0)
    stacks = [s.stack for s in suite]
    truth = {s.stack.name: np.asarray(s.labels) for s in suite}
    decompression = {spec.name: spec.decompression for spec in PAPER_SUITE}
    out["suites"]["paper"] = run_suite(
        "paper", stacks, truth, GROUPS, decompression, encoder, args
    )  # fmt: skip
    if not args.paper_only:
        from benchmarks.independent import load_written_suite
        from benchmarks.independent_suite import independent_suite

        with tempfile.TemporaryDirectory() as folder:
            loaded = load_written_suite(independent_suite(0), folder)
        stacks = [s.stack for s in loaded]
        truth = {s.stack.name: np.asarray(s.labels) for s in loaded}
        materials = {}
        for s in loaded:
            materials.setdefault(s.material, []).append(s.stack.name)
        decompression = {s.name: s.decompression for s in independent_suite(0)}
        out["suites"]["independent"] = run_suite(
            "independent", stacks, truth, materials, decompression, encoder, args
        )  # fmt: skip
    if not args.quick:
        out["suggest_time"] = suggest_time(encoder.encoder)
    out["seconds"] = time.perf_counter() - started

    lines = ["# Active learning: suggest vs random vs far labels", ""]
    lines.append(
        f"Built-in encoder, product defaults; seeds {args.seeds}; {args.batch} curves per round;"
        " weighted precision / recall (%) of every unlabelled curve, mean over seeds "
        "(recall min–max)."
    )
    for name, result in out["suites"].items():
        materials = {
            m: 0 for m in next(iter(result["strategies"]["suggest"]))["history"][0]["groups"]
        }
        lines += ["", f"## {name} suite", ""]
        lines += summary_table(result, materials, args.rounds, args.batch)
        lines += ["", f"### segment (no labels), {name} suite", ""]
        lines += segment_table(result["segment"])
    if "suggest_time" in out:
        t = out["suggest_time"]
        lines += ["", f"suggest on {t['curves']} curves: median {t['median_s']:.2f} s "
                  f"(classifier and embeddings given, {t['repeats']} runs)"]  # fmt: skip
    lines.append(f"\ntotal {out['seconds']:.0f} s")
    write_report(args.out, "active_learning", out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
