"""``xrdphase info``, ``simulate``, ``phases`` and ``pressure``: series, simulated suites, known phases."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import CommandError, _load_all, _output_path, _warn_repeated_curves
from .arguments import SIMULATION_FORMATS


def cmd_pressure(args: argparse.Namespace) -> None:
    """Fit the pressure of every curve from the calibrant's lines; write the CSV, print summaries."""
    import csv

    from .._files import atomic_write
    from ..pressure import fit_pressure, pressure_rows

    stacks = _load_all(args.paths, args.wavelength, args.variable)
    out = _output_path(args, inputs=list(args.paths))
    rows = []
    for stack in stacks:
        fit = fit_pressure(stack, args.calibrant, args.scale)
        print(fit.summary())
        rows += pressure_rows(fit)

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(out, write)
    print(f"wrote {out}", file=sys.stderr)


def cmd_info(args: argparse.Namespace) -> None:
    """Print a summary of each series."""
    for stack in _load_all(args.paths, args.wavelength, args.variable):
        var = stack.variable
        print(f"{stack.name}")
        print(f"  curves:   {stack.n_curves}")
        print(f"  points:   {stack.n_points}")
        print(
            f"  axis:     {stack.axis.min():g} – {stack.axis.max():g} {stack.axis_unit} ({stack.axis_kind})"
        )
        print(
            f"  {stack.variable_name + ':':<9} {var.min():g} – {var.max():g} {stack.variable_unit}".rstrip()
        )
        if stack.wavelength:
            print(f"  wavelength: {stack.wavelength:.5g} Å")
        elif stack.axis_kind == "2theta":
            print("  wavelength: none stated (2θ needs one for q: give --wavelength Å)")
        if stack.is_lazy:
            print("  storage:  on disk (lazy)")
        _warn_repeated_curves(stack)


def cmd_simulate(args: argparse.Namespace) -> None:
    """Write a simulated suite of series and its ground-truth labels.csv."""
    from ..io import save_stack, write_labels_csv
    from ..synth import paper_suite

    out = Path(args.outdir).expanduser()
    suite = paper_suite(seed=args.seed, n_points=args.points)
    targets = [out / f"{s.stack.name}{SIMULATION_FORMATS[args.format]}" for s in suite]
    existing = [t for t in [*targets, out / "labels.csv"] if t.exists()]
    if existing and not args.overwrite:
        raise CommandError(f"{existing[0]} exists and is kept; give --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for series, target in zip(suite, targets, strict=True):
        save_stack(series.stack, target, format=args.format)
        rows.extend((series.stack.name, i, str(lab)) for i, lab in enumerate(series.labels))
        print(f"wrote {target} ({series.stack.n_curves} curves)", file=sys.stderr)
    write_labels_csv(out / "labels.csv", rows)
    print(f"wrote {out / 'labels.csv'} ({len(rows)} labels)", file=sys.stderr)


def cmd_phases(args: argparse.Namespace) -> None:
    """Print the built-in phases (or the named ones): structure, scales, references."""
    from ..phases import builtin_phase_names, get_phase
    from ..phases.eos import EOS_FORMS

    names = args.names or builtin_phase_names()
    print("Equations of state are 300 K isotherms; * marks each phase's default scale.")
    for name in names:
        phase = get_phase(name)
        cell = phase.cell()
        size = f"a = {cell.a:.4f} Å" + (f", c = {cell.c:.4f} Å" if cell.c != cell.a else "")
        print(f"\n{phase.name}  {phase.structure}, {size} at 0 GPa ({phase.source})")
        if not phase.scales:
            print("    no equation of state (a CIF without K0): lines at 0 GPa only")
        for scale_name, eos in phase.scales.items():
            mark = "*" if scale_name == phase.default_scale else " "
            print(
                f"  {mark} {scale_name:<17} {EOS_FORMS[eos.form]:<26} V0 = {eos.v0:9.4f} Å³  "
                f"K0 = {eos.k0:7.2f} GPa  K0' = {eos.k0p:.3f}"
            )
            print(f"      {eos.reference}")
            if eos.note:
                print(f"      ({eos.note})")
        if args.lines is not None:
            print(f"    reflections at {args.lines:g} GPa:")
            for line in phase.reflections(args.lines):
                mult = "" if line.multiplicity is None else f"  m = {line.multiplicity}"
                print(f"      {line.label:<10} d = {line.d:.4f} Å  I = {line.intensity:5.1f}{mult}")
