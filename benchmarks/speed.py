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


def main(argv=None) -> int:
    """Measure and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["xrdphase", "specrrmoco"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/speed.json")
    args = parser.parse_args(argv)

    import torch

    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.synth import paper_suite
    from napari_xrdphase.training import pretrain

    suite = paper_suite(seed=0)
    train = [s.stack for s in suite if s.stack.name in PRETRAIN_SERIES]
    results = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch_threads": torch.get_num_threads(),
            "device": args.device,
        },
        "seconds_per_epoch": {},
    }
    for method in args.methods:
        epoch_times = []

        def record(info, times=epoch_times):
            if info["step_in_epoch"] == info["steps_per_epoch"]:
                times.append(info["elapsed_s"])

        pretrain(train, method=method, epochs=args.epochs, device=args.device, progress=record)
        per_epoch = np.diff([0.0, *epoch_times])
        # the first epoch carries start-up costs; report the median of the rest when there is one
        results["seconds_per_epoch"][method] = float(
            np.median(per_epoch[1:] if len(per_epoch) > 1 else per_epoch)
        )
        print(
            f"{method}: {results['seconds_per_epoch'][method]:.2f} s/epoch on {len(train)} series",
            file=sys.stderr,
        )

    encoder = Encoder.random(seed=0).to(args.device)
    stack = suite[-1].stack
    encoder.embed(stack)  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        encoder.embed(stack)
        times.append(time.perf_counter() - start)
    results["inference_us_per_curve"] = float(np.median(times) / stack.n_curves * 1e6)
    print(
        f"inference: {results['inference_us_per_curve']:.0f} µs/curve ({stack.n_curves} curves × {stack.n_points} points)",
        file=sys.stderr,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
