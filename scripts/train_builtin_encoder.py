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
