"""Linear evaluation on the simulated paper suite (the paper's Table 2 protocol).

Pretrain on D1, D4, D8, D9 without labels; fit the linear classifier on 42 labelled curves
(≈ 2.8 %) from D1, D4, D5, D8, D9; test on every other curve. Weighted precision and recall are
averaged within Fe (D1–D7) and FeO (D8–D9); mean ± std over pretraining seeds × label seeds.
Baselines get the same labels: an untrained (random-init) encoder and logistic regression on
the raw, normalised curves.

    python -m benchmarks.linear_eval --epochs 30 --seeds 3 --label-seeds 3 --out results.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.protocol import PRETRAIN_SERIES, sample_labels, test_rows, weighted_scores

ENCODER_METHODS = ("specrrmoco", "specrr", "specmoco", "specselftime")


def _raw_logistic(suite, labels, seed):
    """Return predictions of L2 logistic regression on the raw, prepared curves (baseline)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from napari_xrdphase.preprocess import prepare_stack

    prepared = {s.stack.name: prepare_stack(s.stack) for s in suite}
    x = np.concatenate([prepared[name][sorted(rows)] for name, rows in labels.items()])
    y = np.concatenate([[rows[i] for i in sorted(rows)] for rows in labels.values()])
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced", random_state=seed)
    model.fit(scaler.transform(x), y)
    return {name: model.predict(scaler.transform(data)) for name, data in prepared.items()}


def _encoder_predictions(encoder, suite, labels, seed):
    from napari_xrdphase.classify import fit_classifier

    stacks = [s.stack for s in suite]
    classifier = fit_classifier(encoder, stacks, labels, seed=seed)
    return {s.name: classifier.predict(s) for s in stacks}


def _mean_std(runs, group, key):
    values = [r["groups"][group][key] for r in runs]
    return float(np.mean(values)), float(np.std(values))


def run(args: argparse.Namespace) -> dict:
    """Run the evaluation and return the results as a JSON-able dict."""
    import torch

    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.synth import paper_suite
    from napari_xrdphase.training import pretrain

    suite = paper_suite(seed=args.data_seed, n_points=args.points)
    truth = {s.stack.name: s.labels for s in suite}
    pretrain_stacks = [s.stack for s in suite if s.stack.name in PRETRAIN_SERIES]
    label_sets = [sample_labels(truth, args.n_labels, seed=k) for k in range(args.label_seeds)]
    methods = args.methods or list(ENCODER_METHODS)
    results: dict = {
        "protocol": {
            "pretrain": list(PRETRAIN_SERIES),
            "n_labels": args.n_labels,
            "n_curves": int(sum(len(y) for y in truth.values())),
            "epochs": args.epochs,
            "seeds": args.seeds,
            "label_seeds": args.label_seeds,
            "points": args.points,
            "data_seed": args.data_seed,
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "methods": {},
    }

    def evaluate(name, predict):
        runs = []
        for labels in label_sets:
            predicted = predict(labels)
            runs.append(weighted_scores(truth, predicted, test_rows(truth, labels)))
        return runs

    def record(name, runs, extra=None):
        summary = {
            f"{g}_{k}": _mean_std(runs, g, k) for g in ("Fe", "FeO") for k in ("precision", "recall")
        }
        results["methods"][name] = {"summary": summary, **(extra or {})}
        line = "  ".join(f"{k} {m * 100:5.1f}±{s * 100:4.1f}" for k, (m, s) in summary.items())
        print(f"{name:<16} {line}", file=sys.stderr, flush=True)

    record("raw_logistic", evaluate("raw", lambda lab: _raw_logistic(suite, lab, 0)))
    random_runs = []
    for seed in range(args.seeds):
        encoder = Encoder.random(seed=seed)
        random_runs += evaluate("random", lambda lab, e=encoder: _encoder_predictions(e, suite, lab, 0))
    record("random_init", random_runs)

    for method in methods:
        runs, epoch_seconds = [], []
        for seed in range(args.seeds):
            start = time.perf_counter()
            encoder = pretrain(
                pretrain_stacks, method=method, epochs=args.epochs, device=args.device, seed=seed
            )
            epoch_seconds.append((time.perf_counter() - start) / args.epochs)
            runs += evaluate(method, lambda lab, e=encoder: _encoder_predictions(e, suite, lab, 0))
        record(method, runs, {"seconds_per_epoch": float(np.median(epoch_seconds))})

    # inference speed of the last encoder, steady state, batched
    stack = suite[-1].stack
    encoder.embed(stack)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        encoder.embed(stack)
        times.append(time.perf_counter() - start)
    results["inference_us_per_curve"] = float(np.median(times) / stack.n_curves * 1e6)
    print(f"inference: {results['inference_us_per_curve']:.0f} µs/curve", file=sys.stderr)
    return results


def main(argv=None) -> int:
    """Parse arguments, run, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3, help="pretraining seeds")
    parser.add_argument("--label-seeds", type=int, default=3)
    parser.add_argument("--n-labels", type=int, default=42)
    parser.add_argument("--points", type=int, default=4000)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--methods", nargs="*")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="benchmarks/results/linear_eval.json")
    args = parser.parse_args(argv)
    results = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
