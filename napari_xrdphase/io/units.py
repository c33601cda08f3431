"""Axis kinds, units and wavelengths as text headers and column names state them."""

from __future__ import annotations

import math
import re
from pathlib import Path

from ..stack import (
    energy_kev_to_wavelength,
)
from ._common import _VARIABLE_UNITS, ReaderError

_WAVELENGTH = re.compile(
    # the gap is bounded: unbounded, a long header line with many "wavelength"s takes O(n²)
    r"wave_?length[^0-9+\-.\n]{0,64}([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-zA-Zå]*)",
    re.IGNORECASE,
)

# photon energy in a header, with its unit (a bare number could be anything): "Energy: 42.7 keV"
_ENERGY = re.compile(
    r"\benergy[^0-9+\-.\n]{0,32}([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(kev|ev)\b",
    re.IGNORECASE,
)

_NANO = re.compile(r"nm|nano")

_RAD = re.compile(r"(?<![a-z])rad(?:ians?)?(?![a-z])")

_STRONG_AXIS_TOKEN = re.compile(
    r"(?<![a-z0-9])(2th_deg|2th_rad|q_nm\^-1|q_a\^-1|d_a|d_nm)(?![a-z0-9])"
)

_D = re.compile(r"(?<![a-z0-9*])d(?:[-_ ]?spacing)?(?![a-z0-9*])")

_Q = re.compile(r"(?<![a-z0-9])q(?![a-z])")

_TWO_THETA = re.compile(
    r"(?<![a-z0-9])2[-_ ]?th(?:eta)?(?![a-z])|2θ|two[-_ ]?theta|(?<![a-z])tth(?![a-z])"
)

_UNSUPPORTED_AXIS = re.compile(
    r"(?<![a-z])r_mm(?![a-z])|radial distance|(?<![a-z])chi_(deg|rad)|azimuth"
)

# lower-case spellings accepted for multi-letter units only (``pressure_gpa``; not ``id_a``)
_VARIABLE_UNITS_LOWER = {u.lower(): u for u in _VARIABLE_UNITS if len(u) > 1}


def _axis_text(axis: tuple[str, str]) -> str:
    return f"{axis[0]} ({axis[1]})"


def _axis_from_label(label: str) -> tuple[str, str] | None:
    """Return (kind, unit) named by an axis label such as ``2th_deg`` or ``Q (1/nm)``, or None."""
    text = label.lower()
    if _TWO_THETA.search(text):
        return "2theta", "rad" if _RAD.search(text) else "deg"
    if _Q.search(text):
        return "q", "1/nm" if _NANO.search(text) else "1/A"
    if _D.search(text):
        return "d", "nm" if _NANO.search(text) else "A"
    return None


def _axis_from_header(
    path: Path, header: list[str], label_line: str | None
) -> tuple[str, str] | None:
    # the x label is the chi's second line, else the line right above the data (column names)
    label = label_line if label_line is not None else (header[-1] if header else None)
    if label is not None:
        if _UNSUPPORTED_AXIS.search(label.lower()):
            raise ReaderError(
                f"{path}: the x axis {label.strip().lstrip('#').strip()!r} is not a scattering "
                "axis; integrate to 2θ, q or d"
            )
        axis = _axis_from_label(label)
        if axis is not None:
            return axis
    for line in reversed(header):
        match = _STRONG_AXIS_TOKEN.search(line.lower())
        if match:
            return _axis_from_label(match.group(1))
    return None


def _wavelength_from_header(header: list[str]) -> float | None:
    for line in header:
        match = _WAVELENGTH.search(line)
        if match:
            wavelength = _wavelength_in_angstrom(float(match.group(1)), match.group(2))
            if wavelength is not None:
                return wavelength
    for line in header:  # no wavelength stated: a photon energy with its unit will do
        match = _ENERGY.search(line)
        if match:
            kev = float(match.group(1)) / (1000.0 if match.group(2).lower() == "ev" else 1.0)
            wavelength = energy_kev_to_wavelength(kev) if kev > 0 else math.nan
            if math.isfinite(wavelength) and 0.005 < wavelength < 20:
                return wavelength
    return None


def _wavelength_in_angstrom(value: float, unit: str) -> float | None:
    unit = unit.lower()
    if unit.startswith("nm") or unit.startswith("nano"):
        value *= 10.0
    elif unit.startswith("pm"):
        value /= 100.0
    elif unit in ("m", "meter", "metre", "meters", "metres") or (not unit and value < 1e-6):
        value *= 1e10  # pyFAI headers and .poni files store metres
    return value if math.isfinite(value) and 0.005 < value < 20 else None


def _bracketed_unit(header: str) -> tuple[str, str] | None:
    """Return (name, unit) of ``name (unit)`` or ``name [unit]``, else None; linear time.

    (The regular expression this replaces backtracked for seconds on a long header cell.)
    """
    if not header.endswith((")", "]")):
        return None
    body = header[:-1]
    after_last_close = max(body.rfind(")"), body.rfind("]")) + 1
    opens = [
        i for i in (body.find("(", after_last_close), body.find("[", after_last_close)) if i >= 0
    ]
    if not opens:
        return None
    start = min(opens)
    return header[:start].strip(), body[start + 1 :].strip()


def _split_name_unit(header: str) -> tuple[str, str]:
    """Return (name, unit) from a column header like ``pressure_GPa``, ``pressure (GPa)`` or ``P/GPa``."""
    header = header.strip()
    bracketed = _bracketed_unit(header)
    if bracketed is not None and bracketed[0]:
        return bracketed
    for separator in ("_", "/"):
        if separator in header:
            base, suffix = (part.strip() for part in header.rsplit(separator, 1))
            unit = _known_unit(suffix)
            if base and unit:
                return base, unit
    return header, ""


def _known_unit(text: str) -> str | None:
    """Return the canonical spelling of a unit in ``_VARIABLE_UNITS`` (``gpa`` -> ``GPa``), or None."""
    return text if text in _VARIABLE_UNITS else _VARIABLE_UNITS_LOWER.get(text.lower())
