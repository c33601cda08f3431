"""Room-temperature equations of state: Vinet and 3rd-order Birch–Murnaghan, P(V) and V(P).

These are a few lines each, so they are written here rather than taken from ``pytheos``
(PeakPo's EOS library): ``pytheos`` pulls in ``uncertainties``, ``lmfit``, ``matplotlib`` and
``periodictable`` at import time, for formulas we need without error propagation. The tests
check these functions against ``pytheos`` value for value.

Volumes are in Å³ (per unit cell), moduli in GPa, pressures in GPa. No thermal pressure: every
equation of state here is a 300 K isotherm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

EOS_FORMS = {"vinet": "Vinet", "bm3": "3rd-order Birch–Murnaghan"}

# V(P) is searched between these compressions; real markers stay well inside (Ne at 200 GPa
# is near V/V0 = 0.3)
_X_MIN, _X_MAX = 0.15, 1.5


def vinet_pressure(volume, v0: float, k0: float, k0p: float):
    """Return the Vinet pressure (GPa) at ``volume`` (same unit as ``v0``)."""
    x = np.cbrt(np.asarray(volume, dtype=float) / v0)
    eta = 1.5 * (k0p - 1.0)
    return 3.0 * k0 * (1.0 - x) / x**2 * np.exp(eta * (1.0 - x))


def bm3_pressure(volume, v0: float, k0: float, k0p: float):
    """Return the 3rd-order Birch–Murnaghan pressure (GPa) at ``volume``."""
    r = np.asarray(volume, dtype=float) / v0
    f = r ** (-7.0 / 3.0) - r ** (-5.0 / 3.0)
    return 1.5 * k0 * f * (1.0 + 0.75 * (k0p - 4.0) * (r ** (-2.0 / 3.0) - 1.0))


_PRESSURE = {"vinet": vinet_pressure, "bm3": bm3_pressure}


def pressure(form: str, volume, v0: float, k0: float, k0p: float):
    """Return the pressure (GPa) at ``volume`` for the EOS ``form`` ('vinet' or 'bm3')."""
    try:
        function = _PRESSURE[form]
    except KeyError:
        known = ", ".join(EOS_FORMS)
        raise ValueError(f"unknown equation of state {form!r}; known: {known}") from None
    return function(volume, v0, k0, k0p)


def volume(form: str, p, v0: float, k0: float, k0p: float):
    """Return the volume at pressure ``p`` (GPa), by a bracketed root find of P(V) − p."""
    ps = np.asarray(p, dtype=float)
    out = np.empty(ps.shape)
    low, high = _X_MIN**3 * v0, _X_MAX * v0
    p_low, p_high = pressure(form, low, v0, k0, k0p), pressure(form, high, v0, k0, k0p)
    for index, target in np.ndenumerate(ps):
        if not (np.isfinite(target) and p_high <= target <= p_low):
            raise ValueError(
                f"pressure {target:g} GPa is outside what this equation of state covers "
                f"({p_high:.3g} to {p_low:.3g} GPa)"
            )
        out[index] = brentq(
            lambda v, t=target: pressure(form, v, v0, k0, k0p) - t,
            low,
            high,
            xtol=1e-12 * v0,
            rtol=1e-14,
        )
    return out if out.ndim else float(out)


@dataclass(frozen=True)
class EquationOfState:
    """One published pressure scale: EOS form, V0 (Å³ per cell), K0 (GPa), K0′, reference."""

    name: str
    form: str
    v0: float
    k0: float
    k0p: float
    reference: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.form not in EOS_FORMS:
            raise ValueError(
                f"unknown equation of state {self.form!r}; known: {', '.join(EOS_FORMS)}"
            )
        if not (self.v0 > 0 and self.k0 > 0):
            raise ValueError(f"scale {self.name}: V0 and K0 must be positive")

    def pressure(self, volume_a3):
        """Return the pressure (GPa) at a cell volume (Å³)."""
        return pressure(self.form, volume_a3, self.v0, self.k0, self.k0p)

    def volume(self, pressure_gpa):
        """Return the cell volume (Å³) at a pressure (GPa)."""
        return volume(self.form, pressure_gpa, self.v0, self.k0, self.k0p)

    def describe(self) -> str:
        """Return 'Vinet, V0 = … Å³, K0 = … GPa, K0′ = …' for listings."""
        return (
            f"{EOS_FORMS[self.form]}, V0 = {self.v0:.4f} Å³, K0 = {self.k0:g} GPa, "
            f"K0′ = {self.k0p:g}"
        )
