"""Lattice geometry, extinctions and approximate powder intensities.

d-spacings come from the reciprocal metric tensor of the cell (any symmetry). Extinctions and
the intensity pattern come from the structure factor of the atoms in the conventional cell, so
the lattice's rules fall out of the arithmetic: fcc (h, k, l all even or all odd), bcc
(h + k + l even), rock salt (fcc, odd reflections weak as f_A − f_B), CsCl-type B2 (primitive,
mixed-parity reflections weak), hcp (00l with l odd and h − k = 3n with l odd absent).

Intensities are approximate: |F|² × multiplicity × Lorentz–polarisation
(1 + cos² 2θ) / (sin² θ cos θ) for an unpolarised beam (without a wavelength, its small-angle
limit ∝ d², which is what hard X-rays give), no Debye–Waller factor, no absorption, no preferred
orientation. Atomic form factors are the International Tables (Cromer–Mann, IT92)
coefficients from ``gemmi`` when it is installed, else the atomic number Z at every angle.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

EXTINCT = 1e-8  # relative |F|² (to its bound, all atoms in phase) below this is extinct

_Z = {"Ne": 10, "Na": 11, "Mg": 12, "Cl": 17, "Ar": 18, "K": 19, "O": 8, "Cu": 29, "Mo": 42,
      "Ag": 47, "Ta": 73, "W": 74, "Re": 75, "Pt": 78, "Au": 79}  # fmt: skip


@dataclass(frozen=True)
class Reflection:
    """One powder line: (hkl) (hexagonal: the 3-index hkl of hkil), d (Å), multiplicity, intensity.

    ``intensity`` is relative, the strongest line 100. ``two_theta`` (degrees) is set when a
    wavelength was given. ``multiplicity`` is None for lines read from a JCPDS file.
    """

    hkl: tuple[int, int, int]
    d: float
    intensity: float
    multiplicity: int | None = None
    two_theta: float | None = None

    @property
    def label(self) -> str:
        """Return '(111)' or, with a negative or two-digit index, '(1 -1 10)'."""
        if all(0 <= i <= 9 for i in self.hkl):
            return "(" + "".join(str(i) for i in self.hkl) + ")"
        return "(" + " ".join(str(i) for i in self.hkl) + ")"


def cell_volume(a, b, c, alpha, beta, gamma) -> float:
    """Return the volume (Å³) of a cell with edges in Å and angles in degrees."""
    ca, cb, cg = (math.cos(math.radians(x)) for x in (alpha, beta, gamma))
    return a * b * c * math.sqrt(1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg)


def d_spacings(cell, hkl) -> np.ndarray:
    """Return the d-spacings (Å) of the reflections ``hkl`` (N×3) of ``cell`` (a, b, c, α, β, γ)."""
    a, b, c, alpha, beta, gamma = cell
    ca, cb, cg = (math.cos(math.radians(x)) for x in (alpha, beta, gamma))
    metric = np.array(
        [
            [a * a, a * b * cg, a * c * cb],
            [a * b * cg, b * b, b * c * ca],
            [a * c * cb, b * c * ca, c * c],
        ]
    )
    h = np.atleast_2d(np.asarray(hkl, dtype=float))
    inv_d2 = np.einsum("ni,ij,nj->n", h, np.linalg.inv(metric), h)
    return 1.0 / np.sqrt(inv_d2)


def form_factor(element: str, s: np.ndarray) -> np.ndarray:
    """Return the atomic form factor of ``element`` at s = sin θ / λ (1/Å); Z where gemmi is missing."""
    try:
        import gemmi
    except ImportError:
        if element not in _Z:
            raise ValueError(f"no atomic number known for element {element!r}") from None
        return np.full(np.shape(s), float(_Z[element]))
    coefficients = gemmi.Element(element).it92
    stol2 = np.asarray(s, dtype=float) ** 2
    return np.array([coefficients.calculate_sf(float(x)) for x in np.ravel(stol2)]).reshape(
        np.shape(stol2)
    )


def _occupancy(site) -> float:
    return float(site[2]) if len(site) > 2 else 1.0


def structure_factors(sites, hkl, s) -> np.ndarray:
    """Return |F|² of ``hkl`` (N×3) for ``sites`` at s = sin θ/λ.

    ``sites`` is [(element, (x, y, z)), ...] or, with occupancies, [(element, (x, y, z), occ)].
    """
    h = np.asarray(hkl, dtype=float)
    total = np.zeros(len(h), dtype=complex)
    factors = {}
    for site in sites:
        element, xyz = site[0], site[1]
        if element not in factors:
            factors[element] = form_factor(element, s)
        phase = np.exp(2j * np.pi * (h @ np.asarray(xyz, dtype=float)))
        total += _occupancy(site) * factors[element] * phase
    return np.abs(total) ** 2


def _rank(hkl):
    # the representative of equivalent reflections: h, k ≥ 0 first, then l ≥ 0, then largest
    return (hkl[0] >= 0 and hkl[1] >= 0, hkl[2] >= 0, *hkl)


def _family_keys(grid: np.ndarray, rotations) -> list:
    """Return one key per hkl row of ``grid``, equal for reflections equivalent by ``rotations``.

    ``rotations`` are integer 3×3 matrices acting on hkl rows (hkl′ = hkl · R); Friedel pairs
    are equivalent too (a powder does not tell them apart).
    """
    span = int(np.abs(grid).max()) + 1
    codes = []
    for rotation in rotations:
        equivalent = grid @ np.asarray(rotation, dtype=int)
        for sign in (1, -1):
            e = sign * equivalent + span
            codes.append((e[:, 0] * (2 * span + 1) + e[:, 1]) * (2 * span + 1) + e[:, 2])
    return np.min(codes, axis=0).tolist()


def _family_key(hkl, hexagonal: bool):
    h, k, el = hkl
    if hexagonal:
        i = -h - k
        triple = max(tuple(sorted((h, k, i))), tuple(sorted((-h, -k, -i))))
        return triple, abs(el)
    return tuple(sorted((abs(h), abs(k), abs(el)), reverse=True))


def _representative(members, hexagonal: bool):
    if hexagonal:
        return max(members, key=lambda m: (m[0] >= 0 and m[1] >= 0, m[2] >= 0, m[0], m[1], m[2]))
    return tuple(sorted((abs(x) for x in members[0]), reverse=True))


def powder_lines(
    cell,
    sites,
    *,
    hexagonal: bool,
    d_min: float,
    wavelength: float | None = None,
    rotations=None,
) -> list[Reflection]:
    """Return the allowed reflections with d ≥ ``d_min`` (Å), strongest line 100, d descending.

    ``cell`` is (a, b, c, α, β, γ) in Å and degrees; ``sites`` the atoms of the conventional
    cell (see ``structure_factors``); ``hexagonal`` groups equivalent reflections by 6/mmm
    instead of m-3m, ``rotations`` (the point group's integer matrices on hkl rows, from a
    space group) by that point group instead. With a
    ``wavelength`` (Å) the lines carry 2θ and the Lorentz–polarisation factor, and lines beyond
    2θ = 180° are left out; without one, the factor's small-angle limit (∝ d²) is used.
    """
    if wavelength is not None:
        d_min = max(d_min, wavelength / 2.0)
    a, b, c = cell[:3]
    limits = [math.ceil(x / d_min) + 1 for x in (a, b, c)]
    grid = np.array(
        [hkl for hkl in itertools.product(*(range(-n, n + 1) for n in limits)) if hkl != (0, 0, 0)]
    )
    d = d_spacings(cell, grid)
    keep = d >= d_min * (1 - 1e-12)
    grid, d = grid[keep], d[keep]
    families: dict = {}
    if rotations:
        keys = _family_keys(grid, rotations)
    else:
        keys = [_family_key(hkl, hexagonal) for hkl in map(tuple, grid.tolist())]
    for key, hkl, spacing in zip(keys, map(tuple, grid.tolist()), d, strict=True):
        families.setdefault(key, []).append((hkl, spacing))
    reps, spacings, mult = [], [], []
    for members in families.values():
        hkls = [m[0] for m in members]
        reps.append(max(hkls, key=_rank) if rotations else _representative(hkls, hexagonal))
        spacings.append(members[0][1])
        mult.append(len(members))
    reps_a, d_a, m_a = np.array(reps), np.array(spacings), np.array(mult)
    s = 1.0 / (2.0 * d_a)
    f2 = structure_factors(sites, reps_a, s)
    intensity = f2 * m_a
    two_theta = None
    if wavelength is None:
        # the small-angle limit of Lorentz–polarisation, 2 / sin² θ ∝ d²: hard X-rays (≲ 0.5 Å)
        # give this shape whatever their wavelength
        intensity = intensity * d_a**2
    else:
        theta = np.arcsin(np.clip(wavelength * s, 0.0, 1.0))
        lp = (1 + np.cos(2 * theta) ** 2) / (np.sin(theta) ** 2 * np.cos(theta))
        intensity = intensity * lp
        two_theta = np.degrees(2 * theta)
    # extinct against the largest |F|² any reflection could have at its s (every atom in phase),
    # not against the strongest line listed: where every listed line is extinct (fcc with only
    # (100) above d_min), none is returned
    factors = {el: form_factor(el, s) for el in {site[0] for site in sites}}
    bound = sum(_occupancy(site) * np.abs(factors[site[0]]) for site in sites) ** 2
    allowed = f2 > EXTINCT * bound
    if not allowed.any():
        return []
    scale = 100.0 / intensity[allowed].max()
    lines = [
        Reflection(
            hkl=tuple(int(x) for x in reps_a[n]),
            d=float(d_a[n]),
            intensity=float(intensity[n] * scale),
            multiplicity=int(m_a[n]),
            two_theta=None if two_theta is None else float(two_theta[n]),
        )
        for n in np.flatnonzero(allowed)
    ]
    return sorted(lines, key=lambda r: (-r.d, r.hkl))
