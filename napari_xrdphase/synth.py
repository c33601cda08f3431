"""Physics-based simulator of powder X-ray diffraction pressure series.

Two transitions are modelled: Fe bcc→hcp (a coexistence region in which both phases are
present) and FeO B1→rB1 (a continuous rhombohedral distortion that splits peaks). Peak
positions come from equations of state, intensities from structure factors summed over the
atoms of each cell; the physics, its parameters and their sources are in docs/simulator.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .stack import SpectraStack, energy_kev_to_wavelength

CLASSES = ("before", "during", "after")
SWAPPED = {"before": "after", "after": "before"}
MATERIALS = ("Fe", "FeO")
MEDIA = ("Ne",)  # the simulator's own medium model (historical path); any built-in phase works

# pressure (GPa) above which a gas medium is solid at room temperature: its lines appear there.
# Ne: Finger L. W. et al. (1981) Appl. Phys. Lett. 39, 892 (4.7 GPa). Ar: the 300 K point of the
# argon melting curve, 1.2–1.35 GPa in the literature (e.g. Zha C.-S. et al. (1986)
# J. Chem. Phys. 85, 1034); 1.3 GPa is used. Other built-in media are solids at every pressure.
SOLID_FROM_GPA = {"Ne": 4.7, "Ar": 1.3}
# height of the strongest marker / medium line relative to the tallest sample line (first curve)
MARKER_HEIGHT = (0.2, 0.6)
MEDIUM_HEIGHT = (0.05, 0.3)

# Cromer–Mann coefficients, International Tables for Crystallography Vol. C, Table 6.1.1.4:
# f0(s) = sum_i a_i exp(-b_i s²) + c, with s = sin θ / λ in 1/Å
CROMER_MANN: dict[str, tuple[tuple[float, ...], tuple[float, ...], float]] = {
    "Fe": ((11.7695, 7.3573, 3.5222, 2.3045), (4.7611, 0.3072, 15.3535, 76.8805), 1.0369),
    "O": ((3.0485, 2.2868, 1.5463, 0.8670), (13.2771, 5.7011, 0.3239, 32.9089), 0.2508),
    "Pt": ((27.0059, 17.7639, 15.7131, 5.7837), (1.51293, 8.81174, 0.424593, 38.6103), 11.6883),
    "Ne": ((3.9553, 3.1125, 1.4546, 1.1251), (8.4042, 3.4262, 0.2306, 21.7184), 0.3515),
}

NE_FREEZING_GPA = 4.7  # Ne crystallises (fcc) at 4.7 GPa at room temperature
# FeO counts as "after" (split resolved) once the rB1 (111) doublet is this many FWHM apart:
# with its 1:3 intensity ratio, the weaker line shows its own maximum from about 1.3 FWHM
RESOLVED_SPLIT_FWHM = 1.5
# the default 2θ window is 5–25° at 25.6 keV and covers the same d-spacings at other energies
DEFAULT_TWO_THETA_RANGE = (5.0, 25.0)
DEFAULT_ENERGY_KEV = 25.6

_FCC = ((0.0, 0.0, 0.0), (0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0))


@dataclass(frozen=True)
class EquationOfState:
    """Room-temperature P(V) of one phase: third-order Birch–Murnaghan or Vinet."""

    v0: float  # Å³ per unit cell at zero pressure
    k0: float  # GPa
    k0_prime: float
    form: str = "bm3"

    def pressure(self, volume: np.ndarray | float) -> np.ndarray:
        """Return the pressure in GPa at ``volume`` (Å³ per cell)."""
        x = np.asarray(volume, dtype=np.float64) / self.v0
        if self.form == "bm3":
            f = x ** (-2.0 / 3.0)  # (V0/V)^(2/3)
            return (
                1.5 * self.k0 * (f**3.5 - f**2.5) * (1.0 + 0.75 * (self.k0_prime - 4.0) * (f - 1.0))
            )
        y = np.cbrt(x)
        return 3.0 * self.k0 * (1.0 - y) / y**2 * np.exp(1.5 * (self.k0_prime - 1.0) * (1.0 - y))

    def volume(self, pressure: np.ndarray | float) -> np.ndarray:
        """Return the cell volume in Å³ at ``pressure`` (GPa), by bisection (P falls with V)."""
        p = np.asarray(pressure, dtype=np.float64)
        lo, hi = np.full(p.shape, 0.15), np.full(p.shape, 1.5)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            above = self.pressure(mid * self.v0) > p
            lo = np.where(above, mid, lo)
            hi = np.where(above, hi, mid)
        return 0.5 * (lo + hi) * self.v0


@dataclass(frozen=True)
class Phase:
    """A crystal structure with its equation of state and thermal displacements."""

    name: str
    lattice: str  # "cubic" or "hexagonal"
    atoms: tuple[tuple[str, tuple[float, float, float]], ...]
    eos: EquationOfState
    b_iso: tuple[tuple[str, float], ...]  # Debye–Waller B (Å²) per element at b_ref_pressure
    grueneisen: float
    texture_axis: tuple[int, int, int]
    c_over_a: float = 1.0
    b_ref_pressure: float = 0.0
    rhombohedral: bool = False  # may distort along [111] (FeO rB1)

    @property
    def elements(self) -> tuple[str, ...]:
        """Distinct elements of the cell, in order of first appearance."""
        return tuple(dict.fromkeys(el for el, _ in self.atoms))

    def lattice_vectors(self, volume: float) -> np.ndarray:
        """Return the real-space cell vectors (columns, Å) of the undistorted cell at ``volume``."""
        if self.lattice == "cubic":
            return np.eye(3) * np.cbrt(volume)
        a = np.cbrt(2.0 * volume / (math.sqrt(3.0) * self.c_over_a))
        return np.array(
            [[a, -a / 2, 0.0], [0.0, a * math.sqrt(3.0) / 2, 0.0], [0.0, 0.0, a * self.c_over_a]]
        )


BCC_FE = Phase(
    "bcc Fe",
    "cubic",
    (("Fe", (0.0, 0.0, 0.0)), ("Fe", (0.5, 0.5, 0.5))),
    EquationOfState(v0=23.55, k0=166.0, k0_prime=5.3),
    b_iso=(("Fe", 0.35),),
    grueneisen=1.7,
    texture_axis=(1, 0, 0),
)
HCP_FE = Phase(
    "hcp Fe",
    "hexagonal",
    (("Fe", (1 / 3, 2 / 3, 0.25)), ("Fe", (2 / 3, 1 / 3, 0.75))),
    EquationOfState(v0=22.35, k0=165.3, k0_prime=4.97),
    b_iso=(("Fe", 0.35),),
    grueneisen=1.8,
    texture_axis=(0, 0, 1),
    c_over_a=1.603,
)
FEO = Phase(
    "FeO",
    "cubic",
    tuple(("Fe", p) for p in _FCC) + tuple(("O", (x + 0.5, y, z)) for x, y, z in _FCC),
    EquationOfState(v0=80.0, k0=180.0, k0_prime=4.0),
    b_iso=(("Fe", 0.55), ("O", 0.65)),
    grueneisen=1.5,
    texture_axis=(1, 1, 1),
    rhombohedral=True,
)
PT = Phase(
    "Pt",
    "cubic",
    tuple(("Pt", p) for p in _FCC),
    EquationOfState(v0=60.38, k0=277.0, k0_prime=5.08, form="vinet"),
    b_iso=(("Pt", 0.31),),
    grueneisen=2.7,
    texture_axis=(1, 1, 1),
)
NE = Phase(
    "Ne",
    "cubic",
    tuple(("Ne", p) for p in _FCC),
    EquationOfState(v0=88.936, k0=1.070, k0_prime=8.40, form="vinet"),
    b_iso=(("Ne", 2.0),),
    grueneisen=2.05,
    texture_axis=(1, 1, 1),
    b_ref_pressure=NE_FREEZING_GPA,
)


@dataclass(frozen=True)
class SeriesSpec:
    """One series of the paper suite: material, class counts, exposure and set-up."""

    name: str
    material: str
    n_before: int
    n_during: int
    n_after: int
    exposure_s: float
    decompression: bool = False
    calibrant: bool = False
    medium: str | None = None
    pretraining: bool = False  # used for pretraining in the paper
    counts_from_paper: bool = False  # curve counts taken from the paper (else chosen here)

    @property
    def n_curves(self) -> int:
        """Total number of curves."""
        return self.n_before + self.n_during + self.n_after


# Mirrors Table 1 of Sun et al., Sci. Rep. 13, 9370 (2023); see docs/simulator.md for which
# numbers come from the paper and which were chosen to match its totals.
PAPER_SUITE: tuple[SeriesSpec, ...] = (
    SeriesSpec("D1", "Fe", 17, 0, 43, 1.0, pretraining=True, counts_from_paper=True),
    SeriesSpec("D2", "Fe", 40, 12, 68, 0.5, medium="Ne"),
    SeriesSpec("D3", "Fe", 36, 8, 56, 2.0, calibrant=True),
    SeriesSpec("D4", "Fe", 48, 20, 72, 1.0, calibrant=True, medium="Ne", pretraining=True),
    SeriesSpec("D5", "Fe", 52, 14, 78, 0.2),
    SeriesSpec("D6", "Fe", 62, 18, 80, 1.0, decompression=True, medium="Ne"),
    SeriesSpec("D7", "Fe", 44, 16, 60, 0.5, decompression=True, calibrant=True),
    SeriesSpec("D8", "FeO", 66, 38, 108, 1.0, medium="Ne", pretraining=True),
    SeriesSpec("D9", "FeO", 90, 65, 305, 0.5, pretraining=True, counts_from_paper=True),
)


@dataclass
class SimulatedSeries:
    """A simulated series and its ground-truth label per curve."""

    stack: SpectraStack
    labels: np.ndarray  # str array, one of CLASSES per curve


@dataclass(frozen=True)
class _Profile:
    """Series-level line-profile parameters (Caglioti + size + microstrain)."""

    u: float  # deg²
    v: float
    w: float
    size_nm: float
    strain0: float
    strain_per_gpa: float


@dataclass
class _Reflections:
    """Reflections of one phase grouped by d-spacing, with their structure-factor couplings."""

    d0: np.ndarray  # (G,) d at V0, undistorted cell
    t: np.ndarray  # (G,) cos² of the angle to [111] (only used for rhombohedral distortion)
    multiplicity: np.ndarray  # (G,)
    coupling: np.ndarray  # (G, E, E): sum over members of w·Re(S_j S_k*)
    elements: tuple[str, ...]


def _form_factor(element: str, s: np.ndarray) -> np.ndarray:
    a, b, c = CROMER_MANN[element]
    s2 = s * s
    return sum(ai * np.exp(-bi * s2) for ai, bi in zip(a, b, strict=True)) + c


def _march_dollase(cos_alpha: np.ndarray, r: float) -> np.ndarray:
    return (r * r * cos_alpha**2 + (1.0 - cos_alpha**2) / r) ** -1.5


def _reflections(phase: Phase, d_min: float, texture_r: float) -> _Reflections:
    """Enumerate every hkl with d ≥ ``d_min`` at V0, its structure factor and texture weight."""
    vectors = phase.lattice_vectors(phase.eos.v0)
    reciprocal = np.linalg.inv(vectors).T  # columns: reciprocal basis (no 2π)
    n_max = math.ceil(np.linalg.norm(vectors, axis=0).max() / d_min) + 1
    grid = np.arange(-n_max, n_max + 1)
    hkl = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    g = hkl @ reciprocal.T
    g_len = np.linalg.norm(g, axis=1)
    keep = 1.0 / g_len >= d_min
    hkl, g, g_len = hkl[keep], g[keep], g_len[keep]

    elements = phase.elements
    positions = {el: np.array([x for e, x in phase.atoms if e == el]) for el in elements}
    # geometric structure factor per element: S_j(h) = Σ_atoms exp(2πi h·x)
    s_el = np.stack(
        [np.exp(2j * np.pi * hkl @ positions[el].T).sum(axis=1) for el in elements], axis=1
    )
    axis_cart = reciprocal @ np.asarray(phase.texture_axis, dtype=np.float64)
    cos_alpha = (g @ axis_cart) / (g_len * np.linalg.norm(axis_cart))
    weight = _march_dollase(cos_alpha, texture_r)
    pair = np.real(s_el[:, :, None] * np.conj(s_el[:, None, :])) * weight[:, None, None]

    d0 = 1.0 / g_len
    if phase.rhombohedral:
        t = (hkl.sum(axis=1) ** 2) / (3.0 * (hkl**2).sum(axis=1))
    else:
        t = np.zeros(len(hkl))
    keys = np.stack([np.round(d0, 6), np.round(t, 6)], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    n_groups = len(unique)
    coupling = np.zeros((n_groups, len(elements), len(elements)))
    np.add.at(coupling, inverse, pair)
    multiplicity = np.bincount(inverse, minlength=n_groups)
    present = np.trace(coupling, axis1=1, axis2=2) > 1e-6 * multiplicity  # systematic absences
    return _Reflections(
        d0=unique[present, 0],
        t=unique[present, 1],
        multiplicity=multiplicity[present],
        coupling=coupling[present],
        elements=elements,
    )


def _d_spacing(
    refl: _Reflections, phase: Phase, volume: np.ndarray, strain: np.ndarray
) -> np.ndarray:
    """Return d (curves × groups) at ``volume``; ``strain`` elongates the cell along [111]."""
    scale = np.cbrt(volume / phase.eos.v0)[:, None]
    d = refl.d0[None, :] * scale
    if phase.rhombohedral:
        e = strain[:, None]
        # metric of the cubic cell stretched by (1+e) along [111] at constant volume
        d = d / np.sqrt(np.cbrt((1.0 + e) ** 2) * (1.0 - refl.t[None, :] * (1.0 - (1.0 + e) ** -2)))
    return d


def _two_theta(d: np.ndarray, wavelength: float) -> np.ndarray:
    sin_theta = np.clip(wavelength / (2.0 * d), 0.0, 1.0)
    return np.degrees(2.0 * np.arcsin(sin_theta))


def _widths(
    two_theta: np.ndarray,
    microstrain: np.ndarray,
    size_nm: float,
    profile: _Profile,
    wavelength: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Return pseudo-Voigt FWHM (deg) and Lorentzian fraction (Thompson–Cox–Hastings)."""
    theta = np.radians(np.minimum(two_theta, 179.8) / 2.0)  # finite widths at backscattering
    tan_t = np.tan(theta)
    h_inst2 = np.maximum(profile.u * tan_t**2 + profile.v * tan_t + profile.w, 1e-6)
    h_strain = np.degrees(4.0 * microstrain * tan_t)
    h_g = np.sqrt(h_inst2 + h_strain**2)
    h_l = np.degrees(0.9 * wavelength / (size_nm * 10.0 * np.cos(theta)))
    h = (
        h_g**5
        + 2.69269 * h_g**4 * h_l
        + 2.42843 * h_g**3 * h_l**2
        + 4.47163 * h_g**2 * h_l**3
        + 0.07842 * h_g * h_l**4
        + h_l**5
    ) ** 0.2
    q = h_l / h
    eta = np.clip(1.36603 * q - 0.47719 * q**2 + 0.11116 * q**3, 0.0, 1.0)
    return h, eta


