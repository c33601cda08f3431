"""CPU/GPU speed: pretraining seconds per epoch and inference microseconds per curve.

Median of repeated runs in one process; prints numbers and writes JSON.

    python -m benchmarks.speed [--device cpu] [--epochs 2] [--out benchmarks/results/speed.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.protocol import PRETRAIN_SERIES


def measure(
    device: str = "cpu",
    epochs: int = 2,
    methods=("xrdphase", "specrrmoco"),
    repeats: int = 5,
    n_points: int = 4000,
    input_length: int = 1024,
    train_stride: int = 1,
    inference_length: int = 1024,
) -> dict:
    """Return {machine, seconds_per_epoch: {method: s}, inference_us_per_curve, ...}.

    Pretrains each of ``methods`` for ``epochs`` on D1, D4, D8, D9 of the paper suite (every
    ``train_stride``-th curve; ``methods=()`` skips pretraining) and times ``Encoder.embed`` of a
    random-init encoder (``inference_length`` input points) on D9, median of ``repeats``.
    """
    import torch

    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.synth import paper_suite
    from napari_xrdphase.training import pretrain

    suite = paper_suite(seed=0, n_points=n_points)
    train = [
        s.stack.subset(slice(None, None, train_stride)) if train_stride > 1 else s.stack
        for s in suite
        if s.stack.name in PRETRAIN_SERIES
    ]
    results = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch_threads": torch.get_num_threads(),
            "device": device,
        },
        "setup": {
            "epochs": epochs,
            "n_points": n_points,
            "input_length": input_length,
            "train_curves": int(sum(s.n_curves for s in train)),
            "inference_length": inference_length,
            "repeats": repeats,
        },
        "seconds_per_epoch": {},
    }
    for method in methods:
        epoch_times = []

        def record(info, times=epoch_times):
            if info["step_in_epoch"] == info["steps_per_epoch"]:
                times.append(info["elapsed_s"])

        pretrain(
            train, method=method, epochs=epochs, device=device, progress=record,
            input_length=input_length,
        )  # fmt: skip
        per_epoch = np.diff([0.0, *epoch_times])
        # the first epoch carries start-up costs; report the median of the rest when there is one
        results["seconds_per_epoch"][method] = float(
            np.median(per_epoch[1:] if len(per_epoch) > 1 else per_epoch)
        )
        print(
            f"{method}: {results['seconds_per_epoch'][method]:.2f} s/epoch on {len(train)} series",
            file=sys.stderr,
        )

    encoder = Encoder.random(seed=0, input_length=inference_length).to(device)
    stack = suite[-1].stack
    encoder.embed(stack)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        encoder.embed(stack)
        times.append(time.perf_counter() - start)
    results["inference_us_per_curve"] = float(np.median(times) / stack.n_curves * 1e6)
    print(
        f"inference: {results['inference_us_per_curve']:.0f} µs/curve ({stack.n_curves} curves × {stack.n_points} points)",
        file=sys.stderr,
    )
    return results


def main(argv=None) -> int:
    """Measure and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["xrdphase", "specrrmoco"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/speed.json")
    args = parser.parse_args(argv)

    results = measure(args.device, args.epochs, args.methods, args.repeats)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
