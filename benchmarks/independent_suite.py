"""An independent simulator of synchrotron diamond-anvil-cell XRD series, for out-of-distribution tests.

This module shares no code and no numbers with ``napari_xrdphase.synth``: it was written from
textbook crystallography and published equations of state, so that the product can be measured
on data from "another simulator". It uses numpy and the standard library only (h5py is imported
by :func:`write_suite` for the HDF5 series).

What it models, per curve (a 1D azimuthally integrated pattern, 2θ in degrees):

* **Materials.** Fe: bcc (α, a0 = 2.866 Å, Birch–Murnaghan 3rd order) → hcp (ε, Vinet,
  c/a ≈ 1.60) with coexistence over a few GPa, onset ≈ 13 GPa on compression and hysteresis on
  decompression (hcp persists down to ≈ 8–10 GPa). FeO: cubic B1 (a0 = 4.311 Å) → rhombohedral
  rB1 around 16–20 GPa, as a growing fraction of rhombohedral domains whose pseudo-cubic angle
  departs gradually from 90° (primitive angle from 60°), so that (111) and (220) split and
  (200) does not.
* **Reflections** enumerated from the lattice (all hkl within the 2θ window at every pressure),
  systematic absences of bcc, hcp and fcc/B1 applied (and checked against the structure
  factor), multiplicities from symmetry-equivalent hkl, structure factors with Cromer–Mann
  atomic form factors and isotropic Debye–Waller factors, Lorentz–polarisation factor of an
  azimuthally integrated ring, intensity ∝ phase fraction / V_cell².
* **Profile**: Thompson–Cox–Hastings pseudo-Voigt: Caglioti Gaussian width plus
  pressure-dependent microstrain (∝ tanθ), Lorentzian size/strain width, extra size broadening
  while a phase transforms.
* **Sample environment**: optional pressure medium (solid Ne above 4.8 GPa, fluid Ne hump
  below; NaCl B1; or silicone oil, which only adds an amorphous hump), optional gold
  calibrant, single-crystal diamond spots in a few frames, Chebyshev background with a broad
  amorphous hump and a low-angle tail, slowly drifting per-reflection texture factors
  (Ornstein–Uhlenbeck in log intensity), ring-current decay / top-up and detector drift,
  Poisson counting noise.
* **Geometry**: a realistic wavelength, a 2θ window and a point count per series; uniform step.
* **Pressure**: non-uniform monotonic ramps with gauge noise (rounded to 0.01 GPa), ambient
  frames before the cell is closed, Fe decompression series.

Labels name the phase, not the time order: "before" where the high-pressure phase fraction is
below 2 %, "after" where it is above 98 %, "during" in between (also on decompression).

    suite = independent_suite(seed=0)
    paths = write_suite(suite, "/tmp/indep")   # {name: folder or file}, readable by load_stack
"""

from __future__ import annotations

import csv
import math
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PHASES",
    "SERIES_DESIGN",
    "IndependentSeries",
    "high_pressure_fraction",
    "independent_suite",
    "lattice",
    "line_two_theta",
    "write_suite",
]

LABELS = ("before", "during", "after")
_DEG = math.pi / 180.0
_LN2 = math.log(2.0)

# Cromer–Mann coefficients (International Tables for Crystallography, Vol. C, Table 6.1.1.4):
# f(s) = sum_i a_i exp(-b_i s^2) + c with s = sinθ/λ in 1/Å.
_CROMER_MANN: dict[str, tuple[tuple[float, ...], tuple[float, ...], float]] = {
    "Fe": ((11.7695, 7.3573, 3.5222, 2.3045), (4.7611, 0.3072, 15.3535, 76.8805), 1.0369),
    "O": ((3.0485, 2.2868, 1.5463, 0.8670), (13.2771, 5.7011, 0.3239, 32.9089), 0.2508),
    "Au": ((16.8819, 18.5913, 25.5582, 5.8600), (0.4611, 8.6216, 1.4826, 36.3956), 12.0658),
    "Ne": ((3.9553, 3.1125, 1.4546, 1.1251), (8.4042, 3.4262, 0.2306, 21.7184), 0.3515),
    "Na": ((4.7626, 3.1736, 1.2674, 1.1128), (3.2850, 8.8422, 0.3136, 129.424), 0.6760),
    "Cl": ((11.4604, 7.1962, 6.2556, 1.6455), (0.0104, 1.1662, 18.5194, 47.7784), -9.5574),
}
_ATOMIC_NUMBER = {"Fe": 26, "O": 8, "Au": 79, "Ne": 10, "Na": 11, "Cl": 17}


def form_factor(element: str, s: np.ndarray) -> np.ndarray:
    """Return the X-ray atomic form factor of ``element`` at s = sinθ/λ (1/Å)."""
    a, b, c = _CROMER_MANN[element]
    s2 = np.asarray(s, dtype=np.float64) ** 2
    return c + sum(ai * np.exp(-bi * s2) for ai, bi in zip(a, b, strict=True))


# --- equations of state ------------------------------------------------------------------------
@dataclass(frozen=True)
class EOS:
    """An isothermal (300 K) equation of state of one conventional cell: V0 (Å^3), K0 (GPa), K0'."""

    form: str  # "bm3" (Birch–Murnaghan, 3rd order) or "vinet"
    v0: float
    k0: float
    k0p: float

    def pressure(self, x: np.ndarray) -> np.ndarray:
        """Pressure (GPa) at the compression x = V/V0."""
        x = np.asarray(x, dtype=np.float64)
        if self.form == "bm3":
            f = x ** (-2.0 / 3.0)
            return (
                1.5
                * self.k0
                * (x ** (-7.0 / 3.0) - x ** (-5.0 / 3.0))
                * (1.0 + 0.75 * (self.k0p - 4.0) * (f - 1.0))
            )
        eta = np.cbrt(x)
        return 3.0 * self.k0 * (1.0 - eta) / eta**2 * np.exp(1.5 * (self.k0p - 1.0) * (1.0 - eta))

    def volume(self, pressure: np.ndarray) -> np.ndarray:
        """Cell volume (Å^3) at ``pressure`` (GPa), by bisection of P(V) (monotonic)."""
        p = np.maximum(np.asarray(pressure, dtype=np.float64), 0.0)
        lo = np.full(p.shape, 0.2)
        hi = np.full(p.shape, 1.0)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            above = self.pressure(mid) > p  # too compressed: the volume is larger
            lo = np.where(above, mid, lo)
            hi = np.where(above, hi, mid)
        return self.v0 * 0.5 * (lo + hi)


