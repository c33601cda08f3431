"""A broad synthetic training library: pressure and temperature series of random materials.

``synth`` simulates the paper's two materials; this module draws series of random materials
from many structure types (``STRUCTURE_TYPES``) with random elements, cells and
compressibilities, through a first-order transition (the new phase's lines appear over a
coexistence range; decompression series transform at a lower pressure, the hysteresis) or a
continuous one (a distortion growing from zero that splits lines), with optional marker and
medium lines, texture, spotty grains, random wavelengths, 2θ windows, resolutions, exposures
and backgrounds. Lines come from the atoms of the conventional cell (space-group orbits from
``gemmi``) through ``phases.reflections.structure_factors`` (IT92 form factors); profiles,
background, noise and markers are rendered by ``synth``'s helpers. Every draw comes from a
seed. ``LEFT_OUT_TYPES`` never enter ``training_library``: they are kept for the
out-of-family benchmark (``benchmarks/out_of_family.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .phases.reflections import EXTINCT, Reflection, form_factor, structure_factors
from .stack import SpectraStack, energy_kev_to_wavelength
from .synth import (
    CLASSES,
    RESOLVED_SPLIT_FWHM,
    SWAPPED,
    EquationOfState,
    SimulatedSeries,
    _background,
    _march_dollase,
    _phase_lines,
    _pressures_and_labels,
    _Profile,
    _render,
    _smooth_ar1,
    _two_theta,
    _visible_peaks,
    _widths,
)

# cartesian strain directions of the distortions (scaled by the strain e, volume restored after)
DISTORTIONS = {
    "tetragonal": np.diag([-0.5, -0.5, 1.0]),
    "rhombohedral": 0.5 * (np.ones((3, 3)) - np.eye(3)),  # stretch along the cubic [111]
    "orthorhombic": np.diag([1.0, -1.0, 0.0]),  # plus a random share of tetragonal (below)
}

# element pools by the role of a site: metals / cations (A, B) and anions (X)
CATIONS = (
    "Li",
    "Na",
    "K",
    "Rb",
    "Cs",
    "Mg",
    "Ca",
    "Sr",
    "Ba",
    "Al",
    "Ga",
    "In",
    "Si",
    "Ge",
    "Sn",
    "Pb",
    "Bi",
    "Ti",
    "V",
    "Cr",
    "Mn",
    "Fe",
    "Co",
    "Ni",
    "Cu",
    "Zn",
    "Y",
    "Zr",
    "Nb",
    "Mo",
    "Ag",
    "Cd",
    "La",
    "Ce",
    "Hf",
    "Ta",
    "W",
    "Pt",
    "Au",
)
ANIONS = ("O", "S", "Se", "Te", "F", "Cl", "Br", "I", "N")


@dataclass(frozen=True)
class StructureType:
    """A structure type: space group, lattice, Wyckoff sites and the ranges of its free numbers.

    ``sites`` are (role, (x, y, z)) of the asymmetric unit; a coordinate may be the name of a
    free parameter drawn from ``parameters``; role "A"/"B" take cations, "X" anions.
    ``a_range`` is the conventional cell edge at 0 GPa (Å), ``c_over_a`` its axial ratio range,
    ``static`` a fixed distortion (name, strain range) of the cell, ``continuous`` the
    distortions a continuous transition may grow in it.
    """

    name: str
    space_group: str
    lattice: str  # "cubic", "tetragonal" or "hexagonal"
    sites: tuple[tuple[str, tuple[float | str, float | str, float | str]], ...]
    a_range: tuple[float, float]
    c_over_a: tuple[float, float] = (1.0, 1.0)
    parameters: tuple[tuple[str, float, float], ...] = ()
    static: tuple[str, float, float] | None = None
    continuous: tuple[str, ...] = ()


_CUBIC_DISTORTIONS = ("tetragonal", "rhombohedral", "orthorhombic")
_PEROVSKITE_SITES = (("A", (0.0, 0.0, 0.0)), ("B", (0.5, 0.5, 0.5)), ("X", (0.5, 0.5, 0.0)))
STRUCTURE_TYPES: dict[str, StructureType] = {
    t.name: t
    for t in (
        StructureType("fcc", "F m -3 m", "cubic", (("A", (0, 0, 0)),), (3.4, 4.4),
                      continuous=_CUBIC_DISTORTIONS),
        StructureType("bcc", "I m -3 m", "cubic", (("A", (0, 0, 0)),), (2.8, 3.6),
                      continuous=_CUBIC_DISTORTIONS),
        StructureType("hcp", "P 63/m m c", "hexagonal", (("A", (1 / 3, 2 / 3, 0.25)),),
                      (2.4, 3.4), (1.56, 1.68), continuous=("orthorhombic",)),
        StructureType("rocksalt", "F m -3 m", "cubic", (("A", (0, 0, 0)), ("X", (0.5, 0, 0))),
                      (4.0, 6.2), continuous=_CUBIC_DISTORTIONS),
        StructureType("cscl", "P m -3 m", "cubic", (("A", (0, 0, 0)), ("X", (0.5, 0.5, 0.5))),
                      (3.0, 4.4), continuous=_CUBIC_DISTORTIONS),
        StructureType("zincblende", "F -4 3 m", "cubic",
                      (("A", (0, 0, 0)), ("X", (0.25, 0.25, 0.25))), (5.2, 6.6),
                      continuous=("tetragonal", "rhombohedral")),
        StructureType("fluorite", "F m -3 m", "cubic",
                      (("A", (0, 0, 0)), ("X", (0.25, 0.25, 0.25))), (4.9, 6.3),
                      continuous=("tetragonal", "orthorhombic")),
        StructureType("perovskite", "P m -3 m", "cubic", _PEROVSKITE_SITES, (3.6, 4.3),
                      continuous=_CUBIC_DISTORTIONS),
        StructureType("perovskite-tetragonal", "P m -3 m", "cubic", _PEROVSKITE_SITES,
                      (3.6, 4.3), static=("tetragonal", 0.006, 0.04)),
        StructureType("perovskite-orthorhombic", "P m -3 m", "cubic", _PEROVSKITE_SITES,
                      (3.6, 4.3), static=("orthorhombic", 0.006, 0.03)),
        StructureType("perovskite-rhombohedral", "P m -3 m", "cubic", _PEROVSKITE_SITES,
                      (3.6, 4.3), static=("rhombohedral", 0.005, 0.03)),
        StructureType("layered-CdI2", "P -3 m 1", "hexagonal",
                      (("A", (0, 0, 0)), ("X", (1 / 3, 2 / 3, "z"))), (3.2, 4.4), (1.45, 1.75),
                      parameters=(("z", 0.22, 0.28),), continuous=("orthorhombic",)),
        StructureType("rutile", "P 42/m n m", "tetragonal",
                      (("A", (0, 0, 0)), ("X", ("u", "u", 0))), (4.2, 4.9), (0.62, 0.70),
                      parameters=(("u", 0.29, 0.31),), continuous=("orthorhombic",)),
        StructureType("wurtzite", "P 63 m c", "hexagonal",
                      (("A", (1 / 3, 2 / 3, 0)), ("X", (1 / 3, 2 / 3, "u"))), (3.0, 4.3),
                      (1.58, 1.66), parameters=(("u", 0.37, 0.39),), continuous=("orthorhombic",)),
        StructureType("spinel", "F d -3 m:2", "cubic",
                      (("A", (0.125, 0.125, 0.125)), ("B", (0.5, 0.5, 0.5)), ("X", ("x",) * 3)),
                      (7.9, 8.8), parameters=(("x", 0.255, 0.265),),
                      continuous=("tetragonal",)),
    )
}  # fmt: skip
# whole structure types the training library never contains: the out-of-family benchmark's
LEFT_OUT_TYPES = ("spinel", "wurtzite", "rutile")
TRAINING_TYPES = tuple(name for name in STRUCTURE_TYPES if name not in LEFT_OUT_TYPES)
# every series covers this q window (1/Å; the built-in encoder reads 2.2–4.9) with room to spare
Q_COVERED = (2.15, 4.95)
MAX_STRAIN = 0.1  # the largest spontaneous strain of a continuous distortion
TRANSITIONS = ("first_order", "continuous")
MARKERS = ("Au", "Pt", "Cu", "Ag", "W", "Mo", "Ta", "Re", "MgO")
MEDIA = ("Ne", "Ar", "NaCl-B1", "NaCl-B2", "KCl-B2")


@dataclass
class _Crystal:
    """One phase of a series: its atoms, zero-pressure cell, distortion and thermal motion."""

    type_name: str
    sites: list[tuple[str, tuple[float, float, float]]]  # (element, fractional xyz)
    cell0: np.ndarray  # 3×3, columns are the cell vectors (Å) at zero pressure, undistorted
    eos: EquationOfState
    b_iso: float  # Debye–Waller B (Å²)
    thermal_expansion: float  # volumetric, 1/K
    static_mode: np.ndarray | None = None  # strain direction × strain of a static distortion
    mode: np.ndarray | None = None  # strain direction of a continuous distortion

    @property
    def formula(self) -> str:
        """Return the elements of the cell, e.g. 'BaTiO3'-like 'Ba-Ti-O'."""
        return "-".join(dict.fromkeys(el for el, _ in self.sites))


def _orbit(space_group: str, xyz: tuple[float, float, float]) -> list[tuple[float, ...]]:
    """Return the distinct positions (in [0, 1)) of the orbit of ``xyz`` in ``space_group``."""
    import gemmi

    positions: list[tuple[float, ...]] = []
    for op in gemmi.SpaceGroup(space_group).operations():
        p = np.mod(np.asarray(op.apply_to_xyz(list(xyz))), 1.0)
        p[np.isclose(p, 1.0, atol=1e-6)] = 0.0
        if not any(np.allclose(p, q, atol=1e-6) for q in positions):
            positions.append(tuple(float(v) for v in p))
    return positions


def type_sites(
    structure: StructureType, elements: dict[str, str], parameters: dict[str, float]
) -> list[tuple[str, tuple[float, float, float]]]:
    """Return the atoms (element, xyz) of the conventional cell of ``structure``."""
    atoms = []
    for role, xyz in structure.sites:
        position = tuple(float(parameters[v]) if isinstance(v, str) else float(v) for v in xyz)
        atoms += [(elements[role], p) for p in _orbit(structure.space_group, position)]
    return atoms


def _cell_vectors(lattice: str, a: float, c_over_a: float) -> np.ndarray:
    if lattice == "hexagonal":
        return np.array(
            [[a, -a / 2, 0.0], [0.0, a * math.sqrt(3.0) / 2, 0.0], [0.0, 0.0, a * c_over_a]]
        )
    return np.diag([a, a, a * c_over_a])


def _distortion(name: str, rng: np.random.Generator) -> np.ndarray:
    mode = DISTORTIONS[name].copy()
    if name == "orthorhombic":  # a ≠ b ≠ c: add a random share of the tetragonal direction
        mode = mode + rng.uniform(-0.6, 0.6) * DISTORTIONS["tetragonal"]
    return mode * rng.choice((-1.0, 1.0))


def _draw_crystal(
    type_name: str,
    rng: np.random.Generator,
    cation: str | None = None,
    volume_per_atom: float | None = None,
) -> _Crystal:
    """Draw a crystal of ``type_name``; ``volume_per_atom`` (Å³, at 0 GPa) overrides its cell."""
    structure = STRUCTURE_TYPES[type_name]
    roles = dict.fromkeys(role for role, _ in structure.sites)
    cations = list(rng.choice(CATIONS, size=2, replace=False))
    elements = {}
    for role in roles:
        elements[role] = str(rng.choice(ANIONS)) if role == "X" else str(cations.pop())
    if cation is not None:
        elements["A"] = cation
    parameters = {name: rng.uniform(lo, hi) for name, lo, hi in structure.parameters}
    sites = type_sites(structure, elements, parameters)
    c_over_a = rng.uniform(*structure.c_over_a)
    cell = _cell_vectors(structure.lattice, 1.0, c_over_a)
    if volume_per_atom is None:
        a = rng.uniform(*structure.a_range)
    else:
        a = np.cbrt(volume_per_atom * len(sites) / abs(np.linalg.det(cell)))
    cell = _cell_vectors(structure.lattice, a, c_over_a)
    static_mode = None
    if structure.static is not None:
        name, lo, hi = structure.static
        static_mode = _distortion(name, rng) * rng.uniform(lo, hi)
    k0 = float(np.exp(rng.uniform(np.log(30.0), np.log(350.0))))
    eos = EquationOfState(
        v0=float(abs(np.linalg.det(cell))),
        k0=k0,
        k0_prime=rng.uniform(3.5, 6.0),
        form=str(rng.choice(("bm3", "vinet"))),
    )
    return _Crystal(
        type_name=type_name,
        sites=sites,
        cell0=cell,
        eos=eos,
        b_iso=rng.uniform(0.2, 1.2),
        thermal_expansion=rng.uniform(1e-5, 6e-5),
        static_mode=static_mode,
    )


@dataclass
class _Lines:
    """Reflections of a crystal grouped by equal d (before and along its distortion)."""

    hkl: np.ndarray  # (G, 3) one member per group
    intensity: np.ndarray  # (G,) Σ |F|² × texture over members, Debye–Waller at 0 GPa
    multiplicity: np.ndarray  # (G,)
    parent: np.ndarray  # (G,) index of the undistorted line each group belongs to


def _strained(cell0: np.ndarray, mode: np.ndarray | None, strain: np.ndarray) -> np.ndarray:
    """Return cells (N, 3, 3): ``cell0`` strained by ``strain`` × ``mode``, volume kept."""
    n = strain.size
    cells = np.broadcast_to(cell0, (n, 3, 3)).copy()
    if mode is not None:
        cells = (np.eye(3)[None] + strain[:, None, None] * mode[None]) @ cell0
        ratio = abs(np.linalg.det(cell0)) / np.abs(np.linalg.det(cells))
        cells *= np.cbrt(ratio)[:, None, None]
    return cells


def _d_spacing(cells: np.ndarray, hkl: np.ndarray) -> np.ndarray:
    """Return d (N cells × G reflections) in Å."""
    reciprocal = np.linalg.inv(cells)  # rows: reciprocal basis vectors (no 2π)
    g = np.einsum("gi,nij->ngj", hkl.astype(np.float64), reciprocal)
    return 1.0 / np.linalg.norm(g, axis=-1)


def _lines(crystal: _Crystal, d_min: float, texture_r: float, rng: np.random.Generator) -> _Lines:
    """Enumerate the allowed reflections with d ≥ ``d_min`` at zero pressure, grouped."""
    cell = _strained(crystal.cell0, crystal.static_mode, np.ones(1))[0]
    n_max = math.ceil(np.linalg.norm(cell, axis=0).max() / d_min) + 1
    grid = np.arange(-n_max, n_max + 1)
    hkl = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    d = _d_spacing(cell[None], hkl)[0]
    hkl, d = hkl[d >= d_min], d[d >= d_min]
    s = 1.0 / (2.0 * d)
    f_squared = structure_factors(crystal.sites, hkl, s)
    elements = {el for el, _ in crystal.sites}
    factors = {el: form_factor(el, s) for el in elements}
    bound = sum(np.abs(factors[el]) for el, _ in crystal.sites) ** 2
    allowed = f_squared > EXTINCT * bound
    hkl, d, s, f_squared = hkl[allowed], d[allowed], s[allowed], f_squared[allowed]
    # March–Dollase texture along a random low-index direction of the reciprocal lattice
    axis_hkl = rng.integers(0, 2, 3)
    axis_hkl[rng.integers(0, 3)] = 1
    reciprocal = np.linalg.inv(cell)
    g, axis_cart = hkl @ reciprocal, axis_hkl @ reciprocal
    cos_alpha = (g @ axis_cart) / (np.linalg.norm(g, axis=1) * np.linalg.norm(axis_cart))
    weight = _march_dollase(cos_alpha, texture_r)
    intensity = f_squared * np.exp(-2.0 * crystal.b_iso * s * s) * weight
    # groups: equal d in the cell and in the cell strained two ways along the distortion, so a
    # group stays one line at every strain
    keys = [np.round(d, 5)]
    parent_key = np.round(d, 5)
    if crystal.mode is not None:
        for e in (0.0123, -0.0071):
            keys.append(
                np.round(_d_spacing(_strained(cell, crystal.mode, np.array([e])), hkl)[0], 5)
            )
    _, first, inverse = np.unique(
        np.stack(keys, axis=1), axis=0, return_index=True, return_inverse=True
    )
    inverse = inverse.ravel()
    n_groups = first.size
    total = np.bincount(inverse, weights=intensity, minlength=n_groups)
    multiplicity = np.bincount(inverse, minlength=n_groups)
    _, parent = np.unique(parent_key[first], return_inverse=True)
    return _Lines(hkl[first], total, multiplicity, parent.ravel())


def _positive(hkl: np.ndarray) -> tuple[int, int, int]:
    """Return the Friedel mate of ``hkl`` with the first non-zero index positive."""
    sign = -1 if hkl[np.flatnonzero(hkl)[0]] < 0 else 1
    return tuple(int(sign * v) for v in hkl)


def crystal_lines(
    type_name: str,
    elements: dict[str, str],
    a: float,
    *,
    c_over_a: float | None = None,
    parameters: dict[str, float] | None = None,
    distortion: str | None = None,
    strain: float = 0.0,
    d_min: float = 1.0,
) -> list[Reflection]:
    """Return the powder lines (d ≥ ``d_min`` Å, d descending) the library draws for a crystal.

    ``type_name`` is a key of STRUCTURE_TYPES, ``elements`` maps its roles ("A", "B", "X") to
    elements, ``a`` is the cell edge (Å); ``distortion`` (a key of DISTORTIONS) strains the
    cell by ``strain`` at constant volume, which splits lines as the library's continuous
    transitions do. No texture, no Debye–Waller factor; intensities |F|² summed over each line.
    """
    structure = STRUCTURE_TYPES[type_name]
    values = {name: (lo + hi) / 2 for name, lo, hi in structure.parameters} | (parameters or {})
    ratio = c_over_a if c_over_a is not None else sum(structure.c_over_a) / 2
    cell = _cell_vectors(structure.lattice, a, ratio)
    crystal = _Crystal(
        type_name, type_sites(structure, elements, values), cell,
        EquationOfState(abs(np.linalg.det(cell)), 100.0, 4.0), b_iso=0.0, thermal_expansion=0.0,
        mode=None if distortion is None else DISTORTIONS[distortion],
    )  # fmt: skip
    lines = _lines(crystal, 0.8 * d_min, 1.0, np.random.default_rng(0))
    d = _d_spacing(_cells_at(crystal, np.array([crystal.eos.v0]), np.array([strain])), lines.hkl)[0]
    keep = d >= d_min
    top = lines.intensity[keep].max()
    return sorted(
        (
            Reflection(_positive(hkl), float(spacing), float(100 * i / top), int(m))
            for hkl, spacing, i, m in zip(
                lines.hkl[keep], d[keep], lines.intensity[keep], lines.multiplicity[keep],
                strict=True,
            )
        ),
        key=lambda r: (-r.d, r.hkl),
    )  # fmt: skip


def _cells_at(crystal: _Crystal, volume: np.ndarray, strain: np.ndarray) -> np.ndarray:
    """Return the cells (N, 3, 3) at ``volume`` (Å³) with the continuous ``strain``."""
    base = crystal.cell0
    if crystal.static_mode is not None:
        base = _strained(base, crystal.static_mode, np.ones(1))[0]
    cells = _strained(base, crystal.mode, strain)
    return cells * np.cbrt(volume / crystal.eos.v0)[:, None, None]


def _strain(past: np.ndarray, rate: float, law: str) -> np.ndarray:
    """Return the distortion ``past`` the onset: linear, or the square root (Landau), ≤ 0.1."""
    return np.minimum(rate * (past if law == "linear" else np.sqrt(past)), MAX_STRAIN)


def _volume(crystal: _Crystal, variable: np.ndarray, kind: str) -> np.ndarray:
    if kind == "temperature":
        return crystal.eos.v0 * (1.0 + crystal.thermal_expansion * (variable - 300.0))
    return crystal.eos.volume(variable)


def _peaks(
    crystal: _Crystal,
    lines: _Lines,
    variable: np.ndarray,
    kind: str,
    fraction: np.ndarray,
    strain: np.ndarray,
    extra_microstrain: np.ndarray,
    size_nm: float,
    grain_sigma: float,
    profile: _Profile,
    pressure: np.ndarray,
    zero_shift: float,
    wavelength: float,
    window: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, ...]:
    """Return centre, area, FWHM, η and curve index of each visible peak (as synth's)."""
    n_curves = variable.size
    volume = _volume(crystal, variable, kind)
    d = _d_spacing(_cells_at(crystal, volume, strain), lines.hkl)
    tth = _two_theta(d, wavelength) + zero_shift
    theta = np.radians(tth / 2.0)
    lorentz_polarisation = (1.0 + np.cos(2 * theta) ** 2) / (np.sin(theta) ** 2 * np.cos(theta))
    residual_texture = np.exp(rng.normal(0.0, 0.08, lines.hkl.shape[0]))
    grain_scale = grain_sigma / np.sqrt(lines.multiplicity)
    grains = _smooth_ar1(rng, (n_curves, lines.hkl.shape[0]), 0.6)
    grain_factor = np.exp(grain_scale * grains - 0.5 * grain_scale**2)
    intensity = (
        fraction[:, None]
        * lines.intensity[None, :]
        * lorentz_polarisation
        / volume[:, None] ** 2
        * residual_texture
        * grain_factor
    )
    microstrain = (
        profile.strain0 + profile.strain_per_gpa * np.maximum(pressure, 0.0) + extra_microstrain
    )[:, None]
    fwhm, eta = _widths(tth, microstrain, size_nm, profile, wavelength)
    return _visible_peaks(tth, d, intensity, fwhm, eta, wavelength, window)


def _resolved_offset(
    crystal: _Crystal,
    lines: _Lines,
    onset: float,
    direction: float,
    law: str,
    rate: float,
    kind: str,
    profile: _Profile,
    size_nm: float,
    wavelength: float,
    window: tuple[float, float],
    span: float,
) -> float:
    """Return how far past ``onset`` the strongest split line is resolved (RESOLVED_SPLIT_FWHM).

    A line counts if it holds a fifth of the strongest undistorted line in the window; a split
    counts between parts holding 15 % of their line. ``direction`` is +1 when the distortion
    grows with the variable (compression), −1 when it grows as the variable falls (cooling).
    """
    offset = np.linspace(0.0, span, 2001)
    variable = onset + direction * offset
    strain = _strain(offset, rate, law)
    volume = _volume(crystal, variable, kind)
    d = _d_spacing(_cells_at(crystal, volume, strain), lines.hkl)
    tth = _two_theta(d, wavelength)
    pressure = variable if kind == "pressure" else np.zeros_like(variable)
    fwhm, _ = _widths(
        tth,
        (profile.strain0 + profile.strain_per_gpa * pressure)[:, None],
        size_nm,
        profile,
        wavelength,
    )
    parent_intensity = np.bincount(lines.parent, weights=lines.intensity)
    inside = (tth[0] > window[0]) & (tth[0] < window[1])
    strongest = parent_intensity[lines.parent[inside]].max() if inside.any() else 0.0
    ratio = np.zeros(offset.size)
    for p in np.flatnonzero(parent_intensity >= 0.2 * max(strongest, 1e-30)):
        members = np.flatnonzero(
            (lines.parent == p) & inside & (lines.intensity >= 0.15 * parent_intensity[p])
        )
        if members.size >= 2:
            split = tth[:, members].max(axis=1) - tth[:, members].min(axis=1)
            ratio = np.maximum(ratio, split / fwhm[:, members].mean(axis=1))
    resolved = np.flatnonzero(ratio >= RESOLVED_SPLIT_FWHM)
    return float(offset[resolved[0]]) if resolved.size else math.inf


def _window(rng: np.random.Generator) -> tuple[float, tuple[float, float]]:
    """Return a wavelength (Å) and a 2θ window (deg) covering q = Q_COVERED with random room."""
    wavelength = energy_kev_to_wavelength(rng.uniform(18.0, 62.0))
    q_low = rng.uniform(0.8, Q_COVERED[0])
    q_high = rng.uniform(Q_COVERED[1], 7.0)
    low, high = (
        2.0 * math.degrees(math.asin(q * wavelength / (4.0 * math.pi))) for q in (q_low, q_high)
    )
    return wavelength, (low, high)


def random_series(
    seed: int,
    types: tuple[str, ...] = TRAINING_TYPES,
    first_type: str | None = None,
    n_curves: int | None = None,
    n_points: int | None = None,
    name: str | None = None,
    curves: tuple[int, int] = (40, 150),
) -> SimulatedSeries:
    """Return one random series (pressure or temperature) through one transition, with labels.

    Its phases are drawn from ``types`` (the low-variable phase is ``first_type`` when given);
    about ``n_curves`` curves (drawn from ``curves`` when not given).
    Labels, as ``synth.simulate_series``: "before" is the state at low pressure (temperature),
    "during" the coexistence range (first order) or a distortion not yet resolved (continuous,
    RESOLVED_SPLIT_FWHM), "after" the other state.
    """
    unknown = [t for t in (*types, first_type) if t is not None and t not in STRUCTURE_TYPES]
    if unknown:
        raise ValueError(
            f"unknown structure type {unknown[0]!r}; known: {', '.join(STRUCTURE_TYPES)}"
        )
    rng = np.random.default_rng(seed)
    kind = "temperature" if rng.random() < 0.2 else "pressure"
    decreasing = rng.random() < 0.3  # decompression or cooling
    first_type = first_type or str(rng.choice(types))
    distortable = bool(STRUCTURE_TYPES[first_type].continuous)
    others = [t for t in types if t != first_type]
    if not (distortable or others):
        raise ValueError(f"{first_type} has no continuous distortion: give a second type to go to")
    transition = (
        "continuous" if distortable and (not others or rng.random() < 0.5) else "first_order"
    )
    n_curves = int(n_curves or rng.integers(*curves))
    n_points = int(n_points or rng.integers(1500, 4001))
    wavelength, window = _window(rng)
    axis = np.linspace(*window, n_points)
    d_min = 0.7 * wavelength / (2.0 * math.sin(math.radians(window[1] / 2.0)))

    resolution = float(np.exp(rng.uniform(np.log(0.3), np.log(4.0))))
    profile = _Profile(
        u=0.008 * resolution * rng.uniform(0.8, 1.25),
        v=-0.001 * resolution * rng.uniform(0.8, 1.25),
        w=0.0009 * resolution * rng.uniform(0.8, 1.25),
        size_nm=rng.uniform(20.0, 200.0),
        strain0=rng.uniform(1e-4, 1e-3),
        strain_per_gpa=rng.uniform(0.0, 1e-4),
    )
    zero_shift = float(np.clip(rng.normal(0.0, 0.01), -0.03, 0.03))
    peak_rate = float(np.exp(rng.uniform(np.log(300.0), np.log(6000.0))))
    background_rate = peak_rate * rng.uniform(0.02, 0.5)
    exposure_s = float(np.exp(rng.uniform(np.log(0.1), np.log(5.0))))
    texture_r = rng.uniform(0.6, 1.5)
    grain_sigma = rng.uniform(0.1, 1.5)

    low_phase = _draw_crystal(first_type, rng)
    shares = rng.dirichlet(np.ones(3)) * 0.6 + 0.4 / 3  # before / during / after, each ≥ 13 %
    shares[1] = min(shares[1], 0.3)
    counts = np.maximum(1, np.round(shares / shares.sum() * n_curves)).astype(int)
    n_curves = int(counts.sum())
    if kind == "pressure":
        start, span = rng.uniform(0.0, 4.0), rng.uniform(25.0, 90.0)
    else:
        start, span = rng.uniform(80.0, 400.0), rng.uniform(400.0, 1200.0)
    centre = start + span * rng.uniform(0.3, 0.6)
    recipe: dict = {"kind": kind, "transition": transition, "low_type": first_type}
    if transition == "first_order":
        high_type = str(rng.choice(others))
        drop = rng.uniform(0.02, 0.12) if kind == "pressure" else -rng.uniform(0.005, 0.04)
        v_low = float(_volume(low_phase, np.array([centre]), kind)[0]) / len(low_phase.sites)
        high_phase = _draw_crystal(high_type, rng, low_phase.sites[0][0], v_low * (1 - drop))
        if kind == "pressure":  # the high-pressure phase's V0 such that V(P_t) is v_low (1 − drop)
            target = v_low * (1 - drop) * len(high_phase.sites)
            high_phase.eos = EquationOfState(
                v0=1.0,
                k0=high_phase.eos.k0,
                k0_prime=high_phase.eos.k0_prime,
                form=high_phase.eos.form,
            )
            v0 = target / float(high_phase.eos.volume(centre))
            high_phase.eos = EquationOfState(v0, high_phase.eos.k0, high_phase.eos.k0_prime,
                                             high_phase.eos.form)  # fmt: skip
        high_phase.cell0 = high_phase.cell0 * np.cbrt(
            high_phase.eos.v0 / abs(np.linalg.det(high_phase.cell0))
        )
        width = span * rng.uniform(0.05, 0.15)
        hysteresis = span * rng.uniform(0.03, 0.12)
        if decreasing:  # the reverse transition sets in lower: hysteresis
            first = centre - hysteresis
            second = first - width
        else:
            first, second = centre, centre + width
        low_p, high_p = sorted((first, second))
        end = (high_p + span * rng.uniform(0.2, 0.4)) if not decreasing else start
        begin = start if not decreasing else high_p + span * rng.uniform(0.2, 0.4)
        phases = [low_phase, high_phase]
        recipe.update(high_type=high_type, volume_drop=float(drop), hysteresis=float(hysteresis))
    else:
        mode_name = str(rng.choice(STRUCTURE_TYPES[first_type].continuous))
        low_phase.mode = _distortion(mode_name, rng)
        law = str(rng.choice(("linear", "sqrt")))
        # the distortion grows with pressure (compression) or as temperature falls (cooling)
        direction = 1.0 if kind == "pressure" else -1.0
        reach = span * 0.9 if kind == "pressure" else (centre - 10.0)
        lines_probe = _lines(low_phase, d_min, texture_r, np.random.default_rng([seed, 2]))
        wanted = span * rng.uniform(0.05, 0.3)
        probe = _resolved_offset(low_phase, lines_probe, centre, direction, law, 1e-3, kind,
                                 profile, profile.size_nm, wavelength, window, reach)  # fmt: skip
        if not math.isfinite(probe):  # no strong line splits in this window: split a little
            probe = reach
        # split ∝ strain: the rate that resolves the split about ``wanted`` past the onset
        scale = (probe / wanted) if law == "linear" else math.sqrt(probe / wanted)
        rate = min(
            1e-3 * scale, 0.08 / (max(wanted, 1e-9) if law == "linear" else math.sqrt(wanted))
        )
        resolved = _resolved_offset(low_phase, lines_probe, centre, direction, law, rate, kind,
                                    profile, profile.size_nm, wavelength, window, reach)  # fmt: skip
        if not math.isfinite(resolved):
            resolved = wanted
        if kind == "pressure":
            first, second = centre, centre + resolved
            low_p, high_p = first, second
            end = second + span * rng.uniform(0.2, 0.4)
            begin = start
            if decreasing:
                first, second, begin, end = second, first, end, start
        else:  # distorted below centre (the onset on cooling), resolved below centre − resolved
            first, second = centre - resolved, centre
            low_p, high_p = first, second
            begin = first - min(0.2 * span, 0.8 * (first - 5.0))
            end = second + span * rng.uniform(0.2, 0.4)
            if decreasing:
                first, second, begin, end = second, first, end, begin
        phases = [low_phase]
        recipe.update(distortion=mode_name, law=law, strain_rate=float(rate),
                      onset=float(centre), resolved=float(centre + direction * resolved))  # fmt: skip

    in_order = tuple(int(c) for c in (counts[::-1] if decreasing else counts))
    variable, labels = _pressures_and_labels((begin, first, second, end), in_order, rng)
    if decreasing:
        labels = np.array([SWAPPED.get(lab, lab) for lab in labels], dtype=labels.dtype)
    pressure = variable if kind == "pressure" else np.zeros_like(variable)

    zeros = np.zeros(n_curves)
    if transition == "first_order":
        high_fraction = np.clip((variable - low_p) / (high_p - low_p), 0.0, 1.0)
        coexistence = 4.0 * high_fraction * (1.0 - high_fraction)
        components = [
            (phases[0], 1.0 - high_fraction, zeros, 1.5e-3 * coexistence),
            (phases[1], high_fraction, zeros, 1.5e-3 * coexistence),
        ]
    else:
        # strain measured from the onset in the direction the distortion grows
        past = np.maximum(direction * (variable - centre), 0.0)
        strain = _strain(past, rate, law)
        components = [(phases[0], np.ones(n_curves), strain, zeros)]
    peak_lists = []
    for crystal, fraction, strain, extra in components:
        lines = _lines(crystal, d_min, texture_r, rng)
        peak_lists.append(
            _peaks(
                crystal,
                lines,
                variable,
                kind,
                fraction,
                strain,
                extra,
                profile.size_nm * rng.uniform(0.6, 1.0),
                grain_sigma,
                profile,
                pressure,
                zero_shift,
                wavelength,
                window,
                rng,
            )
        )
    peak_arrays = [np.concatenate(column) for column in zip(*peak_lists, strict=True)]
    peaks = _render(axis, *peak_arrays, n_curves)
    top = peaks.max()
    peaks *= peak_rate / top if top > 0 else 0.0
    if kind == "pressure":
        for names, role, chance in ((MARKERS, "marker", 0.4), (MEDIA, "medium", 0.4)):
            if rng.random() < chance:
                phase_name = str(rng.choice(names))
                peaks += _phase_lines(phase_name, role, pressure, profile, zero_shift,
                                      wavelength, axis, peak_rate, rng)  # fmt: skip
                recipe[role] = phase_name
    background = background_rate * _background(axis, wavelength, n_curves, rng)
    flux = np.exp(rng.normal(0.0, 0.02, n_curves))[:, None]
    intensities = rng.poisson(exposure_s * flux * (peaks + background)).astype(np.float32)

    recipe.update(
        source="napari_xrdphase.synth_library",
        seed=int(seed),
        formula=[p.formula for p in phases],
        types=[p.type_name for p in phases],
        direction="decreasing" if decreasing else "increasing",
        transition_start=float(first),
        transition_end=float(second),
        exposure_s=exposure_s,
        wavelength=float(wavelength),
        class_counts=[int(c) for c in counts],
    )
    unit = "GPa" if kind == "pressure" else "K"
    stack = SpectraStack(
        intensities=intensities,
        axis=axis,
        axis_kind="2theta",
        axis_unit="deg",
        variable=variable,
        variable_name=kind,
        variable_unit=unit,
        name=name or f"library_{first_type}_{transition}_seed{seed}",
        wavelength=wavelength,
        metadata=recipe,
    )
    return SimulatedSeries(stack=stack, labels=labels)


def training_library(
    n_series: int,
    seed: int,
    types: tuple[str, ...] = TRAINING_TYPES,
    curves: tuple[int, int] = (30, 90),
) -> list[SimulatedSeries]:
    """Return ``n_series`` random series; series i starts from type i mod len(types).

    Each has between ``curves[0]`` and ``curves[1]`` curves: many short series show more
    materials for the same training cost than a few long ones.

    Each series has its own seed drawn from (``seed``, i), so the library grows without
    changing its first series.
    """
    out = []
    for index in range(int(n_series)):
        series_seed = int(np.random.SeedSequence([int(seed), index]).generate_state(1)[0])
        out.append(
            random_series(
                series_seed,
                types,
                first_type=types[index % len(types)],
                name=f"L{index:04d}_{types[index % len(types)]}",
                curves=curves,
            )
        )
    return out


__all__ = [
    "CLASSES",
    "LEFT_OUT_TYPES",
    "STRUCTURE_TYPES",
    "TRAINING_TYPES",
    "StructureType",
    "crystal_lines",
    "random_series",
    "training_library",
    "type_sites",
]
