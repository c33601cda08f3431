"""Known phases: built-in markers and media, JCPDS and CIF files, EOS, cells and powder lines.

``get_phase("Au")``, ``get_phase("path/to/file.jcpds")`` or ``get_phase("file.cif")`` returns a ``Phase``; its
``reflections(pressure, wavelength=...)`` are the lines to draw or to fit, its
``pressure(volume)`` / ``volume(pressure)`` / ``cell(pressure)`` the equation of state. No Qt,
no napari.
"""

from __future__ import annotations

from pathlib import Path

from .cif import CifError, read_cif
from .eos import EOS_FORMS, EquationOfState, bm3_pressure, vinet_pressure
from .jcpds import JcpdsError, read_jcpds
from .phase import Cell, JcpdsLine, Phase, PhaseError
from .reflections import Reflection
from .table import PHASES

__all__ = [
    "EOS_FORMS",
    "PHASES",
    "Cell",
    "CifError",
    "EquationOfState",
    "JcpdsError",
    "JcpdsLine",
    "Phase",
    "PhaseError",
    "Reflection",
    "bm3_pressure",
    "builtin_phase_names",
    "get_phase",
    "read_cif",
    "read_jcpds",
    "vinet_pressure",
]


def builtin_phase_names() -> list[str]:
    """Return the names of the built-in phases, in table order."""
    return list(PHASES)


def get_phase(name: str | Path) -> Phase:
    """Return the built-in phase ``name`` (case-insensitive) or the phase in a JCPDS or CIF file.

    A CIF phase read this way has an equation of state only if the file gives K0
    (``_xrdphase_eos_K0``); ``read_cif(path, k0=..., k0p=...)`` gives one to any CIF.
    """
    text = str(name)
    for key, phase in PHASES.items():
        if key.lower() == text.lower():
            return phase
    if text.lower().endswith(".cif"):
        return read_cif(text)
    if text.lower().endswith(".jcpds") or Path(text).is_file():
        return read_jcpds(text)
    raise PhaseError(
        f"unknown phase {text!r}; built in: {', '.join(PHASES)} (or give a .jcpds or .cif file)"
    )