# --- phases -----------------------------------------------------------------------------------
_FCC = ((0.0, 0.0, 0.0), (0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0))


def _fcc(element: str, shift: tuple[float, float, float] = (0.0, 0.0, 0.0)):
    return tuple(
        (element, tuple((c + s) % 1.0 for c, s in zip(p, shift, strict=True))) for p in _FCC
    )


@dataclass(frozen=True)
class Phase:
    """A crystalline phase: lattice type, EOS of its conventional cell and its atoms."""

    name: str
    system: str  # "cubic", "hexagonal" or "rhombohedral" (pseudo-cubic F-centred setting)
    rule: str  # reflection conditions: "bcc", "fcc" (also rock salt) or "hcp"
    eos: EOS
    sites: tuple[tuple[str, tuple[float, float, float]], ...]
    b_iso: tuple[tuple[str, float], ...]  # Debye–Waller B (Å^2) per element
    c_over_a: tuple[float, float] = (0.0, 0.0)  # hexagonal: c/a = c0 + c1 * P
    solid_above: float = 0.0  # GPa; no Bragg lines below (a fluid pressure medium)


PHASES: dict[str, Phase] = {
    # α-Fe: a0 = 2.866 Å; K0 = 164 GPa, K0' = 5.5 (BM3), in the range of ultrasonic and
    # X-ray compression studies
    "Fe-bcc": Phase(
        "Fe-bcc",
        "cubic",
        "bcc",
        EOS("bm3", 2.866**3, 164.0, 5.5),
        (("Fe", (0.0, 0.0, 0.0)), ("Fe", (0.5, 0.5, 0.5))),
        (("Fe", 0.35),),
    ),
    # ε-Fe: V0 = 22.428 Å^3 per 2-atom cell, Vinet K0 = 163.4 GPa, K0' = 5.38 (Dewaele et
    # al. 2006); c/a = 1.600 rising slowly with pressure
    "Fe-hcp": Phase(
        "Fe-hcp",
        "hexagonal",
        "hcp",
        EOS("vinet", 22.428, 163.4, 5.38),
        (("Fe", (1 / 3, 2 / 3, 0.25)), ("Fe", (2 / 3, 1 / 3, 0.75))),
        (("Fe", 0.35),),
        c_over_a=(1.600, 2.0e-4),
    ),
    # wüstite Fe0.94O, B1: a0 = 4.311 Å, BM3 K0 = 148 GPa, K0' = 4.0
    "FeO-B1": Phase(
        "FeO-B1",
        "cubic",
        "fcc",
        EOS("bm3", 4.311**3, 148.0, 4.0),
        _fcc("Fe") + _fcc("O", (0.5, 0.0, 0.0)),
        (("Fe", 0.45), ("O", 0.6)),
    ),
    # rhombohedral FeO in its pseudo-cubic F-centred cell (angle < 90° = elongated along
    # [111]); same atoms, same volume as B1, the distortion is set per curve
    "FeO-rB1": Phase(
        "FeO-rB1",
        "rhombohedral",
        "fcc",
        EOS("bm3", 4.311**3, 148.0, 4.0),
        _fcc("Fe") + _fcc("O", (0.5, 0.0, 0.0)),
        (("Fe", 0.45), ("O", 0.6)),
    ),
    # gold calibrant: a0 = 4.0782 Å, Vinet K0 = 167 GPa, K0' = 5.9 (Fei et al. 2007)
    "Au": Phase(
        "Au", "cubic", "fcc", EOS("vinet", 4.0782**3, 167.0, 5.9), _fcc("Au"), (("Au", 0.6),)
    ),
    # neon: fcc solid above 4.8 GPa at 300 K; Vinet V0 = 22.234 Å^3/atom, K0 = 1.07 GPa,
    # K0' = 8.40 (Dewaele et al. 2008)
    "Ne": Phase(
        "Ne",
        "cubic",
        "fcc",
        EOS("vinet", 4 * 22.234, 1.070, 8.40),
        _fcc("Ne"),
        (("Ne", 1.5),),
        solid_above=4.8,
    ),
    # NaCl B1: a0 = 5.640 Å, Vinet K0 = 23.7 GPa, K0' = 5.14 (B1 → B2 near 30 GPa: the
    # series that use it stay below 29 GPa)
    "NaCl": Phase(
        "NaCl",
        "cubic",
        "fcc",
        EOS("vinet", 5.640**3, 23.7, 5.14),
        _fcc("Na") + _fcc("Cl", (0.5, 0.5, 0.5)),
        (("Na", 1.3), ("Cl", 1.0)),
    ),
}


def lattice(phase: str | Phase, pressure, distortion_deg=0.0) -> dict[str, np.ndarray]:
    """Return the conventional cell at ``pressure`` (GPa): a, c (Å), angle (deg), volume (Å^3).

    ``distortion_deg`` is 90° minus the pseudo-cubic angle of the rhombohedral phase.
    """
    ph = PHASES[phase] if isinstance(phase, str) else phase
    p = np.asarray(pressure, dtype=np.float64)
    v = ph.eos.volume(p)
    if ph.system == "cubic":
        a = np.cbrt(v)
        return {"a": a, "c": a, "angle": np.full(p.shape, 90.0), "volume": v}
    if ph.system == "hexagonal":
        ca = ph.c_over_a[0] + ph.c_over_a[1] * p
        a = np.cbrt(2.0 * v / (math.sqrt(3.0) * ca))
        return {"a": a, "c": ca * a, "angle": np.full(p.shape, 120.0), "volume": v}
    alpha = 90.0 - np.asarray(distortion_deg, dtype=np.float64) * np.ones_like(p)
    cos = np.cos(alpha * _DEG)
    a = np.cbrt(v / np.sqrt(1.0 - 3.0 * cos**2 + 2.0 * cos**3))
    return {"a": a, "c": a, "angle": alpha, "volume": v}


