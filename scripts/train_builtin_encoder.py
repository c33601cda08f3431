"""Reproduce the built-in encoder shipped in ``napari_xrdphase/models_data/``.

It is pretrained without labels by the default method on the simulated paper suite D1–D9,
simulated with a data seed (1000) that no test or benchmark uses, so that benchmarks never
evaluate the built-in encoder on curves it was trained on.

    OMP_NUM_THREADS=1 python scripts/train_builtin_encoder.py [--epochs N] [--device cpu]

(one CPU thread reproduces the shipped file exactly; other thread counts round differently)
"""

import argparse
import sys

from napari_xrdphase.cli import progress_printer
from napari_xrdphase.defaults import DEFAULT_EPOCHS, DEFAULT_METHOD
from napari_xrdphase.encoder import builtin_encoder_path
from napari_xrdphase.synth import paper_suite
from napari_xrdphase.training import pretrain

BUILTIN_DATA_SEED = 1000
# The q window (1/Å) the built-in encoder reads: d = 1.28–2.86 Å, the strong lines of Fe (bcc,
# hcp) and FeO, and of gold, Ne and NaCl. A setup covers it with 2θ from 5.8° to 13° at 0.29 Å,
# 8.2–18.2° at 0.41 Å, 10.0–22.5° at 0.50 Å; a series covering only part of a wider window is
# edge-padded at a place that depends on its geometry, which cost an untrained encoder 23 points
# of FeO precision on an independent simulator's series (docs/benchmarks.md).
BUILTIN_Q_RANGE = (2.2, 4.9)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default=DEFAULT_METHOD)
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu reproduces the shipped file exactly")
    parser.add_argument("--out", default=str(builtin_encoder_path()))
    args = parser.parse_args(argv)

    stacks = [s.stack for s in paper_suite(seed=BUILTIN_DATA_SEED)]

    encoder = pretrain(
        stacks,
        method=args.method,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
        q_range=BUILTIN_Q_RANGE,
        progress=progress_printer(every_s=30.0),
    )
    encoder.config["builtin"] = {
        "data": f"napari_xrdphase.synth.paper_suite(seed={BUILTIN_DATA_SEED})",
        "script": "scripts/train_builtin_encoder.py",
    }
    print(f"wrote {encoder.save(args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
