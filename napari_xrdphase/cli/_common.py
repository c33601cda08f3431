"""What every sub-command shares: loading series, output paths, errors and printed summaries."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class CommandError(Exception):
    """An error the user can fix; printed without a traceback."""


def _print_err(message: str) -> None:
    print(f"xrdphase: {message}", file=sys.stderr)


# --wavelength outside this range (Å) is a unit mistake: 0.05 Å is 250 keV, 5 Å is 2.5 keV
WAVELENGTH_RANGE = (0.05, 5.0)


def _load_all(
    paths: Sequence[str],
    wavelength: float | None = None,
    variable: str | None = None,
    pressure_from: str | None = None,
    pressure_scale: str | None = None,
):
    """Load every path; ``wavelength`` (Å) is given to the series whose files state none.

    ``variable`` names the external variable of every series (see ``load_stack``);
    ``pressure_from`` names a calibrant whose fitted pressure becomes every series' variable.
    """
    from ..io import load_stack

    if wavelength is not None and not (math.isfinite(wavelength) and wavelength > 0):
        raise CommandError(f"--wavelength must be a positive number of Å, got {wavelength}")
    if wavelength is not None and not WAVELENGTH_RANGE[0] <= wavelength <= WAVELENGTH_RANGE[1]:
        low, high = WAVELENGTH_RANGE
        hint = ""
        if wavelength < 1e-6:
            hint = f"; in metres that is {wavelength * 1e10:.4g} Å"
        elif wavelength < low:
            hint = f"; in nm that is {wavelength * 10:.4g} Å"
        raise CommandError(
            f"--wavelength is in Å, and X-ray diffraction uses {low:g}–{high:g} Å; "
            f"got {wavelength:g}{hint}"
        )
    stacks = [load_stack(p, variable=variable) for p in paths]
    for stack in stacks:
        if stack.wavelength is None and wavelength is not None:
            stack.wavelength = float(wavelength)
    if pressure_from is not None:
        from ..pressure import with_fitted_pressure

        stacks = [with_fitted_pressure(s, pressure_from, pressure_scale) for s in stacks]
        for s in stacks:
            _print_pressure(s)
    return stacks


def _print_pressure(stack: Any) -> None:
    """Print the range of a series' fitted pressure (``pressure.stack_with_pressure``)."""
    import numpy as np

    sigma = np.median(stack.metadata["pressure_sigma_gpa"])
    print(
        f"{stack.name}: pressure from {stack.metadata['pressure_calibrant']}: "
        f"{stack.variable.min():.2f}–{stack.variable.max():.2f} GPa (median σ {sigma:.2f} GPa)",
        file=sys.stderr,
    )


def _unique_names(stacks) -> None:
    seen: dict[str, int] = {}
    for s in stacks:
        seen[s.name] = seen.get(s.name, 0) + 1
    twice = sorted(k for k, v in seen.items() if v > 1)
    if twice:
        raise CommandError(
            f"several series are named {', '.join(twice)}; labels name series by folder name "
            "or file stem, so give each series a distinct name"
        )


def _warn_repeated_curves(stack: Any) -> None:
    from ..stack import describe_repeated_curves

    message = describe_repeated_curves(stack)
    if message:
        _print_err(f"warning: {message}")


def _warn_constant_variable(stack: Any) -> None:
    if stack.n_curves > 1 and not float(stack.variable.max() - stack.variable.min()) > 0:
        value = f"{stack.variable[0]:g} {stack.variable_unit}".rstrip()
        _print_err(
            f"warning: {stack.name}: {stack.variable_name} is {value} on every curve, so "
            "boundaries cannot be placed in it and the phases are not kept in order; read "
            "the curve numbers, or pick another variable with --variable (--variable index: "
            "the acquisition order)"
        )


def _print_phase_order(classifier: Any, stack: Any) -> None:
    hint = "" if classifier.phase_order is None else " (--unordered: each curve on its own)"
    print(classifier.describe_phase_order(stack.variable_name) + hint, file=sys.stderr)


def _print_boundaries(name: str, boundaries, labels, indices=None) -> None:
    """Print a series' summary (``results.describe_series``); ``indices``: each row's curve number."""
    from ..results import describe_series

    print("\n".join(describe_series(name, labels, boundaries, indices=indices)), flush=True)


def _output_path(args: argparse.Namespace, inputs: Sequence[Any]) -> Path:
    """Return ``args.out`` when writing it destroys nothing; else a one-line ``OutputError``."""
    from .._files import check_output_path

    return check_output_path(args.out, inputs=inputs, overwrite=getattr(args, "overwrite", False))
