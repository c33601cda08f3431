"""The ``xrdphase`` command line: a thin door into the Python API."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

SIMULATION_FORMATS = {"xy": "", "h5": ".h5", "npz": ".npz"}


class CommandError(Exception):
    """An error the user can fix; printed without a traceback."""


def _print_err(message: str) -> None:
    print(f"xrdphase: {message}", file=sys.stderr)


def _load_all(paths: Sequence[str]):
    from .io import load_stack

    return [load_stack(p) for p in paths]


def cmd_info(args: argparse.Namespace) -> None:
    """Print a summary of each series."""
    for stack in _load_all(args.paths):
        var = stack.variable
        print(f"{stack.name}")
        print(f"  curves:   {stack.n_curves}")
        print(f"  points:   {stack.n_points}")
        print(f"  axis:     {stack.axis.min():g} – {stack.axis.max():g} {stack.axis_unit} ({stack.axis_kind})")
        print(f"  {stack.variable_name + ':':<9} {var.min():g} – {var.max():g} {stack.variable_unit}".rstrip())
        if stack.wavelength:
            print(f"  wavelength: {stack.wavelength:.5g} Å")
        if stack.is_lazy:
            print("  storage:  on disk (lazy)")


def cmd_simulate(args: argparse.Namespace) -> None:
    """Write a simulated suite of series and its ground-truth labels.csv."""
    from .io import save_stack, write_labels_csv
    from .synth import paper_suite

    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    suite = paper_suite(seed=args.seed, n_points=args.points)
    rows = []
    for series in suite:
        target = out / f"{series.stack.name}{SIMULATION_FORMATS[args.format]}"
        save_stack(series.stack, target, format=args.format)
        rows.extend((series.stack.name, i, str(lab)) for i, lab in enumerate(series.labels))
        print(f"wrote {target} ({series.stack.n_curves} curves)", file=sys.stderr)
    write_labels_csv(out / "labels.csv", rows)
    print(f"wrote {out / 'labels.csv'} ({len(rows)} labels)", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``xrdphase`` command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="xrdphase",
        description="Find phase transitions in series of 1D X-ray diffraction curves.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="summarise series (folders of .xy/.chi/..., .h5/.nxs, .npz)")
    info.add_argument("paths", nargs="+", metavar="PATH")
    info.set_defaults(func=cmd_info)

    sim = sub.add_parser("simulate", help="write the simulated paper suite D1–D9 with labels.csv")
    sim.add_argument("outdir", metavar="OUTDIR")
    sim.add_argument("--suite", choices=["paper"], default="paper")
    sim.add_argument("--format", choices=sorted(SIMULATION_FORMATS), default="h5")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--points", type=int, default=4000, help="points per curve (default 4000)")
    sim.set_defaults(func=cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xrdphase`` command; return its exit status."""
    from .io import ReaderError
    from .stack import StackError

    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda msg, *a, **k: _print_err(f"warning: {msg}")
        try:
            args.func(args)
        except (CommandError, ReaderError, StackError, ValueError, OSError) as exc:
            _print_err(f"error: {exc}")
            return 2
        except KeyboardInterrupt:
            _print_err("interrupted")
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
