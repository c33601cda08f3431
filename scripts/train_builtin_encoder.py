"""Reproduce the built-in encoder shipped in ``napari_xrdphase/models_data/``.

It is pretrained without labels by the default method on the broad synthetic training library
(``napari_xrdphase.synth_library.training_library``): pressure and temperature series of random
materials of many structure types through first-order and continuous transitions, drawn from
a data seed (1000) that no test or benchmark uses. The structure types of
``synth_library.LEFT_OUT_TYPES`` are never in it (``benchmarks/out_of_family.py`` tests on them).

    OMP_NUM_THREADS=1 python scripts/train_builtin_encoder.py [--series N] [--epochs N]

(one CPU thread reproduces the shipped file exactly; other thread counts round differently)

Cost with the defaults (BUILTIN_SERIES series, about 2,100 curves, BUILTIN_EPOCHS epochs): the
library is simulated in about 5 s; training takes about 45 s per epoch on one thread of the
project's shared 2-core CPU, about 30 minutes in all.
"""

import argparse
import sys

from napari_xrdphase.cli import progress_printer
from napari_xrdphase.defaults import DEFAULT_METHOD
from napari_xrdphase.encoder import builtin_encoder_path

BUILTIN_DATA_SEED = 1000
BUILTIN_SERIES = 36
BUILTIN_EPOCHS = 40
# The q window (1/Å) the built-in encoder reads: d = 1.28–2.86 Å, the strong lines of Fe (bcc,
# hcp) and FeO, and of gold, Ne and NaCl. A setup covers it with 2θ from 5.8° to 13° at 0.29 Å,
# 8.2–18.2° at 0.41 Å, 10.0–22.5° at 0.50 Å; a series covering only part of a wider window is
# edge-padded at a place that depends on its geometry, which cost an untrained encoder 23 points
# of FeO precision on an independent simulator's series (docs/benchmarks.md).
BUILTIN_Q_RANGE = (2.2, 4.9)


def train_builtin_encoder(
    n_series: int = BUILTIN_SERIES,
    epochs: int = BUILTIN_EPOCHS,
    data_seed: int = BUILTIN_DATA_SEED,
    seed: int = 0,
    method: str = DEFAULT_METHOD,
    device: str = "cpu",
    progress=None,
    with_paper_suite: bool = False,
):
    """Return the encoder pretrained on ``training_library(n_series, data_seed)``.

    ``with_paper_suite`` adds ``synth.paper_suite(data_seed)`` (the Fe/FeO series D1–D9).
    """
    from napari_xrdphase.synth import paper_suite
    from napari_xrdphase.synth_library import LEFT_OUT_TYPES, training_library
    from napari_xrdphase.training import pretrain

    library = training_library(n_series, seed=data_seed)
    if with_paper_suite:
        library += paper_suite(seed=data_seed)
    stacks = [s.stack for s in library]
    encoder = pretrain(
        stacks,
        method=method,
        epochs=epochs,
        seed=seed,
        device=device,
        q_range=BUILTIN_Q_RANGE,
        progress=progress,
    )
    encoder.config["builtin"] = {
        "data": f"napari_xrdphase.synth_library.training_library({n_series}, seed={data_seed})"
        + (f" + napari_xrdphase.synth.paper_suite(seed={data_seed})" if with_paper_suite else ""),
        "n_curves": int(sum(s.n_curves for s in stacks)),
        "left_out_types": list(LEFT_OUT_TYPES),
        "script": "scripts/train_builtin_encoder.py",
    }
    return encoder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default=DEFAULT_METHOD)
    parser.add_argument("--series", type=int, default=BUILTIN_SERIES)
    parser.add_argument("--epochs", type=int, default=BUILTIN_EPOCHS)
    parser.add_argument("--data-seed", type=int, default=BUILTIN_DATA_SEED)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--with-paper-suite", action="store_true", help="add the Fe/FeO paper suite D1–D9"
    )
    parser.add_argument("--device", default="cpu", help="cpu reproduces the shipped file exactly")
    parser.add_argument("--out", default=str(builtin_encoder_path()))
    args = parser.parse_args(argv)

    encoder = train_builtin_encoder(
        args.series,
        args.epochs,
        args.data_seed,
        args.seed,
        args.method,
        args.device,
        progress=progress_printer(every_s=30.0),
        with_paper_suite=args.with_paper_suite,
    )
    print(f"wrote {encoder.save(args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