def _reciprocal_metric(ph: Phase, cell: dict[str, np.ndarray]) -> np.ndarray:
    """Return G* (n, 3, 3), so that 1/d^2 = h G* h."""
    a, c, ang = (np.atleast_1d(cell[k]) for k in ("a", "c", "angle"))
    n = a.shape[0]
    g = np.zeros((n, 3, 3))
    if ph.system == "hexagonal":
        g[:, 0, 0] = g[:, 1, 1] = a**2
        g[:, 0, 1] = g[:, 1, 0] = a**2 * math.cos(120.0 * _DEG)
        g[:, 2, 2] = c**2
    else:  # cubic or rhombohedral: a = b = c, α = β = γ
        cos = np.cos(ang * _DEG)
        g[:] = (a**2 * cos)[:, None, None]
        idx = np.arange(3)
        g[:, idx, idx] = (a**2)[:, None]
    return np.linalg.inv(g)


def _allowed(rule: str, hkl: np.ndarray) -> np.ndarray:
    h, k, l = hkl.T  # noqa: E741
    if rule == "bcc":
        return (h + k + l) % 2 == 0
    if rule == "fcc":
        parity = hkl % 2
        return np.all(parity == parity[:, :1], axis=1)
    if rule == "hcp":
        return ~((l % 2 == 1) & ((h - k) % 3 == 0))
    raise ValueError(f"unknown reflection rule {rule!r}")


@dataclass
class _Reflections:
    """Reflections of a phase grouped into lines (equal d at every pressure)."""

    phase: Phase
    hkl: np.ndarray  # (n_lines, 3) one representative per line
    weights: np.ndarray  # (n_lines, n_sites, n_sites): sum over members of cos(2π h·(x_i - x_j))
    parent: np.ndarray  # (n_lines,) h²+k²+l² (cubic parent line) or a line index
    elements: tuple[str, ...]


def _line_key(system: str, hkl: np.ndarray) -> np.ndarray:
    h, k, l = hkl.T  # noqa: E741
    if system == "cubic":
        return np.stack([h * h + k * k + l * l], axis=1)
    if system == "rhombohedral":
        return np.stack([h * h + k * k + l * l, h * k + k * l + l * h], axis=1)
    return np.stack([h * h + h * k + k * k, l * l], axis=1)