def _microstrain(pressure: np.ndarray, profile: _Profile) -> np.ndarray:
    return profile.strain0 + profile.strain_per_gpa * pressure


def _ramp(lo: float, hi: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``n`` strictly increasing pressures inside (lo, hi) with jittered, uneven steps."""
    if n == 0:
        return np.empty(0)
    gaps = rng.gamma(6.0, size=n + 1)
    return lo + (hi - lo) * np.cumsum(gaps)[:n] / gaps.sum()


def _feo_resolved_pressure(
    onset: float, rate: float, profile: _Profile, wavelength: float
) -> float:
    """Return the pressure at which the rB1 (111) doublet is resolved (RESOLVED_SPLIT_FWHM)."""
    pressure = onset + np.linspace(0.0, 80.0, 8001)
    strain = rate * (pressure - onset)
    volume = FEO.eos.volume(pressure)
    # the cubic (111) as its two rB1 parts: ±(111) along the stretched axis, the other six
    refl = _Reflections(
        d0=np.array([FEO.eos.v0 ** (1 / 3) / math.sqrt(3.0)] * 2),
        t=np.array([1.0, 1.0 / 9.0]),
        multiplicity=np.array([2, 6]),
        coupling=np.zeros((2, 2, 2)),
        elements=("Fe", "O"),
    )
    tth = _two_theta(_d_spacing(refl, FEO, volume, strain), wavelength)
    fwhm, _ = _widths(
        tth[:, 1], _microstrain(pressure, profile), profile.size_nm, profile, wavelength
    )
    resolved = np.flatnonzero(tth[:, 1] - tth[:, 0] >= RESOLVED_SPLIT_FWHM * fwhm)
    return float(pressure[resolved[0]]) if resolved.size else float(pressure[-1])


def _pressures_and_labels(
    boundaries: tuple[float, float, float, float],
    counts: tuple[int, int, int],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Pressures in acquisition order through start → first → second boundary → end."""
    start, first, second, end = boundaries
    sign = 1.0 if end > start else -1.0
    edges = [(start, first), (first, second), (second, end)]
    pressures, labels = [], []
    for cls, n, (a, b) in zip(CLASSES, counts, edges, strict=True):
        lo, hi = sorted((a, b))
        if cls == "during":  # keep clear of the boundaries so both phases are visible
            pad = 0.04 * (hi - lo)
            lo, hi = lo + pad, hi - pad
        values = _ramp(lo, hi, n, rng)
        pressures.append(values if sign > 0 else values[::-1])
        labels += [cls] * n
    return np.concatenate(pressures), np.array(labels, dtype="<U6")


def _smooth_ar1(rng: np.random.Generator, shape: tuple[int, int], rho: float) -> np.ndarray:
    """Unit-variance noise correlated along axis 0 (curve to curve) with coefficient ``rho``."""
    z = rng.standard_normal(shape)
    out = np.empty(shape)
    out[0] = z[0]
    scale = math.sqrt(1.0 - rho * rho)
    for i in range(1, shape[0]):
        out[i] = rho * out[i - 1] + scale * z[i]
    return out


def _render(
    axis: np.ndarray,
    centers: np.ndarray,
    areas: np.ndarray,
    fwhm: np.ndarray,
    eta: np.ndarray,
    curve_index: np.ndarray,
    n_curves: int,
) -> np.ndarray:
    """Sum area-normalised pseudo-Voigt peaks onto a uniform axis, each within ±20 FWHM."""
    n_points = axis.size
    step = (axis[-1] - axis[0]) / (n_points - 1)
    out = np.zeros(n_curves * n_points)
    ln2 = math.log(2.0)
    # peaks are evaluated in classes of similar width, each on a window fitted to its widest
    half = np.minimum(np.ceil(20.0 * fwhm / step), n_points).astype(np.int64)
    width_class = np.ceil(np.log2(half + 1.0)).astype(np.int64)
    for cls in np.unique(width_class):
        members = np.flatnonzero(width_class == cls)
        offsets = np.arange(-half[members].max(), half[members].max() + 1)
        chunk = max(1, 2_000_000 // offsets.size)
        for first in range(0, members.size, chunk):
            sel = members[first : first + chunk]
            c, a, h, e, k = (v[sel, None] for v in (centers, areas, fwhm, eta, curve_index))
            idx = np.floor((c - axis[0]) / step).astype(np.int64) + offsets
            x = axis[0] + idx * step - c
            z = 4.0 * x * x / (h * h)
            gauss = (2.0 / h) * math.sqrt(ln2 / math.pi) * np.exp(-ln2 * z)
            lorentz = (2.0 / (math.pi * h)) / (1.0 + z)
            values = a * step * (e * lorentz + (1.0 - e) * gauss)
            valid = (idx >= 0) & (idx < n_points)
            out += np.bincount(
                (k * n_points + idx)[valid], weights=values[valid], minlength=out.size
            )
    return out.reshape(n_curves, n_points)


def _background(
    axis: np.ndarray, wavelength: float, n_curves: int, rng: np.random.Generator
) -> np.ndarray:
    """Smooth background (air scatter, diamond Compton, a random smooth term), mean 1."""
    span = axis[-1] - axis[0]
    s = np.sin(np.radians(axis / 2.0)) / wavelength
    air = rng.uniform(0.5, 1.5) * np.exp(-(axis - axis[0]) / (span * rng.uniform(0.1, 0.3)))
    compton = rng.uniform(0.5, 1.5) * (1.0 - np.exp(-((s / rng.uniform(0.2, 0.4)) ** 1.5)))
    centers = rng.uniform(axis[0], axis[-1], 4)
    widths = span * rng.uniform(0.1, 0.35, 4)
    bumps = (
        rng.uniform(0.0, 0.3, 4)[:, None]
        * np.exp(-0.5 * ((axis - centers[:, None]) / widths[:, None]) ** 2)
    ).sum(axis=0)
    shape = air + compton + bumps + 0.2
    shape /= shape.mean()
    # slow curve-to-curve drift of level and balance between the terms
    drift = 1.0 + 0.03 * _smooth_ar1(rng, (n_curves, 2), 0.95)
    tilt = (axis - axis.mean()) / span
    return shape[None, :] * drift[:, :1] * (1.0 + 0.1 * (drift[:, 1:] - 1.0) * tilt[None, :])


@dataclass
class _Component:
    """A phase in the beam: its share of the scattering volume and its microstructure."""

    phase: Phase
    fraction: np.ndarray  # volume fraction per curve
    size_nm: float  # crystallite size (Lorentzian broadening)
    grain_sigma: float  # spottiness: log-intensity spread of a multiplicity-1 ring
    rhombohedral_strain: np.ndarray  # per curve; elongation along [111]
    coexistence: np.ndarray  # 0..1 per curve; extra microstrain while two phases coexist


def _component_peaks(
    comp: _Component,
    pressure: np.ndarray,
    profile: _Profile,
    texture_r: float,
    zero_shift: float,
    wavelength: float,
    window: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, ...]:
    """Return centre, integrated intensity, FWHM, η and curve index of each visible peak."""
    phase, n_curves = comp.phase, pressure.size
    d_min = 0.7 * wavelength / (2.0 * math.sin(math.radians(window[1] / 2.0)))
    refl = _reflections(phase, d_min, texture_r)
    volume = phase.eos.volume(pressure)
    d = _d_spacing(refl, phase, volume, comp.rhombohedral_strain)
    s = 1.0 / (2.0 * d)
    # Debye–Waller B shrinks as the Debye temperature rises: B ∝ θ_D^-2 ∝ V^(2γ)
    b_scale = (volume / phase.eos.volume(phase.b_ref_pressure)) ** (2.0 * phase.grueneisen)
    b_iso = dict(phase.b_iso)
    damped = np.stack(
        [
            _form_factor(el, s) * np.exp(-(b_iso[el] * b_scale)[:, None] * s * s)
            for el in refl.elements
        ],
        axis=-1,
    )  # curves × groups × elements
    f_squared = np.einsum("cgj,gjk,cgk->cg", damped, refl.coupling, damped)
    tth = _two_theta(d, wavelength) + zero_shift
    theta = np.radians(tth / 2.0)
    lorentz_polarisation = (1.0 + np.cos(2 * theta) ** 2) / (np.sin(theta) ** 2 * np.cos(theta))
    residual_texture = np.exp(rng.normal(0.0, 0.08, refl.d0.size))
    # few grains per ring: log-normal intensity noise, shrinking with multiplicity and
    # correlated from curve to curve because the same grains stay in the beam
    grain_scale = comp.grain_sigma / np.sqrt(refl.multiplicity)
    grains = _smooth_ar1(rng, (n_curves, refl.d0.size), 0.6)
    grain_factor = np.exp(grain_scale * grains - 0.5 * grain_scale**2)
    intensity = (
        comp.fraction[:, None]
        * f_squared
        * lorentz_polarisation
        / volume[:, None] ** 2
        * residual_texture
        * grain_factor
    )
    microstrain = _microstrain(pressure, profile)[:, None] + 1.5e-3 * comp.coexistence[:, None]
    fwhm, eta = _widths(tth, microstrain, comp.size_nm, profile, wavelength)
    return _visible_peaks(tth, d, intensity, fwhm, eta, wavelength, window)


def _visible_peaks(tth, d, intensity, fwhm, eta, wavelength, window) -> tuple[np.ndarray, ...]:
    """Return (2θ, intensity, FWHM, η, curve) of the (curves × lines) peaks seen in the window, flat."""
    margin = np.minimum(30.0 * fwhm, 3.0)  # a peak's tail reaches into the window from outside
    reachable = 2.0 * d > wavelength  # Bragg condition: sin θ = λ/2d ≤ 1
    visible = reachable & (intensity > 0) & (tth > window[0] - margin) & (tth < window[1] + margin)
    curve_index = np.broadcast_to(np.arange(tth.shape[0])[:, None], tth.shape)
    return tuple(v[visible] for v in (tth, intensity, fwhm, eta, curve_index))


def _phase_lines(
    name: str,
    role: str,
    pressure: np.ndarray,
    profile: _Profile,
    zero_shift: float,
    wavelength: float,
    axis: np.ndarray,
    peak_rate: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Return the rate (counts/s, curves × points) of a marker's or medium's lines.

    Positions come from the phase's default equation of state at each curve's pressure
    (napari_xrdphase.phases), relative intensities from its approximate structure factors; the
    strongest line is a random share of the tallest sample line, with grain statistics.
    """
    from .phases import get_phase

    phase = get_phase(name)
    n_curves = pressure.size
    solid = pressure >= SOLID_FROM_GPA.get(phase.name, -math.inf)
    low, high = float(axis[0]), float(axis[-1])
    d_min = wavelength / (2.0 * math.sin(math.radians(min(high + 3.0, 179.0) / 2.0)))
    reference = float(max(pressure.max(), 0.0))
    lines = phase.reflections(reference, wavelength=wavelength, d_min=d_min)
    height = rng.uniform(*(MARKER_HEIGHT if role == "marker" else MEDIUM_HEIGHT))
    grain_sigma = 0.3 if role == "marker" else 1.0
    size_nm = 40.0 if role == "marker" else 200.0
    if not lines or not solid.any():
        rng.standard_normal((n_curves, max(len(lines), 1)))  # keep the stream's length fixed
        return np.zeros((n_curves, axis.size))
    d_ref = np.array([r.d for r in lines])
    relative = np.array([r.intensity for r in lines]) / 100.0
    # the cell keeps its shape: every d scales with (V/V_ref)^(1/3)
    v_ref = float(phase.volume(reference)) if reference > 0 else phase.scale().v0
    volume = np.array([float(phase.volume(p)) if p > 0 else phase.scale().v0 for p in pressure])
    d = d_ref[None, :] * np.cbrt(volume / v_ref)[:, None]
    tth = _two_theta(d, wavelength) + zero_shift
    fwhm, eta = _widths(tth, _microstrain(pressure, profile)[:, None], size_nm, profile, wavelength)
    ln2 = math.log(2.0)
    peak_per_area = eta * 2.0 / (math.pi * fwhm) + (1.0 - eta) * (2.0 / fwhm) * math.sqrt(
        ln2 / math.pi
    )
    step = (high - low) / (axis.size - 1)
    strongest = np.argmax(relative)
    grains = _smooth_ar1(rng, (n_curves, len(lines)), 0.6)
    multiplicity = np.array([r.multiplicity or 1 for r in lines], dtype=np.float64)
    g_sigma = grain_sigma / np.sqrt(multiplicity)
    grain_factor = np.exp(g_sigma * grains - 0.5 * g_sigma**2)
    areas = (
        height
        * peak_rate
        * relative[None, :]
        / (step * peak_per_area[:, strongest : strongest + 1])
        * grain_factor
        * solid[:, None]
    )
    margin = np.minimum(30.0 * fwhm, 3.0)
    visible = (areas > 0) & (tth > low - margin) & (tth < high + margin)
    curve_index = np.broadcast_to(np.arange(n_curves)[:, None], tth.shape)
    return _render(axis, *(v[visible] for v in (tth, areas, fwhm, eta, curve_index)), n_curves)


def _builtin_name(value: object, role: str) -> str:
    """Return the built-in phase name matching ``value`` (case-insensitive) for ``role``."""
    from .phases import builtin_phase_names

    names = builtin_phase_names()
    lookup = {n.lower(): n for n in names}
    if not isinstance(value, str) or value.lower() not in lookup:
        raise ValueError(f"unknown {role} {value!r}; use None or one of {', '.join(names)}")
    return lookup[value.lower()]


def _check_arguments(
    material: str,
    counts: tuple[int, int, int],
    exposure_s: float,
    medium: str | None,
    n_points: int,
    energy_kev: float,
    seed: int,
) -> str:
    lookup = {m.lower(): m for m in MATERIALS}
    if not isinstance(material, str) or material.lower() not in lookup:
        raise ValueError(f"unknown material {material!r}; use one of {', '.join(MATERIALS)}")
    for cls, n in zip(CLASSES, counts, strict=True):
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"n_{cls} must be a non-negative whole number, got {n!r}")
    if sum(counts) < 2:
        raise ValueError(
            f"a series needs at least 2 curves in total, got {sum(counts)}; "
            "raise n_before, n_during or n_after"
        )
    if not (math.isfinite(exposure_s) and exposure_s > 0):
        raise ValueError(f"exposure_s must be a positive number of seconds, got {exposure_s!r}")
    if medium is not None:
        _builtin_name(medium, "pressure medium")
    if isinstance(n_points, bool) or not isinstance(n_points, int | np.integer) or n_points < 8:
        raise ValueError(f"n_points must be a whole number ≥ 8, got {n_points!r}")
    if not (math.isfinite(energy_kev) and energy_kev > 0):
        raise ValueError(f"energy_kev must be a positive number, got {energy_kev!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")
    return lookup[material.lower()]


def _two_theta_window(
    two_theta_range: tuple[float, float] | None, wavelength: float
) -> tuple[float, float]:
    if two_theta_range is None:
        reference = energy_kev_to_wavelength(DEFAULT_ENERGY_KEV)
        sines = (
            math.sin(math.radians(t / 2.0)) * wavelength / reference
            for t in DEFAULT_TWO_THETA_RANGE
        )
        low, high = (2.0 * math.degrees(math.asin(min(1.0, v))) for v in sines)
        if high >= 180.0:
            raise ValueError(
                f"at λ = {wavelength:.4g} Å the default window (d from 5.55 to 1.12 Å) is out of "
                "reach; pass two_theta_range or a higher energy_kev"
            )
        return low, high
    try:
        low, high = (float(v) for v in two_theta_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"two_theta_range must be two numbers (low, high) in degrees, got {two_theta_range!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high < 180):
        raise ValueError(
            f"two_theta_range must satisfy 0 < low < high < 180 degrees, got ({low:g}, {high:g})"
        )
    return low, high


def simulate_series(
    material: str = "Fe",
    n_before: int = 20,
    n_during: int = 10,
    n_after: int = 30,
    *,
    exposure_s: float = 1.0,
    decompression: bool = False,
    calibrant: bool = False,
    medium: str | None = None,
    n_points: int = 4000,
    energy_kev: float = 25.6,
    two_theta_range: tuple[float, float] | None = None,
    seed: int = 0,
    name: str | None = None,
    marker: str | None = None,
    separate_lines: bool = False,
) -> SimulatedSeries:
    """Return a simulated pressure series of powder diffraction curves and its labels.

    ``marker`` (e.g. "Au") and ``medium`` (e.g. "Ar", "NaCl-B1") name built-in phases of
    napari_xrdphase.phases whose lines are added from their equations of state; their random
    draws and noise come from a generator of their own, so the sample curves are those of the
    same seed without them. ``calibrant=True`` (Pt) and ``medium="Ne"`` keep the simulator's
    historical rendering unless ``separate_lines`` is set (then they go the same way as
    ``marker``: ``calibrant=True`` means ``marker="Pt"``).
    """
    counts = (n_before, n_during, n_after)
    material = _check_arguments(material, counts, exposure_s, medium, n_points, energy_kev, seed)
    if marker is not None:
        marker = _builtin_name(marker, "marker")
        if calibrant:
            raise ValueError("give either calibrant=True (Pt) or marker=NAME, not both")
    if separate_lines and calibrant:
        calibrant, marker = False, "Pt"
    if medium is not None:
        medium = _builtin_name(medium, "pressure medium")
    historical_ne = medium == "Ne" and not separate_lines
    new_medium = medium if medium is not None and not historical_ne else None
    counts = tuple(int(n) for n in counts)
    n_points = int(n_points)
    wavelength = energy_kev_to_wavelength(energy_kev)
    low, high = _two_theta_window(two_theta_range, wavelength)
    axis = np.linspace(low, high, n_points)
    direction = "decompression" if decompression else "compression"
    name = name or f"{material}_{direction}_seed{seed}"
    rng = np.random.default_rng(seed)

    # --- series set-up: everything drawn here is independent of the exposure time -------------
    profile = _Profile(
        u=0.008 * rng.uniform(0.8, 1.25),
        v=-0.001 * rng.uniform(0.8, 1.25),
        w=0.0009 * rng.uniform(0.8, 1.25),
        size_nm=rng.uniform(40.0, 120.0),
        strain0=rng.uniform(2e-4, 5e-4),
        strain_per_gpa=(3e-5 if historical_ne else 6e-5) * rng.uniform(0.7, 1.3),
    )
    zero_shift = float(np.clip(rng.normal(0.0, 0.01), -0.03, 0.03))
    peak_rate = rng.uniform(1500.0, 4000.0)  # counts/s at the tallest peak of the first curve
    background_rate = peak_rate * rng.uniform(0.04, 0.12)
    texture_r = rng.uniform(0.8, 1.25)
    grain_sigma = rng.uniform(0.3, 0.8)

    if material == "Fe":
        if decompression:  # hcp → bcc, with the hysteresis of the reverse transition
            first = rng.uniform(9.0, 11.0)  # bcc appears
            second = first - rng.uniform(3.0, 5.0)  # hcp gone
            start, end = rng.uniform(22.0, 40.0), rng.uniform(0.2, 1.5)
        else:
            first = rng.uniform(12.8, 14.8)  # hcp appears
            second = first + rng.uniform(2.5, 6.0)  # bcc gone
            start, end = rng.uniform(0.3, 3.0), second + rng.uniform(8.0, 25.0)
        low_p, high_p = min(first, second), max(first, second)
        rb1_onset = rb1_rate = math.nan
    else:
        rb1_onset = rng.uniform(14.5, 17.0)
        rb1_rate = rng.uniform(7e-4, 1.1e-3)  # rhombohedral strain per GPa above the onset
        resolved = _feo_resolved_pressure(rb1_onset, rb1_rate, profile, wavelength)
        if decompression:
            first, second = resolved, rb1_onset
            start, end = resolved + rng.uniform(10.0, 30.0), rng.uniform(0.3, 3.0)
        else:
            first, second = rb1_onset, resolved
            start, end = rng.uniform(0.3, 3.0), resolved + rng.uniform(10.0, 30.0)
        low_p, high_p = rb1_onset, resolved

    # labels name the state, not the acquisition order: "before" is always the low-pressure
    # phase, so a classifier trained on compression series reads decompression series too
    in_order = counts[::-1] if decompression else counts
    pressure, labels = _pressures_and_labels((start, first, second, end), in_order, rng)
    if decompression:
        labels = np.array([SWAPPED.get(lab, lab) for lab in labels], dtype=labels.dtype)
    n_curves = pressure.size

    # --- phases present per curve -------------------------------------------------------------
    zeros = np.zeros(n_curves)
    if material == "Fe":
        hcp_fraction = np.clip((pressure - low_p) / (high_p - low_p), 0.0, 1.0)
        coexistence = 4.0 * hcp_fraction * (1.0 - hcp_fraction)
        components = [
            _Component(
                BCC_FE, 1.0 - hcp_fraction, profile.size_nm, grain_sigma, zeros, coexistence
            ),
            _Component(
                HCP_FE, hcp_fraction, 0.7 * profile.size_nm, grain_sigma, zeros, coexistence
            ),
        ]
    else:
        rb1_strain = rb1_rate * np.maximum(pressure - rb1_onset, 0.0)
        components = [
            _Component(FEO, np.ones(n_curves), profile.size_nm, grain_sigma, rb1_strain, zeros)
        ]
    if calibrant:
        pt_share = np.full(n_curves, rng.uniform(0.03, 0.1))
        components.append(_Component(PT, pt_share, 40.0, 0.3, zeros, zeros))
    if historical_ne:
        solid = (pressure >= NE_FREEZING_GPA).astype(np.float64)
        components.append(_Component(NE, solid * rng.uniform(0.5, 1.0), 200.0, 2.0, zeros, zeros))

    peak_lists = [
        _component_peaks(
            comp, pressure, profile, texture_r, zero_shift, wavelength, (low, high), rng
        )
        for comp in components
    ]
    peak_arrays = [np.concatenate(column) for column in zip(*peak_lists, strict=True)]
    peaks = _render(axis, *peak_arrays, n_curves)
    first_max = peaks[0].max()
    peaks *= peak_rate / first_max if first_max > 0 else 0.0
    background = background_rate * _background(axis, wavelength, n_curves, rng)
    flux = np.exp(rng.normal(0.0, 0.02, n_curves))[:, None]  # incident-beam fluctuation
    expected = exposure_s * flux * (peaks + background)
    counts_array = rng.poisson(expected).astype(np.float32)
    if marker is not None or new_medium is not None:
        # a generator of their own: the sample's draws and noise stay those of the same seed,
        # and the sum of two independent Poisson draws is the Poisson draw of the summed rate
        lines_rng = np.random.default_rng([int(seed), 1])
        extra = np.zeros_like(peaks)
        for phase_name, role in ((marker, "marker"), (new_medium, "medium")):
            if phase_name is not None:
                extra += _phase_lines(
                    phase_name, role, pressure, profile, zero_shift, wavelength, axis,
                    peak_rate, lines_rng,
                )  # fmt: skip
        counts_array += lines_rng.poisson(exposure_s * flux * extra).astype(np.float32)

    metadata = {
        "source": "napari_xrdphase.synth",
        "material": material,
        "direction": direction,
        "exposure_s": float(exposure_s),
        "seed": int(seed),
        "energy_kev": float(energy_kev),
        "calibrant": "Pt" if calibrant else "none",
        "medium": medium or "none",
        "zero_shift_deg": zero_shift,
        "transition_start_gpa": float(first),
        "transition_end_gpa": float(second),
        "class_counts": list(counts),
    }
    if marker is not None:
        metadata["marker"] = marker
    if new_medium is not None:
        metadata["medium_solid_from_gpa"] = SOLID_FROM_GPA.get(new_medium, 0.0)
    if material == "FeO":
        metadata["rhombohedral_onset_gpa"] = float(rb1_onset)
        metadata["rhombohedral_strain_per_gpa"] = float(rb1_rate)
    stack = SpectraStack(
        intensities=counts_array,
        axis=axis,
        axis_kind="2theta",
        axis_unit="deg",
        variable=pressure,
        variable_name="pressure",
        variable_unit="GPa",
        name=name,
        wavelength=wavelength,
        metadata=metadata,
    )
    return SimulatedSeries(stack=stack, labels=labels)


def paper_suite(seed: int = 0, n_points: int = 4000) -> list[SimulatedSeries]:
    """Return the nine series D1–D9 mirroring Table 1 of Sun et al. (2023)."""
    suite = []
    for index, spec in enumerate(PAPER_SUITE):
        series_seed = int(np.random.SeedSequence([int(seed), index]).generate_state(1)[0])
        series = simulate_series(
            spec.material,
            spec.n_before,
            spec.n_during,
            spec.n_after,
            exposure_s=spec.exposure_s,
            decompression=spec.decompression,
            calibrant=spec.calibrant,
            medium=spec.medium,
            n_points=n_points,
            seed=series_seed,
            name=spec.name,
        )
        series.stack.metadata.update(
            suite="paper", suite_seed=int(seed), pretraining=spec.pretraining
        )
        suite.append(series)
    return suite
