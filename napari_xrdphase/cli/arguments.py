"""The command-line options the sub-commands share, with their help texts."""

from __future__ import annotations

import argparse

from ..defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_METHOD,
    DEFAULT_MOCO_WEIGHT,
    FINETUNE_MAX_EPOCHS,
    PAPER_METHODS,
)

SIMULATION_FORMATS = {"xy": "", "h5": ".h5", "npz": ".npz"}


def add_pressure_from_argument(
    parser: argparse.ArgumentParser, live: bool = False, own_in_csv: bool = False
) -> None:
    """Add ``--pressure-from`` and ``--pressure-scale``: the fitted pressure as the variable.

    ``live``: new curves are fitted as they arrive; ``own_in_csv``: the predictions CSV keeps
    the series' own variable.
    """
    failing = (
        "a series with a curve whose fit fails is refused; each new curve's fit starts from "
        "the pressure of the curve before it, and a new curve whose fit fails gets no pressure"
        if live
        else "a series with a curve whose fit fails is refused"
    )
    kept = "; the series' own variable stays in the CSV" if own_in_csv else ""
    parser.add_argument(
        "--pressure-from", metavar="NAME",
        help="fit the pressure of every curve from the lines of this calibrant (Au, Pt, … or a "
        ".jcpds file) and use it as the external variable (boundaries in GPa"
        f"{kept}); {failing} (default: the series' own variable)",
    )  # fmt: skip
    parser.add_argument(
        "--pressure-scale", metavar="NAME",
        help="pressure scale of the calibrant for --pressure-from (default: its default scale, "
        "see `xrdphase phases`)",
    )  # fmt: skip


def add_classifier_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--seed``, ``--unordered``, ``--strain``, ``--whitening-strain``: the classifier's fit."""
    from ..defaults import PROBE_STRAIN, PROBE_WHITENING_STRAIN

    add_seed_argument(parser, "the cross-validation folds")
    parser.add_argument(
        "--unordered",
        action="store_true",
        help="label each curve with its most probable class; by default the phases are kept in "
        "the order of their labelled curves' external variable along each leg of the ramp",
    )
    parser.add_argument(
        "--strain",
        type=float,
        default=PROBE_STRAIN,
        metavar="FRACTION",
        help="also learn each labelled curve with its d-spacings scaled by 1 ± FRACTION, so that "
        f"phases are told by their pattern, not by pressure (default {PROBE_STRAIN:g}; 0: off)",
    )
    parser.add_argument(
        "--whitening-strain",
        type=float,
        default=PROBE_WHITENING_STRAIN,
        metavar="FRACTION",
        help="whiten the classifier's features against a uniform strain of this standard "
        "deviation, measured on the curves of every PATH, so that curves far in pressure from "
        f"the labelled ones keep their phase (default {PROBE_WHITENING_STRAIN:g}; 0: off)",
    )


def add_ignore_phases_arguments(parser: argparse.ArgumentParser, model_default: bool) -> None:
    """Add ``--ignore-phases`` and ``--ignore-width``: markers and media the encoder must not see."""
    from ..phases.masking import DEFAULT_WIDTH_FWHM

    default = (
        "default: what the --model was pretrained with, else none; '' for none"
        if model_default
        else "default: none"
    )
    parser.add_argument(
        "--ignore-phases",
        metavar="NAME[,NAME...]",
        help="pressure markers and media (built-in names as `xrdphase phases` lists them, or "
        ".jcpds or .cif files), e.g. Pt,Ne: their lines, placed at each curve's pressure (the "
        "external variable in GPa), are fitted and subtracted from every curve before it is "
        "embedded, "
        f"so they are never read as a phase change; Ne from 4.7 GPa, Ar from 1.3 GPa ({default})",
    )
    parser.add_argument(
        "--ignore-width",
        type=float,
        default=DEFAULT_WIDTH_FWHM,
        metavar="FWHM",
        help="where a line cannot be fitted (at the end of the axis), half-width of the window "
        "replaced by background instead, in the line's widths (FWHM) "
        f"(default {DEFAULT_WIDTH_FWHM:g})",
    )


def add_series_reading_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--wavelength`` and ``--variable``: how every command that reads series reads them."""
    add_wavelength_argument(parser)
    add_variable_argument(parser)


def add_wavelength_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wavelength",
        type=float,
        metavar="Å",
        help="X-ray wavelength in Å (0.05–5) for series whose files state none (Fit2D .chi, bare .xy): "
        "with it, series of different wavelengths or 2θ windows are compared in q "
        "(default: the wavelength the files state)",
    )


def add_variable_argument(parser: argparse.ArgumentParser) -> None:
    from ..io import INDEX_VARIABLE

    parser.add_argument(
        "--variable",
        metavar="NAME",
        help="the external variable: a metadata.csv column, HDF5 dataset or .npz entry "
        f"(default: found in the files); {INDEX_VARIABLE!r} for the acquisition order",
    )


PATHS_HELP = (
    "a series: a folder of .xy/.xye/.chi/.dat curves, or an .h5/.hdf5/.nxs (NeXus, Dioptas) "
    "or .npz file"
)


LABELS_HELP = (
    "CSV with columns dataset,index,label: dataset is the series' name as `xrdphase info` "
    "prints it (folder name or file stem), index the 0-based curve number"
)


MODEL_HELP = "encoder file from `xrdphase pretrain` (default: the encoder shipped with the package)"


def add_paths_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help=PATHS_HELP)


def add_seed_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help=f"seed of {what}; the same seed gives the same result (default 0)",
    )


def add_labels_out_model_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    """Add ``--labels``, ``--out`` and ``--model``: what classifying commands read and write."""
    parser.add_argument("--labels", required=True, metavar="LABELS.csv", help=LABELS_HELP)
    parser.add_argument("--out", required=True, metavar="PRED.csv", help=out_help)
    parser.add_argument("--model", metavar="MODEL", help=MODEL_HELP)


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the output if it exists (an input file is never replaced)",
    )


def add_pretraining_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    """Add the options ``xrdphase pretrain`` and the DDP launcher share to ``parser``."""
    add_paths_argument(parser)
    parser.add_argument("--out", required=True, metavar="MODEL", help=out_help)
    parser.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=(DEFAULT_METHOD, *PAPER_METHODS),
        help=f"pretraining method (default {DEFAULT_METHOD}); the paper's: "
        + ", ".join(PAPER_METHODS),
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="passes over all curves (default: with --init builtin at most "
        f"{FINETUNE_MAX_EPOCHS}, ended earlier by the stopping rule; with --init random "
        f"{DEFAULT_EPOCHS})",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"curves per training step (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--c",
        type=float,
        default=DEFAULT_MOCO_WEIGHT,
        help=f"weight of the MoCo loss in specrrmoco (default {DEFAULT_MOCO_WEIGHT:g})",
    )
    add_seed_argument(parser, "the weights, augmentations and batches")
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where to train: auto takes a CUDA GPU when there is one (default auto)",
    )
    parser.add_argument(
        "--q-range",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="q window (1/Å) the encoder reads, inside the range every series covers "
        "(default: all of that range)",
    )
    add_series_reading_arguments(parser)
    add_overwrite_argument(parser)