def _reflections(
    ph: Phase, d_min: float, d_max: float, p_range: tuple[float, float]
) -> _Reflections:
    """Enumerate hkl, apply absences, group equivalent reflections into lines."""
    big = lattice(ph, np.array([min(p_range)]))
    lengths = (
        [big["a"][0] * 2 / math.sqrt(3.0)] * 2 + [big["c"][0]]
        if ph.system == "hexagonal"
        else [big["a"][0]] * 3
    )
    hmax = [math.ceil(length / d_min) + 1 for length in lengths]
    grids = np.meshgrid(*(np.arange(-m, m + 1) for m in hmax), indexing="ij")
    hkl = np.stack([g.ravel() for g in grids], axis=1)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    # d at the smallest and largest cell (a distorted rhombohedral cell: up to 2° off)
    cells = [lattice(ph, np.array([p]), dist) for p in p_range for dist in (0.0, 2.0)]
    inv_d2 = np.stack(
        [np.einsum("ni,ij,nj->n", hkl, _reciprocal_metric(ph, c)[0], hkl) for c in cells]
    )
    d_hi, d_lo = 1.0 / np.sqrt(inv_d2.min(axis=0)), 1.0 / np.sqrt(inv_d2.max(axis=0))
    keep = (d_lo <= d_max) & (d_hi >= d_min)
    hkl = hkl[keep]

    pos = np.array([p for _, p in ph.sites])
    elements = tuple(e for e, _ in ph.sites)
    phase = np.exp(2j * np.pi * hkl @ pos.T)  # (n_hkl, n_sites)
    z = np.array([_ATOMIC_NUMBER[e] for e in elements], dtype=np.float64)
    f2_at_zero = np.abs(phase @ z) ** 2
    allowed = _allowed(ph.rule, hkl)
    extinct = f2_at_zero < 1e-6 * z.sum() ** 2
    if np.any(allowed == extinct):  # the textbook rule and the structure factor must agree
        raise AssertionError(f"{ph.name}: reflection conditions disagree with F(hkl)")
    hkl, phase = hkl[allowed], phase[allowed]
    keys, inverse = np.unique(_line_key(ph.system, hkl), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    n_lines, n_sites = keys.shape[0], len(elements)
    outer = np.real(phase[:, :, None] * np.conj(phase[:, None, :]))
    weights = np.zeros((n_lines, n_sites, n_sites))
    np.add.at(weights, inverse, outer)
    first = np.zeros(n_lines, dtype=np.int64)
    first[inverse[::-1]] = np.arange(hkl.shape[0])[::-1]
    reps = hkl[first]
    parent = keys[:, 0].copy() if ph.system != "hexagonal" else np.arange(n_lines)
    return _Reflections(ph, reps, weights, parent, elements)


def line_two_theta(
    phase: str, hkl: Sequence[int], pressure, wavelength: float, distortion_deg=0.0
) -> np.ndarray:
    """Return the Bragg angle 2θ (deg) of reflection ``hkl`` of ``phase`` at ``pressure`` (GPa)."""
    ph = PHASES[phase]
    p = np.atleast_1d(np.asarray(pressure, dtype=np.float64))
    g = _reciprocal_metric(ph, lattice(ph, p, distortion_deg))
    h = np.asarray(hkl, dtype=np.float64)
    d = 1.0 / np.sqrt(np.einsum("i,nij,j->n", h, g, h))
    out = 2.0 * np.arcsin(wavelength / (2.0 * d)) / _DEG
    return out if np.ndim(pressure) else out[0]


def high_pressure_fraction(pressure, center: float, width: float) -> np.ndarray:
    """Logistic fraction of the high-pressure phase: 2 % at center − 3.89 w, 98 % at center + 3.89 w."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(pressure, dtype=np.float64) - center) / width))


# --- the series -------------------------------------------------------------------------------
@dataclass
class IndependentSeries:
    name: str  # "X1", "X2", ...
    material: str  # "Fe" or "FeO"
    two_theta: np.ndarray  # (n_points,) degrees
    wavelength: float  # Å
    pressure: np.ndarray  # (n_curves,) GPa
    curves: np.ndarray  # (n_curves, n_points) float64, counts
    labels: np.ndarray  # (n_curves,) str: "before" | "during" | "after"
    decompression: bool


@dataclass(frozen=True)
class _Design:
    name: str
    material: str
    decompression: bool
    wavelength: float
    medium: str  # "Ne", "NaCl", "silicone oil" or "none"
    gold: bool
    fmt: str  # how write_suite stores it
    curves: tuple[int, int]  # range of the number of curves
    beam: str  # "decay" (ring current decays, refills) or "top-up"


# fmt: off
SERIES_DESIGN: tuple[_Design, ...] = (
    _Design("X1", "Fe", False, 0.3344, "silicone oil", True, "pyfai-xy", (70, 120), "top-up"),
    _Design("X2", "Fe", False, 0.4066, "Ne", True, "fit2d-chi", (60, 110), "decay"),
    _Design("X3", "Fe", True, 0.2952, "NaCl", False, "nexus", (160, 300), "top-up"),
    _Design("X4", "Fe", False, 0.4959, "Ne", True, "npz", (150, 300), "decay"),
    _Design("X5", "Fe", True, 0.4133, "Ne", True, "gsas-xye", (60, 110), "top-up"),
    _Design("X6", "FeO", False, 0.2952, "Ne", True, "pyfai-xy-comment", (70, 130), "top-up"),
    _Design("X7", "FeO", False, 0.3344, "none", False, "plain-dat", (60, 120), "decay"),
    _Design("X8", "FeO", False, 0.4066, "NaCl", True, "matlab-h5", (150, 300), "top-up"),
)
# fmt: on


def _ou(rng: np.random.Generator, n: int, k: int, sigma: float, tau: float) -> np.ndarray:
    """(n, k) Ornstein–Uhlenbeck paths: stationary N(0, sigma²), correlation time tau frames."""
    rho = math.exp(-1.0 / max(tau, 1e-3))
    out = np.empty((n, k))
    out[0] = rng.normal(0.0, sigma, k)
    kick = rng.normal(0.0, sigma * math.sqrt(1.0 - rho * rho), (n, k))
    for t in range(1, n):
        out[t] = rho * out[t - 1] + kick[t]
    return out


def _schedule(rng, n, p_from, p_to, n_ambient, sigma0):
    """True and recorded pressures of a ramp with non-uniform steps and gauge noise."""
    steps = rng.gamma(2.0, 1.0, n - n_ambient - 1)
    steps[rng.random(steps.size) < 0.1] *= 0.15  # pauses: several frames at one load
    cum = np.concatenate([[0.0], np.cumsum(steps)])
    ramp = p_from + (p_to - p_from) * cum / cum[-1]
    true = np.concatenate([np.zeros(n_ambient), ramp])
    recorded = true + rng.normal(0.0, 1.0, n) * (sigma0 + 0.002 * true)
    recorded = np.round(np.maximum(recorded, 0.0), 2)
    recorded[:n_ambient] = 0.0
    return true, recorded


def _labels(fraction: np.ndarray) -> np.ndarray:
    return np.where(fraction < 0.02, "before", np.where(fraction > 0.98, "after", "during"))


def _window(rng, lam, material):
    """2θ start/end (deg) and point count for one series."""
    # the strongest low-angle line must stay inside: Fe hcp(100) / FeO (111) at high pressure
    d_first = 2.10 if material == "Fe" else 2.36
    first = 2.0 * math.degrees(math.asin(lam / (2.0 * d_first)))
    start = float(rng.uniform(5.0, min(8.0, first - 0.8)))
    # and the second-order lines: bcc(200)/hcp(110) and FeO (220) at ambient
    d_last = 1.40 if material == "Fe" else 1.50
    need = 2.0 * math.degrees(math.asin(lam / (2.0 * d_last))) + 1.0
    end = float(rng.uniform(max(18.0, need), 30.0))
    n_min = max(1500, math.ceil((end - start) / 0.011))
    n_points = int(rng.integers(n_min, 5001))
    return start, end, n_points


def _render(two_theta, pos, area, fwhm, eta, out):
    """Add area-normalised pseudo-Voigt peaks (1D arrays) to ``out`` in place."""
    step = two_theta[1] - two_theta[0]
    n = two_theta.size
    if pos.size == 0:
        return
    half = int(min(n, math.ceil(25.0 * fwhm.max() / step)))
    offsets = np.arange(-half, half + 1)
    centre = np.rint((pos - two_theta[0]) / step).astype(np.int64)
    idx = centre[:, None] + offsets[None, :]
    x = (two_theta[0] + idx * step - pos[:, None]) / fwhm[:, None]
    lorentz = (2.0 / math.pi) / (1.0 + 4.0 * x * x)
    gauss = (2.0 * math.sqrt(_LN2 / math.pi)) * np.exp(-4.0 * _LN2 * x * x)
    prof = (area / fwhm)[:, None] * (eta[:, None] * lorentz + (1.0 - eta[:, None]) * gauss)
    valid = (idx >= 0) & (idx < n)
    out += np.bincount(idx[valid], weights=prof[valid], minlength=n)


def _tch(h_g: np.ndarray, h_l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thompson–Cox–Hastings pseudo-Voigt: total FWHM and Lorentzian fraction η.

    The published formula, also in ``napari_xrdphase.synth``; written again on purpose: this
    simulator shares no code with the one the method was developed on.
    """
    h = (
        h_g**5
        + 2.69269 * h_g**4 * h_l
        + 2.42843 * h_g**3 * h_l**2
        + 4.47163 * h_g**2 * h_l**3
        + 0.07842 * h_g * h_l**4
        + h_l**5
    ) ** 0.2
    r = h_l / h
    eta = np.clip(1.36603 * r - 0.47719 * r**2 + 0.11116 * r**3, 0.0, 1.0)
    return h, eta


@dataclass
class _Component:
    refl: _Reflections
    amount: np.ndarray  # (n_curves,) phase fraction × volume scale
    texture: np.ndarray  # (n_curves, n_lines) multiplicative factors
    distortion: np.ndarray  # (n_curves,) deg (rhombohedral only)
    strain: np.ndarray  # (n_curves,) microstrain ε (FWHM of Δd/d)
    size_l: np.ndarray  # (n_curves,) extra Lorentzian width at θ = 0 (deg)


def _component_lines(comp, pressure, lam, t_lo, t_hi, cag):
    """Peak arrays (curve index, 2θ, area, H_G, H_L) of one phase for all curves."""
    ph = comp.refl.phase
    cell = lattice(ph, pressure, comp.distortion)
    g = _reciprocal_metric(ph, cell)
    hkl = comp.refl.hkl.astype(np.float64)
    d = 1.0 / np.sqrt(np.einsum("gi,nij,gj->ng", hkl, g, hkl))  # (n_curves, n_lines)
    s = 0.5 / d
    sin_t = np.clip(lam * s, 0.0, 0.999999)
    theta = np.arcsin(sin_t)
    tth = 2.0 * theta / _DEG
    b = dict(ph.b_iso)
    f_site = np.stack(
        [form_factor(e, s) * np.exp(-b[e] * s * s) for e in comp.refl.elements], axis=-1
    )  # (n_curves, n_lines, n_sites)
    f2 = np.einsum("ngi,gij,ngj->ng", f_site, comp.refl.weights, f_site)
    cos2t = np.cos(2.0 * theta)
    lp = (1.0 + cos2t**2) / (sin_t**2 * np.cos(theta))
    area = comp.amount[:, None] * comp.texture * f2 * lp / cell["volume"][:, None] ** 2
    tan_t = np.tan(theta)
    u, v, w, x_l, y_l = cag
    h_g2 = u * tan_t**2 + v * tan_t + w + (4.0 * comp.strain[:, None] * tan_t / _DEG) ** 2
    h_g = np.sqrt(np.maximum(h_g2, 0.25 * w))
    h_l = x_l * tan_t + (y_l + comp.size_l[:, None]) / np.cos(theta)
    inside = (tth > t_lo - 1.0) & (tth < t_hi + 1.0) & (comp.amount[:, None] > 0)
    rows = np.nonzero(inside)
    return rows[0], tth[rows], area[rows], h_g[rows], h_l[rows]


def _simulate(design: _Design, seed: int, index: int) -> IndependentSeries:
    rng = np.random.default_rng([seed, index, 0x1D5])
    lam = design.wavelength
    start, end, n_points = _window(rng, lam, design.material)
    tth = np.linspace(start, end, n_points)
    step = tth[1] - tth[0]
    n = int(rng.integers(design.curves[0], design.curves[1] + 1))

    # --- transition and pressure schedule
    if design.material == "Fe":
        if design.decompression:  # ε → α on unloading: hcp persists to 8–10 GPa
            center, width = rng.uniform(8.2, 9.6), rng.uniform(0.35, 0.55)
            p_from, p_to = rng.uniform(22.0, 28.0), rng.uniform(0.3, 2.5)
        else:  # α → ε: onset ≈ 13 GPa, complete ≈ 16–18 GPa
            center, width = rng.uniform(14.6, 15.6), rng.uniform(0.4, 0.65)
            p_from, p_to = rng.uniform(0.6, 2.0), rng.uniform(center + 3.9 * width + 5.0, 32.0)
        high, low = "Fe-hcp", "Fe-bcc"
    else:
        center, width = rng.uniform(17.0, 19.0), rng.uniform(0.6, 0.85)
        cap = 28.0 if design.medium == "NaCl" else 45.0
        p_from, p_to = rng.uniform(0.5, 2.0), rng.uniform(min(cap - 2.0, 30.0), cap)
        high, low = "FeO-rB1", "FeO-B1"
    n_ambient = 0 if design.decompression else int(rng.integers(1, 4))
    for _ in range(100):  # redraw the steps until every class has at least 3 curves
        p_true, p_rec = _schedule(rng, n, p_from, p_to, n_ambient, rng.uniform(0.02, 0.05))
        frac = high_pressure_fraction(p_true, center, width)
        labels = _labels(frac)
        if all(np.count_nonzero(labels == c) >= 3 for c in LABELS):
            break
    else:  # pragma: no cover - the design makes this practically impossible
        raise RuntimeError(f"{design.name}: could not draw a schedule with every class")

    # --- instrument
    w = max(rng.uniform(3.0e-4, 1.0e-3), (2.6 * step) ** 2)
    cag = (
        rng.uniform(0.005, 0.03),
        rng.uniform(-2.0e-3, 0.0) * math.sqrt(w / 1e-3),
        w,
        rng.uniform(0.0, 0.02),
        rng.uniform(0.003, 0.012),
    )
    strain_per_gpa = {"Ne": 2.5e-5, "silicone oil": 6e-5, "NaCl": 5e-5, "none": 9e-5}[design.medium]
    eps0 = rng.uniform(1e-4, 4e-4)
    strain = eps0 + strain_per_gpa * p_true
    transforming = 4.0 * frac * (1.0 - frac)  # defects and small domains while it transforms
    size_tr = rng.uniform(0.01, 0.03)

    # --- phases present
    d_min = lam / (2.0 * math.sin((end + 1.0) / 2.0 * _DEG))
    d_max = lam / (2.0 * math.sin(max(start - 1.0, 0.5) / 2.0 * _DEG))
    p_range = (0.0, float(p_true.max()) + 1.0)
    sample_tau, sample_sigma = rng.uniform(30.0, 80.0), rng.uniform(0.2, 0.4)
    components: list[_Component] = []
    zeros = np.zeros(n)

    def add(phase: str, amount, sigma, tau, distortion=zeros, size=zeros, parent_tex=None):
        refl = _reflections(PHASES[phase], d_min, d_max, p_range)
        n_lines = refl.hkl.shape[0]
        if parent_tex is None:
            tex = np.exp(_ou(rng, n, n_lines, sigma, tau))
        else:  # rhombohedral domains inherit the cubic texture, with a small own part
            tex = parent_tex(refl.parent) * np.exp(rng.normal(0.0, 0.1, n_lines))[None, :]
        components.append(
            _Component(refl, np.asarray(amount, float), tex, distortion, strain, size)
        )
        return refl

    if design.material == "Fe":
        add(low, 1.0 - frac, sample_sigma, sample_tau, size=size_tr * transforming)
        add(high, frac, sample_sigma * 1.3, sample_tau, size=size_tr * transforming)
    else:
        cubic = add(low, 1.0 - frac, sample_sigma, sample_tau, size=size_tr * transforming)
        cubic_tex = components[-1].texture
        by_n = {int(k): i for i, k in enumerate(cubic.parent)}

        def parent_tex(parents):
            cols = [by_n.get(int(k)) for k in parents]
            return np.stack(
                [cubic_tex[:, c] if c is not None else np.ones(n) for c in cols], axis=1
            )

        onset = center - math.log(49.0) * width
        distortion = rng.uniform(0.12, 0.2) + rng.uniform(0.035, 0.05) * np.maximum(
            p_true - onset, 0.0
        )
        add(
            high,
            frac,
            0,
            1,
            distortion=distortion,
            size=size_tr * transforming,
            parent_tex=parent_tex,
        )
    if design.gold:
        add("Au", np.full(n, rng.uniform(0.04, 0.12)), 0.15, 60.0)
    if design.medium == "Ne":
        solid = (p_true >= PHASES["Ne"].solid_above).astype(float)
        add("Ne", solid * rng.uniform(0.6, 1.5), 0.7, 4.0)  # a few large grains: spotty
    elif design.medium == "NaCl":
        add("NaCl", np.full(n, rng.uniform(0.3, 0.7)), 0.3, 25.0)

    # --- Bragg signal, curve by curve
    signal = np.zeros((n, n_points))
    per_curve = [_component_lines(c, p_true, lam, start, end, cag) for c in components]
    rows = np.concatenate([pc[0] for pc in per_curve])
    pos = np.concatenate([pc[1] for pc in per_curve])
    area = np.concatenate([pc[2] for pc in per_curve])
    h_g = np.concatenate([pc[3] for pc in per_curve])
    h_l = np.concatenate([pc[4] for pc in per_curve])
    fwhm, eta = _tch(h_g, h_l)
    order = np.argsort(rows, kind="stable")
    rows, pos, area, fwhm, eta = rows[order], pos[order], area[order], fwhm[order], eta[order]
    bounds = np.searchsorted(rows, np.arange(n + 1))
    for i in range(n):
        sl = slice(bounds[i], bounds[i + 1])
        _render(tth, pos[sl], area[sl], fwhm[sl], eta[sl], signal[i])

    peak_counts = float(np.exp(rng.uniform(math.log(2.0e3), math.log(4.0e4))))
    signal *= peak_counts / np.percentile(signal.max(axis=1), 90)

    # --- diamond spots: narrow, strong, at random 2θ, in a few frames
    for _ in range(int(rng.integers(2, 6))):
        first = int(rng.integers(0, n))
        frames = range(first, min(n, first + int(rng.integers(1, 4))))
        centre = rng.uniform(start + 0.2, end - 0.2)
        width = max(0.35 * math.sqrt(w), 1.3 * step)
        height = peak_counts * rng.uniform(0.8, 6.0)
        for i in frames:
            signal[i] += height * np.exp(-4.0 * _LN2 * ((tth - centre) / width) ** 2)

    # --- background: Chebyshev + amorphous hump + low-angle tail, drifting slowly
    xn = np.linspace(-1.0, 1.0, n_points)
    cheb = np.polynomial.chebyshev.chebvander(xn, 4)  # (n_points, 5)
    coef0 = np.array(
        [
            1.0,
            rng.uniform(-0.35, 0.15),
            rng.uniform(-0.1, 0.15),
            rng.uniform(-0.06, 0.06),
            rng.uniform(-0.03, 0.03),
        ]
    )
    drift = _ou(rng, n, 5, 1.0, 60.0) * np.array([0.05, 0.04, 0.02, 0.01, 0.005])
    coef = (
        coef0[None, :]
        + drift
        + np.outer(np.linspace(0, 1, n), [rng.uniform(-0.2, 0.2), 0, 0, 0, 0])
    )
    background = coef @ cheb.T
    hump_centre = rng.uniform(start + 1.0, start + 0.45 * (end - start))
    hump_width = rng.uniform(2.0, 6.0)
    hump = np.exp(-4.0 * _LN2 * ((tth - hump_centre) / hump_width) ** 2)
    hump_amp = np.full(n, rng.uniform(0.15, 0.5))
    if design.medium == "silicone oil":
        hump_amp += rng.uniform(0.4, 0.9)
    if design.medium == "Ne":  # fluid neon scatters diffusely until it freezes
        hump_amp += rng.uniform(0.2, 0.5) * (p_true < PHASES["Ne"].solid_above)
    background += hump_amp[:, None] * hump[None, :]
    tail = np.exp(-(tth - start) / rng.uniform(0.4, 1.5))
    background += rng.uniform(0.0, 1.5) * tail[None, :]
    background = np.maximum(background, 0.05)
    background *= peak_counts * rng.uniform(0.04, 0.25)

    # --- beam and detector: ring-current decay with refills, or top-up; slow gain drift
    t = np.arange(n)
    if design.beam == "decay":
        period = int(rng.integers(25, 60))
        beam = np.exp(-((t + int(rng.integers(0, period))) % period) / period * 0.25)
    else:
        beam = 1.0 + 0.003 * rng.standard_normal(n)
    beam *= 1.0 + 0.04 * np.sin(2 * math.pi * t / rng.uniform(80, 200) + rng.uniform(0, 6.3))
    expected = (signal + background) * beam[:, None]
    curves = rng.poisson(expected).astype(np.float64)
    return IndependentSeries(
        name=design.name,
        material=design.material,
        two_theta=tth,
        wavelength=lam,
        pressure=p_rec,
        curves=curves,
        labels=labels,
        decompression=design.decompression,
    )


def independent_suite(seed: int = 0) -> list[IndependentSeries]:
    """~8 series: 5 Fe (one or two decompression), 3 FeO, 60–300 curves each, every class present in each series."""
    return [_simulate(design, seed, i) for i, design in enumerate(SERIES_DESIGN)]


# --- writing, as other programs write these files ---------------------------------------------
def _fortran_e(values: np.ndarray) -> list[str]:
    """Format like Fortran's E15.7 (Fit2D): 0.1234567E+03."""
    out = []
    for v in np.asarray(values, dtype=np.float64).tolist():
        if v == 0.0:
            out.append("  0.0000000E+00")
            continue
        e = math.floor(math.log10(abs(v))) + 1
        m = round(v / 10.0**e, 7)
        if abs(m) >= 1.0:
            m, e = m / 10.0, e + 1
        out.append(f"{m:11.7f}E{e:+03d}")
    return out


def _pyfai_header(series: IndependentSeries, frame: str) -> str:
    lam_m = series.wavelength * 1e-10
    return (
        "# == pyFAI calibration ==\n"
        "# Distance Sample to Detector: 0.2013 m\n"
        "# PONI: 7.012e-02, 7.431e-02 m\n"
        "# Rotations: 0.001231 -0.002750 0.000000 rad\n"
        "#\n"
        "# == Fit2d calibration ==\n"
        "# Distance Sample-beamCenter: 201.301 mm\n"
        "# Center: x=432.023, y=407.667 pix\n"
        "# Tilt: 0.173 deg  TiltPlanRot: -114.114 deg\n"
        "#\n"
        "# Detector Pilatus1M\t Spline= None\t PixelSize= 1.720e-04, 1.720e-04 m\n"
        f"# Wavelength: {lam_m:e} m\n"
        "# Mask applied: /data/mask.edf\n"
        "# Dark current applied: False\n"
        "# Flat field applied: False\n"
        "# Polarization factor: 0.99\n"
        "# Normalization factor: 1.0\n"
        f"# --> /data/{frame}.tif\n"
        "#       2th_deg             I \n"
    )


def _write_text(path: pathlib.Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="\n")


def write_suite(suite: Sequence[IndependentSeries], folder) -> dict[str, pathlib.Path]:
    """Write each series to disk in a format napari_xrdphase.io.load_stack reads, as OTHER software would write it; return {name: path}.

    Formats (by ``SERIES_DESIGN``): pyFAI/Dioptas ``.xy`` folders (``# Wavelength: … m``
    header, ``2th_deg`` column names, unpadded ``f_1 … f_N``) with ``metadata.csv``; Fit2D
    ``.chi`` folders (Fortran E15.7 numbers, zero-padded names, tab-separated metadata);
    a GSAS-style ``.xye`` folder with plain-text title lines and a semicolon CSV; a headerless
    ``.dat`` folder; a NeXus file as a beamline pipeline writes it (no ``default`` attributes,
    ``tth`` axis in ``deg``, wavelength in nm); a compressed ``.npz``; an HDF5 file stored
    points × curves as MATLAB writes it.
    """
    root = pathlib.Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    designs = {d.name: d for d in SERIES_DESIGN}
    out: dict[str, pathlib.Path] = {}
    for s in suite:
        fmt = designs[s.name].fmt if s.name in designs else "npz"
        stem = f"{s.name}_{s.material}_{'decompression' if s.decompression else 'compression'}"
        writer = _WRITERS[fmt]
        out[s.name] = writer(s, root, stem)
    return out


def _folder(root: pathlib.Path, stem: str) -> pathlib.Path:
    path = root / stem
    path.mkdir(parents=True, exist_ok=False)
    return path


def _write_pyfai_xy(s: IndependentSeries, root: pathlib.Path, stem: str) -> pathlib.Path:
    path = _folder(root, stem)
    template = "".join(f"{x:14.6e}  %14.6e\n" for x in s.two_theta.tolist())
    names = []
    for i, curve in enumerate(s.curves, start=1):
        name = f"f_{i}.xy"
        names.append(name)
        _write_text(path / name, _pyfai_header(s, f"f_{i:05d}") + template % tuple(curve.tolist()))
    with open(path / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "pressure_GPa", "exposure_s", "gauge"])
        for name, p in zip(names, s.pressure.tolist(), strict=True):
            w.writerow([name, f"{p:.2f}", "10", "Au" if p > 0 else "ambient"])
    return path


