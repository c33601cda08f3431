"""``Phase``: a crystal with its pressure scales, its cell at a pressure and its powder lines."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._errors import PhaseError
from .eos import EquationOfState
from .reflections import Reflection, cell_volume, d_spacings, powder_lines

# the smallest d-spacing (Å) listed unless asked otherwise: beyond it lines are too weak and dense
DEFAULT_D_MIN = 0.8


@dataclass(frozen=True)
class Cell:
    """Lattice parameters: edges in Å, angles in degrees."""

    a: float
    b: float
    c: float
    alpha: float = 90.0
    beta: float = 90.0
    gamma: float = 90.0

    @property
    def volume(self) -> float:
        """Return the cell volume in Å³."""
        return cell_volume(*self.as_tuple())

    def as_tuple(self) -> tuple[float, float, float, float, float, float]:
        """Return (a, b, c, α, β, γ)."""
        return (self.a, self.b, self.c, self.alpha, self.beta, self.gamma)


@dataclass(frozen=True)
class JcpdsLine:
    """One DIHKL line of a JCPDS file: its (hkl), d at 0 GPa (Å) and relative intensity."""

    hkl: tuple[int, int, int]
    d0: float
    intensity: float


@dataclass(frozen=True)
class Phase:
    """A crystalline phase: structure, published equations of state (scales) and cell shape.

    The cell keeps its shape under pressure (axial ratios b/a, c/a and angles fixed) and its
    volume follows the chosen scale. Built-in phases and CIF phases compute their lines from
    the atoms in ``sites`` ((element, (x, y, z)) or, with an occupancy, (element, xyz, occ));
    phases read from JCPDS files rescale the file's DIHKL lines instead. ``rotations`` (the
    point group's matrices on hkl rows) group equivalent reflections where the phase is neither
    cubic nor hexagonal m-3m / 6/mmm. A phase without scales (a CIF read without K0) has its
    0-GPa cell volume in ``v0`` and its lines at 0 GPa only.
    """

    name: str
    structure: str
    symmetry: str
    scales: dict[str, EquationOfState]
    default_scale: str
    shape: Cell  # the cell at a = 1: b/a, c/a and the angles
    sites: tuple[tuple[str, tuple[float, float, float]], ...] = ()
    jcpds_lines: tuple[JcpdsLine, ...] = ()
    source: str = "built-in"
    comments: tuple[str, ...] = field(default_factory=tuple)
    rotations: tuple = ()
    v0: float | None = None

    def scale(self, name: str | None = None) -> EquationOfState:
        """Return the scale ``name`` (case-insensitive), or the default one."""
        if not self.scales:
            raise PhaseError(
                f"{self.name} has no equation of state, so it has lines at 0 GPa only: give K0 "
                "and K0′ (read_cif(path, k0=..., k0p=...), or _xrdphase_eos_K0 and "
                "_xrdphase_eos_K0_prime in the CIF)"
            )
        if name is None:
            return self.scales[self.default_scale]
        for key, eos in self.scales.items():
            if key.lower() == name.lower():
                return eos
        raise PhaseError(
            f"{self.name} has no pressure scale {name!r}; known: {', '.join(self.scales)} "
            f"(default {self.default_scale})"
        )

    def pressure(self, volume, scale: str | None = None):
        """Return the pressure (GPa) at a cell volume (Å³)."""
        return self.scale(scale).pressure(volume)

    def volume(self, pressure, scale: str | None = None):
        """Return the cell volume (Å³) at a pressure (GPa)."""
        return self.scale(scale).volume(pressure)

    def cell(self, pressure: float = 0.0, scale: str | None = None) -> Cell:
        """Return the lattice parameters at ``pressure`` (GPa), the cell shape kept."""
        if pressure == 0 and scale is None and not self.scales and self.v0:
            volume = self.v0
        elif pressure == 0:
            volume = self.scale(scale).v0
        else:
            volume = float(self.volume(pressure, scale))
        a = (volume / self.shape.volume) ** (1.0 / 3.0)
        return Cell(a, a * self.shape.b, a * self.shape.c, *self.shape.as_tuple()[3:])

    def pressure_from_lattice(self, a: float, c: float | None = None, scale: str | None = None):
        """Return the pressure (GPa) at lattice parameter ``a`` (Å; hexagonal: with ``c``)."""
        if c is None:
            volume = a**3 * self.shape.volume
        else:
            volume = a * a * self.shape.b * c * self.shape.volume / (self.shape.b * self.shape.c)
        return self.pressure(volume, scale)

    def reflections(
        self,
        pressure: float = 0.0,
        *,
        scale: str | None = None,
        wavelength: float | None = None,
        d_min: float = DEFAULT_D_MIN,
    ) -> list[Reflection]:
        """Return the powder lines at ``pressure`` (GPa) with d ≥ ``d_min`` (Å), d descending.

        With ``wavelength`` (Å) each line has its 2θ and, for built-in phases, the intensities
        include the Lorentz–polarisation factor. JCPDS phases keep the file's intensities.
        """
        cell = self.cell(pressure, scale)
        if not self.jcpds_lines:
            return powder_lines(
                cell.as_tuple(),
                self.sites,
                hexagonal=self.symmetry == "HEXAGONAL",
                d_min=d_min,
                wavelength=wavelength,
                rotations=self.rotations,
            )
        hkl = np.array([line.hkl for line in self.jcpds_lines])
        d = d_spacings(cell.as_tuple(), hkl)
        lines = []
        for line, spacing in zip(self.jcpds_lines, d, strict=True):
            if spacing < d_min:
                continue
            two_theta = None
            if wavelength is not None:
                if wavelength / (2 * spacing) > 1:
                    continue
                two_theta = math.degrees(2 * math.asin(wavelength / (2 * spacing)))
            lines.append(Reflection(line.hkl, float(spacing), line.intensity, None, two_theta))
        return sorted(lines, key=lambda r: (-r.d, r.hkl))
