"""Reproduce the built-in encoder shipped in ``napari_xrdphase/models_data/``, or train a broad one.

The shipped file is pretrained without labels by the default method on the simulated paper
suite D1–D9 (``--data paper``, the default: ``synth.paper_suite(seed=1000)``, 60 epochs),
a data seed that no test or benchmark uses, so that benchmarks never evaluate the built-in
encoder on curves it was trained on.

``--data library`` trains on the broad synthetic training library instead
(``napari_xrdphase.synth_library.training_library(36, seed=1000)``: pressure and temperature
series of random materials of 12 structure types through first-order and continuous
transitions, about 2,050 curves, 40 epochs); the types of ``synth_library.LEFT_OUT_TYPES`` are
never in it (``benchmarks/out_of_family.py`` tests on them). ``--data library+paper`` trains
on both (25 epochs). Neither replaced the shipped file: on the paper suite and the independent
simulator they scored 2.9 and 4.7 points below it on average (docs/benchmarks.md, "A built-in
encoder from the training library").

    OMP_NUM_THREADS=1 python scripts/train_builtin_encoder.py [--data paper|library|library+paper]
        [--series N] [--epochs N] [--out FILE]

(one CPU thread reproduces the shipped file exactly; other thread counts round differently)

Cost on one thread of the project's shared 2-core CPU: ``paper`` 1,516 curves, 22.5 s per
epoch, 23 min; ``library`` 2,053 curves simulated in about 5 s, 45 s per epoch, 30 min;
``library+paper`` 3,569 curves, 57 s per epoch, 24 min.
"""

import argparse
import sys

from napari_xrdphase.cli import progress_printer
from napari_xrdphase.defaults import DEFAULT_METHOD
from napari_xrdphase.encoder import builtin_encoder_path

BUILTIN_DATA_SEED = 1000
LIBRARY_SERIES = 36
# the data each recipe trains on, and its epochs (sized for ≤ ~35 min on one CPU thread)
EPOCHS = {"paper": 60, "library": 40, "library+paper": 25}
SHIPPED_DATA = "paper"
# The q window (1/Å) the built-in encoder reads: d = 1.28–2.86 Å, the strong lines of Fe (bcc,
# hcp) and FeO, and of gold, Ne and NaCl. A setup covers it with 2θ from 5.8° to 13° at 0.29 Å,
# 8.2–18.2° at 0.41 Å, 10.0–22.5° at 0.50 Å; a series covering only part of a wider window is
# edge-padded at a place that depends on its geometry, which cost an untrained encoder 23 points
# of FeO precision on an independent simulator's series (docs/benchmarks.md).
BUILTIN_Q_RANGE = (2.2, 4.9)


def training_series(data: str, n_series: int = LIBRARY_SERIES, data_seed: int = BUILTIN_DATA_SEED):
    """Return (the SimulatedSeries of recipe ``data``, a description of them for the config)."""
    from napari_xrdphase.synth import paper_suite
    from napari_xrdphase.synth_library import training_library

    if data not in EPOCHS:
        raise ValueError(f"unknown data {data!r}; use one of {', '.join(EPOCHS)}")
    series, parts = [], []
    if "library" in data:
        series += training_library(n_series, seed=data_seed)
        parts.append(
            f"napari_xrdphase.synth_library.training_library({n_series}, seed={data_seed})"
        )
    if "paper" in data:
        series += paper_suite(seed=data_seed)
        parts.append(f"napari_xrdphase.synth.paper_suite(seed={data_seed})")
    return series, " + ".join(parts)


def train_builtin_encoder(
    data: str = SHIPPED_DATA,
    n_series: int = LIBRARY_SERIES,
    epochs: int | None = None,
    data_seed: int = BUILTIN_DATA_SEED,
    seed: int = 0,
    method: str = DEFAULT_METHOD,
    device: str = "cpu",
    progress=None,
):
    """Return the encoder pretrained on recipe ``data`` (``EPOCHS[data]`` epochs unless given)."""
    from napari_xrdphase.synth_library import LEFT_OUT_TYPES
    from napari_xrdphase.training import pretrain

    series, description = training_series(data, n_series, data_seed)
    stacks = [s.stack for s in series]
    encoder = pretrain(
        stacks,
        method=method,
        epochs=EPOCHS[data] if epochs is None else epochs,
        seed=seed,
        device=device,
        q_range=BUILTIN_Q_RANGE,
        progress=progress,
    )
    encoder.config["builtin"] = {"data": description, "script": "scripts/train_builtin_encoder.py"}
    if "library" in data:
        encoder.config["builtin"]["left_out_types"] = list(LEFT_OUT_TYPES)
    return encoder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=SHIPPED_DATA, choices=list(EPOCHS))
    parser.add_argument("--method", default=DEFAULT_METHOD)
    parser.add_argument("--series", type=int, default=LIBRARY_SERIES, help="library series")
    parser.add_argument("--epochs", type=int, default=None, help="default: by --data")
    parser.add_argument("--data-seed", type=int, default=BUILTIN_DATA_SEED)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu reproduces the shipped file exactly")
    parser.add_argument("--out", default=str(builtin_encoder_path()))
    args = parser.parse_args(argv)

    encoder = train_builtin_encoder(
        args.data,
        args.series,
        args.epochs,
        args.data_seed,
        args.seed,
        args.method,
        args.device,
        progress=progress_printer(every_s=30.0),
    )
    print(f"wrote {encoder.save(args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