def _write_pyfai_xy_comment(s: IndependentSeries, root: pathlib.Path, stem: str) -> pathlib.Path:
    path = _folder(root, stem)
    template = "".join(f"{x:14.6e}  %14.6e\n" for x in s.two_theta.tolist())
    names = []
    for i, curve in enumerate(s.curves, start=1):
        name = f"feo-run6-{i}.xy"
        names.append(name)
        _write_text(
            path / name, _pyfai_header(s, f"feo6_{i:04d}") + template % tuple(curve.tolist())
        )
    comments = {0: "start, gas membrane", len(names) // 2: "membrane +5 bar, 2 min wait"}
    with open(path / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "comment", "pressure (GPa)", "temperature (K)"])
        for i, (name, p) in enumerate(zip(names, s.pressure.tolist(), strict=True)):
            w.writerow([name, comments.get(i, ""), f"{p:.2f}", "298"])
    return path


def _write_fit2d_chi(s: IndependentSeries, root: pathlib.Path, stem: str) -> pathlib.Path:
    path = _folder(root, stem)
    xs = _fortran_e(s.two_theta)
    names = []
    for i, curve in enumerate(s.curves, start=1):
        name = f"fe_run2_{i:05d}.chi"
        names.append(name)
        ys = _fortran_e(curve)
        body = "".join(f"{x} {y}\n" for x, y in zip(xs, ys, strict=True))
        header = (
            f"{name[:-4]}.tif: Azimuthal integration\n2-Theta Angle (Degrees)\nIntensity\n"
            f"{s.two_theta.size:>10d}\n"
        )
        _write_text(path / name, header + body)
    with open(path / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["file", "pressure (GPa)", "ring current (mA)"])
        for name, p in zip(names, s.pressure.tolist(), strict=True):
            w.writerow([name, f"{p:.2f}", "99.8"])
    return path


