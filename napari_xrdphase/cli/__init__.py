"""The ``xrdphase`` command line: a thin door into the Python API.

One module per group of sub-commands: ``series`` (info, simulate, phases, pressure),
``training`` (pretrain), ``classifying`` (classify, watch, suggest, segment), ``demo``;
``arguments`` holds the options they share and ``_common`` the loading and printing helpers.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from ._common import CommandError, _load_all, _output_path, _print_err
from .arguments import (
    LABELS_HELP,
    MODEL_HELP,
    PATHS_HELP,
    SIMULATION_FORMATS,
    add_classifier_arguments,
    add_ignore_phases_arguments,
    add_labels_out_model_arguments,
    add_overwrite_argument,
    add_paths_argument,
    add_pressure_from_argument,
    add_pretraining_arguments,
    add_seed_argument,
    add_series_reading_arguments,
)
from .classifying import cmd_classify, cmd_segment, cmd_suggest, cmd_watch
from .demo import _demo_pressure, _demo_screenshot, cmd_demo
from .series import cmd_info, cmd_phases, cmd_pressure, cmd_simulate
from .training import cmd_pretrain, progress_printer, report_training_check

__all__ = [
    "CommandError",
    "_demo_pressure",
    "_demo_screenshot",
    "_load_all",
    "_output_path",
    "add_pretraining_arguments",
    "build_parser",
    "main",
    "progress_printer",
    "report_training_check",
]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``xrdphase`` command."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="xrdphase",
        description="Find phase transitions in series of 1D X-ray diffraction curves.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="summarise series (folders of .xy/.chi/..., .h5/.nxs, .npz)")
    add_paths_argument(info)
    add_series_reading_arguments(info)
    info.set_defaults(func=cmd_info)

    sim = sub.add_parser("simulate", help="write the simulated paper suite D1–D9 with labels.csv")
    sim.add_argument(
        "outdir", metavar="OUTDIR", help="folder to write the series and labels.csv to"
    )
    sim.add_argument(
        "--suite", choices=["paper"], default="paper", help="which suite (default paper: D1–D9)"
    )
    sim.add_argument(
        "--format",
        choices=sorted(SIMULATION_FORMATS),
        default="h5",
        help="h5: one NeXus file per series; xy: one folder of .xy curves per series; "
        "npz: one NumPy archive per series (default h5)",
    )
    add_seed_argument(sim, "the simulation")
    sim.add_argument("--points", type=int, default=4000, help="points per curve (default 4000)")
    add_overwrite_argument(sim)
    sim.set_defaults(func=cmd_simulate)

    pre = sub.add_parser("pretrain", help="pretrain an encoder without labels")
    add_pretraining_arguments(pre, out_help="model file to write (.safetensors)")
    pre.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="write the training state here after every epoch and resume from it if it exists "
        "(default: no checkpoint)",
    )
    pre.add_argument(
        "--init",
        choices=("builtin", "random"),
        default="builtin",
        help="builtin: fine-tune the built-in encoder (its q window, lr 0.015, features pulled "
        "toward the built-in ones, best epoch by a separation score on your curves); random: "
        "train from scratch as in the paper (default builtin)",
    )
    add_pressure_from_argument(pre)
    add_ignore_phases_arguments(pre, model_default=False)
    pre.set_defaults(func=cmd_pretrain)

    cls = sub.add_parser("classify", help="classify every curve from a few labelled ones")
    add_paths_argument(cls)
    add_labels_out_model_arguments(cls, out_help="predictions CSV to write, one row per curve")
    add_classifier_arguments(cls)
    add_ignore_phases_arguments(cls, model_default=True)
    add_series_reading_arguments(cls)
    add_pressure_from_argument(cls, own_in_csv=True)
    cls.add_argument(
        "--compare-encoders",
        action="store_true",
        help="also fit the classifier on the built-in encoder and print both cross-validated "
        "scores on the labelled curves (needs --model; the --model is still the one used; "
        "default off)",
    )
    add_overwrite_argument(cls)
    cls.set_defaults(func=cmd_classify)

    watch = sub.add_parser(
        "watch", help="classify a series, then each new curve in its folder or HDF5 file (live)"
    )
    watch.add_argument("path", metavar="PATH", help="a folder of curve files or an HDF5/NeXus file")
    add_labels_out_model_arguments(watch, out_help="predictions CSV, appended as curves arrive")
    watch.add_argument(
        "--poll", type=float, default=0.5, help="seconds between looks for new curves (default 0.5)"
    )
    watch.add_argument(
        "--timeout", type=float, default=None, metavar="S",
        help="stop after S seconds without new curves (default: run until Ctrl-C)",
    )  # fmt: skip
    add_classifier_arguments(watch)
    add_ignore_phases_arguments(watch, model_default=True)
    add_series_reading_arguments(watch)
    add_pressure_from_argument(watch, live=True, own_in_csv=True)
    add_overwrite_argument(watch)
    watch.set_defaults(func=cmd_watch)

    sug = sub.add_parser(
        "suggest", help="propose the curves to label next (works with no labels too)"
    )
    add_paths_argument(sug)
    sug.add_argument(
        "--labels", metavar="LABELS.csv",
        help=LABELS_HELP + " (default: none yet; curves spread over each series are proposed)",
    )  # fmt: skip
    sug.add_argument(
        "--out", required=True, metavar="SUGGEST.csv",
        help="CSV to write: dataset,index,<variable>,predicted,confidence,novelty, best first",
    )  # fmt: skip
    sug.add_argument("-n", type=int, default=5, help="how many curves to propose (default 5)")
    sug.add_argument("--model", metavar="MODEL", help=MODEL_HELP)
    add_seed_argument(sug, "the classifier's folds and the clustering without labels")
    add_ignore_phases_arguments(sug, model_default=True)
    add_series_reading_arguments(sug)
    add_pressure_from_argument(sug)
    add_overwrite_argument(sug)
    sug.set_defaults(func=cmd_suggest)

    segm = sub.add_parser(
        "segment", help="propose phases without labels: change points along each series"
    )
    add_paths_argument(segm)
    segm.add_argument(
        "--out", required=True, metavar="SEGMENTS.csv",
        help="CSV to write, one row per curve: dataset,index,<variable>,segment (S1, S2, ...)",
    )  # fmt: skip
    segm.add_argument("--model", metavar="MODEL", help=MODEL_HELP)
    add_ignore_phases_arguments(segm, model_default=True)
    add_series_reading_arguments(segm)
    add_pressure_from_argument(segm)
    add_overwrite_argument(segm)
    segm.set_defaults(func=cmd_segment)

    demo = sub.add_parser(
        "demo", help="open napari with the sample series (or PATHs) and the docks"
    )
    demo.add_argument(
        "paths", nargs="*", metavar="PATH", help=PATHS_HELP + " (default: the simulated Fe sample)"
    )
    demo.add_argument("--labels", metavar="LABELS.csv", help=LABELS_HELP)
    demo.add_argument(
        "--screenshot", metavar="OUT.png",
        help="label two curves per phase, classify, answer one round of suggested curves from the "
        "simulated truth, classify again, save a screenshot of the window and exit (default: keep "
        "napari open)",
    )  # fmt: skip
    add_seed_argument(demo, "the labelled curves and the classifier")
    add_pressure_from_argument(demo)
    add_overwrite_argument(demo)
    demo.set_defaults(func=cmd_demo)

    phases = sub.add_parser(
        "phases", help="list the built-in pressure markers and media with their scales"
    )
    phases.add_argument(
        "names", nargs="*", metavar="PHASE",
        help="built-in phase names, .jcpds or .cif files to describe (default: every built-in "
        "phase)",
    )  # fmt: skip
    phases.add_argument(
        "--lines", type=float, default=None, metavar="GPA",
        help="also list each phase's reflections (hkl, d, multiplicity, intensity) at GPA, "
        "with the default scale (default: no reflections)",
    )  # fmt: skip
    phases.set_defaults(func=cmd_phases)

    pressure = sub.add_parser(
        "pressure", help="fit the pressure of every curve from the lines of a calibrant"
    )
    add_paths_argument(pressure)
    pressure.add_argument(
        "--calibrant", required=True, metavar="NAME",
        help="the pressure marker in the sample: a built-in phase (Au, Pt, …; see `xrdphase "
        "phases`) or a .jcpds file",
    )  # fmt: skip
    pressure.add_argument(
        "--scale", metavar="NAME",
        help="pressure scale of the calibrant (default: its default scale)",
    )  # fmt: skip
    pressure.add_argument(
        "--out", required=True, metavar="PRESSURE.csv",
        help="CSV to write: dataset,index,pressure_gpa,pressure_sigma_gpa,lines_used (pressure "
        "empty where the fit failed)",
    )  # fmt: skip
    add_series_reading_arguments(pressure)
    add_overwrite_argument(pressure)
    pressure.set_defaults(func=cmd_pressure)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xrdphase`` command; return its exit status."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda msg, *a, **k: _print_err(f"warning: {msg}")
        try:
            args.func(args)
        except BrokenPipeError:  # the reader went away (`xrdphase info ... | head`): not an error
            # stdout can no longer be flushed at exit: point it at devnull, as Python's docs advise
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        # every error a user can cause is a ValueError subclass (ReaderError, StackError,
        # LabelError, ModelError, ClassifierError) or an OSError
        except (CommandError, ValueError, OSError) as exc:
            _print_err(f"error: {exc}")
            return 2
        except KeyboardInterrupt:
            _print_err("interrupted")
            return 130
    return 0
