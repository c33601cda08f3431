"""Where a known phase's lines lie in each curve of a series, at each curve's pressure.

``line_positions(stack, "Pt", pressures)`` returns, per line of the phase, its position on the
series' own axis (2θ, q or d, in the axis unit) at every curve's pressure: what the Phases dock
draws over the series image and as ticks under a curve. No Qt, no napari.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..stack import SpectraStack, convert_axis
from .masking import FREEZING_GPA, _check_axis, _compression

# lines drawn by default: the stronger ones (the strongest line of the phase = 100)
DEFAULT_MIN_INTENSITY = 10.0


@dataclass(frozen=True)
class PhaseLine:
    """One line of a phase across a series: its (hkl) label and its position in every curve."""

    phase: str
    label: str  # e.g. "(111)"
    intensity: float  # relative, strongest line 100 (at 0 GPa)
    position: (
        np.ndarray
    )  # per curve, in the axis unit; NaN: pressure unknown, fluid or off the axis


def line_positions(
    stack: SpectraStack,
    phase: str,
    pressures: np.ndarray,
    *,
    scale: str | None = None,
    min_intensity: float = DEFAULT_MIN_INTENSITY,
) -> list[PhaseLine]:
    """Return the lines of ``phase`` (relative intensity ≥ ``min_intensity``) at each curve's pressure.

    ``pressures``: GPa, one per curve (NaN: unknown). A pressure medium (Ne, Ar) has no lines
    below its freezing pressure. A 2θ axis without a wavelength raises ``StackError``; an
    unknown phase ``PhaseError``.
    """
    from . import get_phase

    pressures = np.asarray(pressures, dtype=np.float64).ravel()
    if pressures.shape[0] != stack.n_curves:
        raise ValueError(
            f"{stack.name}: {pressures.shape[0]} pressures for {stack.n_curves} curves"
        )
    known = get_phase(phase)
    d_axis = _check_axis(stack)
    finite = d_axis[np.isfinite(d_axis) & (d_axis > 0)]
    d_low, d_high = float(finite.min()), float(finite.max())
    eos = known.scale(scale)
    shrink = _compression(eos, pressures)
    freezing = FREEZING_GPA.get(known.name) if known.source == "built-in" else None
    if freezing is not None:
        shrink = np.where(pressures >= freezing, shrink, np.nan)
    out = []
    for reflection in known.reflections(0.0, scale=scale, d_min=d_low, wavelength=None):
        if reflection.intensity < min_intensity:
            continue
        d = shrink * reflection.d
        d = np.where((d >= d_low) & (d <= d_high), d, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            if stack.axis_kind == "2theta":
                two_theta = np.degrees(2 * np.arcsin(np.clip(stack.wavelength / (2 * d), 0, 1)))
                position = convert_axis(two_theta, "2theta", "deg", "2theta", stack.axis_unit)
            else:
                position = convert_axis(d, "d", "A", stack.axis_kind, stack.axis_unit)
        if np.any(np.isfinite(position)):
            out.append(PhaseLine(known.name, reflection.label, reflection.intensity, position))
    return out