def _write_gsas_xye(s: IndependentSeries, root: pathlib.Path, stem: str) -> pathlib.Path:
    path = _folder(root, stem)
    names = []
    for i, curve in enumerate(s.curves, start=1):
        name = f"decomp_{i}.xye"
        names.append(name)
        esd = np.sqrt(np.maximum(curve, 1.0))
        rows = np.column_stack([s.two_theta, curve, esd]).ravel().tolist()
        body = ("%.5f %.1f %.3f\n" * s.two_theta.size) % tuple(rows)
        header = (
            f"Fe decompression, frame {i} (exported from GSAS-II)\n"
            f"Wavelength = {s.wavelength:.4f} Angstrom\n"
            "TwoTheta Intensity ESD\n"
        )
        _write_text(path / name, header + body)
    with open(path / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(["file", "P (GPa)", "T (K)"])
        for name, p in zip(names, s.pressure.tolist(), strict=True):
            w.writerow([name, f"{p:.2f}", "300"])
    return path


def _write_plain_dat(s: IndependentSeries, root: pathlib.Path, stem: str) -> pathlib.Path:
    path = _folder(root, stem)
    template = "".join(f"{x:.6f}\t%.0f\n" for x in s.two_theta.tolist())
    names = []
    for i, curve in enumerate(s.curves, start=1):
        name = f"p{i}.dat"
        names.append(name)
        _write_text(path / name, template % tuple(curve.tolist()))
    with open(path / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["file", "pressure_gpa"])
        for name, p in zip(names, s.pressure.tolist(), strict=True):
            w.writerow([name, f"{p:.2f}"])
    return path


def _write_nexus(s: IndependentSeries, root: pathlib.Path, stem: str) -> pathlib.Path:
    import h5py

    path = root / f"{stem}.nxs"
    with h5py.File(path, "w") as h5:
        entry = h5.create_group("entry1")
        entry.attrs["NX_class"] = "NXentry"
        entry.create_dataset("title", data=f"{s.material} unloading, run {s.name}")
        beam = entry.create_group("instrument/beam")
        entry["instrument"].attrs["NX_class"] = "NXinstrument"
        beam.attrs["NX_class"] = "NXbeam"
        wl = beam.create_dataset("incident_wavelength", data=s.wavelength / 10.0)
        wl.attrs["units"] = "nm"
        data = entry.create_group("integrated")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "I"
        data.attrs["axes"] = np.array(["pressure", "tth"], dtype=h5py.string_dtype())
        data.attrs["pressure_indices"] = np.int32(0)
        data.attrs["tth_indices"] = np.int32(1)
        signal = data.create_dataset("I", data=s.curves.astype(np.float32), compression="gzip")
        signal.attrs["units"] = "counts"
        axis = data.create_dataset("tth", data=s.two_theta)
        axis.attrs["units"] = "deg"
        pressure = data.create_dataset("pressure", data=s.pressure)
        pressure.attrs["units"] = "GPa"
        pressure.attrs["long_name"] = "pressure from NaCl B1 EOS"
    return path


def _write_npz(s: IndependentSeries, root: pathlib.Path, stem: str) -> pathlib.Path:
    path = root / f"{stem}.npz"
    np.savez_compressed(
        path,
        intensity=s.curves,
        two_theta=s.two_theta,
        pressure=s.pressure,
        wavelength=np.float64(s.wavelength),
        names=np.array([f"{s.name.lower()}_{i:04d}.cbf" for i in range(len(s.pressure))]),
    )
    return path


def _write_matlab_h5(s: IndependentSeries, root: pathlib.Path, stem: str) -> pathlib.Path:
    import h5py

    path = root / f"{stem}.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("wavelength", data=s.wavelength).attrs["units"] = "angstrom"
        scan = h5.create_group("scan")
        scan.attrs["NX_class"] = "NXdata"
        scan.attrs["signal"] = "counts"
        # MATLAB stores column-major arrays: I(curves, points) lands as (points, curves)
        scan.attrs["axes"] = np.array(["two_theta", "pressure"], dtype=h5py.string_dtype())
        scan.create_dataset("counts", data=np.ascontiguousarray(s.curves.T))
        scan.create_dataset("two_theta", data=s.two_theta).attrs["units"] = "degree"
        scan.create_dataset("pressure", data=s.pressure).attrs["units"] = "GPa"
    return path


_WRITERS = {
    "pyfai-xy": _write_pyfai_xy,
    "pyfai-xy-comment": _write_pyfai_xy_comment,
    "fit2d-chi": _write_fit2d_chi,
    "gsas-xye": _write_gsas_xye,
    "plain-dat": _write_plain_dat,
    "nexus": _write_nexus,
    "npz": _write_npz,
    "matlab-h5": _write_matlab_h5,
}
