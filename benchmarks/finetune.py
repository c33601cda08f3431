"""Pretraining from the built-in encoder (the default) against the built-in encoder and from scratch.

On the paper suite (``napari_xrdphase.synth.paper_suite``; pretraining on its pretraining series,
42 labels from D1, D4, D5, D8, D9 as in ``benchmarks.ablation``) and on the independent
simulator (``benchmarks.independent_suite``, written to files and read back; pretraining on
every series, 2.8 % labels as in ``benchmarks.independent``), with the same label draws:

* ``builtin``: the encoder shipped in the package;
* ``finetune``: ``pretrain(init="builtin")``, the default of ``xrdphase pretrain`` (stopping
  rule, at most ``--max-epochs``);
* ``random``: ``pretrain(init="random")`` for ``--random-epochs`` (the paper's from-scratch run).

Weighted precision / recall per material (the product's probe and labels), the separation score
each pretraining recorded against the built-in encoder, its chosen epoch and its time.

    python -m benchmarks.finetune [--max-epochs 30] [--random-epochs 60] [--label-seeds 3]
        [--data-seed 0] [--suites paper independent] [--out benchmarks/results/finetune/finetune.json]

Cost on 2 shared CPU threads: about 1 min per suite for the built-in rows, ~10 s per fine-tuning
epoch and ~8 s per from-scratch epoch on ~900 curves.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path


def _paper(data_seed: int, label_seeds: int):
    from benchmarks.ablation import PRETRAIN_SERIES
    from benchmarks.protocol import sample_labels
    from napari_xrdphase.synth import paper_suite

    suite = paper_suite(seed=data_seed)
    truth = {s.stack.name: s.labels for s in suite}
    label_sets = [sample_labels(truth, 42, seed=k) for k in range(label_seeds)]
    train = [s.stack for s in suite if s.stack.name in PRETRAIN_SERIES]
    return suite, label_sets, train


def _paper_scores(encoder, suite, label_sets) -> dict:
    from benchmarks.ablation import evaluate_encoder, summarise

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = evaluate_encoder(encoder, suite, label_sets)
    return {k: [100 * m, 100 * s] for k, (m, s) in summarise(runs).items()}


def _independent(data_seed: int, label_seeds: int):
    from benchmarks.independent import LABEL_FRACTION, labelled_series, load_written_suite
    from benchmarks.independent_suite import independent_suite
    from benchmarks.protocol import sample_labels

    with tempfile.TemporaryDirectory(prefix="xrdphase-finetune-") as folder:
        suite = load_written_suite(independent_suite(seed=data_seed), folder)
    truth = {s.stack.name: s.labels for s in suite}
    n_labels = max(1, round(LABEL_FRACTION * sum(len(y) for y in truth.values())))
    labelled = labelled_series(suite)
    label_sets = [
        sample_labels(truth, n_labels, series=labelled, seed=k) for k in range(label_seeds)
    ]
    return suite, label_sets, [s.stack for s in suite]


def _independent_scores(encoder, suite, label_sets) -> dict:
    from benchmarks.independent import encoder_runs, summarise

    summary = summarise(encoder_runs(encoder, suite, label_sets))
    return {k: v for k, v in summary.items() if k[-2:] in ("_P", "_R")}


SUITES = {"paper": (_paper, _paper_scores), "independent": (_independent, _independent_scores)}


def run(suites, data_seed, label_seeds, max_epochs, random_epochs, seed=0) -> dict:
    """Return {suite: {row: scores, …}} for the built-in, fine-tuned and from-scratch encoders."""
    import torch

    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.training import pretrain

    out = {
        "config": {
            "data_seed": data_seed, "label_seeds": label_seeds, "max_epochs": max_epochs,
            "random_epochs": random_epochs, "pretraining_seed": seed,
            "torch_threads": torch.get_num_threads(),
        },
    }  # fmt: skip
    for name in suites:
        make, scores = SUITES[name]
        suite, label_sets, train = make(data_seed, label_seeds)
        result = {"n_pretraining_curves": int(sum(s.n_curves for s in train))}
        result["builtin"] = scores(Encoder.builtin(), suite, label_sets)
        print(f"[finetune] {name} builtin {result['builtin']}", file=sys.stderr, flush=True)
        rows = [("finetune", "builtin", max_epochs)]
        if random_epochs > 0:
            rows.append(("random", "random", random_epochs))
        for row, init, epochs in rows:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                encoder = pretrain(train, epochs=epochs, seed=seed, device="cpu", init=init)
            seconds = time.perf_counter() - t0
            result[row] = scores(encoder, suite, label_sets)
            result[row + "_pretraining"] = {
                "seconds": seconds,
                "epochs_trained": encoder.config["training"]["epochs_completed"],
                "comparison": encoder.config.get("builtin_comparison"),
                "fine_tuning": encoder.config.get("fine_tuning"),
            }
            print(f"[finetune] {name} {row} ({seconds:.0f} s) {result[row]} "
                  f"{encoder.config['builtin_comparison']['message']}", file=sys.stderr, flush=True)  # fmt: skip
        out[name] = result
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", nargs="+", default=list(SUITES), choices=list(SUITES))
    parser.add_argument("--data-seed", type=int, default=0, help="simulated suite seed (default 0)")
    parser.add_argument("--label-seeds", type=int, default=3, help="label draws (default 3)")
    parser.add_argument("--max-epochs", type=int, default=30, help="fine-tuning cap (default 30)")
    parser.add_argument(
        "--random-epochs", type=int, default=60, help="from-scratch epochs (default 60; 0: skip)"
    )
    parser.add_argument("--out", default="benchmarks/results/finetune/finetune.json")
    args = parser.parse_args(argv)
    from napari_xrdphase._files import check_output_path

    out = check_output_path(args.out, inputs=[])
    result = run(args.suites, args.data_seed, args.label_seeds, args.max_epochs, args.random_epochs)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, default=str)[:3000])
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
