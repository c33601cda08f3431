"""Batched, seeded augmentations of diffraction curves (torch).

Every augmentation takes curves ``x`` of shape (..., L) (usually (B, L)) and returns a tensor of
the same shape, dtype and device; the random draws come from the ``generator`` argument (a
``torch.Generator``), so a pipeline is reproducible and never touches the global random state.
Draws are made on the generator's device and moved to the curves' device: pass a generator on
the curves' device (``torch.Generator(device=x.device)``) for speed on a GPU. Without a
generator a fresh, non-deterministically seeded one is used.

Smooth random curves (magnitude factors, angle-axis speeds, texture) are natural cubic splines
through random values at equally spaced knots, evaluated for the whole batch with one matrix
product. Resampling on a warped axis is linear interpolation by ``gather`` with edge padding.

The two augmentations of the paper are ``magnitude_warp`` then ``angle_warp``; the
physics-motivated ones (``d_stretch``, ``axis_shift``, ``add_sparse_peaks``, ``poisson_noise``,
``intensity_texture``) mimic differences between beamtimes and samples. Whether curves are
re-scaled to [0, 1] afterwards is the caller's choice (``minmax``, or ``"minmax"`` as the last
step of a pipeline).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

__all__ = [
    "AUGMENTATIONS",
    "PAPER_PIPELINE",
    "PHYSICS_PIPELINE",
    "Augmenter",
    "add_sparse_peaks",
    "angle_warp",
    "angle_warp_positions",
    "axis_shift",
    "d_stretch",
    "intensity_texture",
    "jitter",
    "magnitude_warp",
    "make_augmentation",
    "minmax",
    "poisson_noise",
    "resample",
    "scaling",
    "smooth_random_curves",
    "window_slice",
]

PAPER_PIPELINE = ("magnitude_warp", "angle_warp")

# What differs between beamtimes and samples without moving peaks relative to each other (the
# phase signature): a uniform d-spacing strain (compression, ±3 % ≈ 0–30 GPa for Fe, FeO), a
# small zero/window offset of the 2θ axis, calibrant / gasket / pressure-medium lines (half of
# the curves), texture changing nearby peak heights (half of the curves), slow background and
# absorption changes (a milder magnitude warp) and counting noise of a random exposure. The
# paper's angle warp is left out: it stretches parts of the axis differently and so changes the
# relative peak positions that tell the phases apart.
PHYSICS_PIPELINE: tuple = (
    ("d_stretch", {"max_strain": 0.03}),
    ("axis_shift", {"max_fraction": 0.03}),
    ("add_sparse_peaks", {"max_peaks": 3, "max_amplitude": 0.15, "p": 0.5}),
    ("intensity_texture", {"sigma": 0.3, "p": 0.5}),
    ("magnitude_warp", {"sigma": 0.2}),
    ("poisson_noise", {"min_counts": 200.0, "max_counts": 20000.0}),
    "minmax",
)

# lowest speed of the angle-axis re-mapping; keeps the mapping strictly increasing
_MIN_SPEED = 0.05


# --- helpers -------------------------------------------------------------------------------------
def _generator_for(x: torch.Tensor, generator: torch.Generator | None) -> torch.Generator:
    if generator is not None:
        return generator
    fresh = torch.Generator(device=x.device)
    fresh.seed()
    return fresh


def _randn(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    out = torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)
    return out.to(device=like.device, dtype=like.dtype)


def _rand(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    out = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float32)
    return out.to(device=like.device, dtype=like.dtype)


def _flat(x: torch.Tensor) -> torch.Tensor:
    """Return (B, L) working curves in float32 (or float64 when given)."""
    if x.dim() < 1 or x.shape[-1] < 2:
        raise ValueError(
            f"augmentations need curves of shape (..., L) with L ≥ 2, got {tuple(x.shape)}"
        )
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    return work.reshape(-1, x.shape[-1])


def _restore(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return out.reshape(x.shape).to(x.dtype)


@functools.lru_cache(maxsize=64)
def _spline_basis(n_knots: int, length: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """(length, n_knots) matrix mapping values at equally spaced knots to a natural cubic spline."""
    k = n_knots
    t = torch.linspace(0.0, float(k - 1), length, dtype=torch.float64)  # knot units: h = 1
    eye = torch.eye(k, dtype=torch.float64)
    # second derivatives of the spline at the knots, one column per basis value
    second = torch.zeros(k, k, dtype=torch.float64)
    if k > 2:
        # natural spline: M_0 = M_{k-1} = 0, M_{i-1} + 4 M_i + M_{i+1} = 6 (y_{i-1} - 2 y_i + y_{i+1})
        system = torch.zeros(k - 2, k - 2, dtype=torch.float64)
        idx = torch.arange(k - 2)
        system[idx, idx] = 4.0
        system[idx[:-1], idx[:-1] + 1] = 1.0
        system[idx[1:], idx[1:] - 1] = 1.0
        rhs = 6.0 * (eye[:-2] - 2.0 * eye[1:-1] + eye[2:])
        second[1:-1] = torch.linalg.solve(system, rhs)
    segment = torch.clamp(t.floor().long(), max=k - 2)
    u = (t - segment).unsqueeze(1)
    left, right = eye[segment], eye[segment + 1]
    m_left, m_right = second[segment], second[segment + 1]
    basis = (
        (1 - u) * left
        + u * right
        + (((1 - u) ** 3 - (1 - u)) * m_left + (u**3 - u) * m_right) / 6.0
    )
    return basis.to(device=device, dtype=dtype)


def smooth_random_curves(knot_values: torch.Tensor, length: int) -> torch.Tensor:
    """Return (B, length) natural cubic splines through (B, K) values at equally spaced knots."""
    k = knot_values.shape[-1]
    if k < 2:
        raise ValueError("a smooth curve needs at least 2 knot values")
    basis = _spline_basis(k, int(length), str(knot_values.device), knot_values.dtype)
    return knot_values @ basis.T


def resample(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Return (B, M) values of (B, L) curves at fractional ``positions`` (linear, edge-padded)."""
    length = x.shape[-1]
    pos = positions.to(x.dtype).clamp(0, length - 1)
    left = pos.floor().long().clamp(max=length - 2)
    weight = pos - left
    lo = torch.gather(x, -1, left)
    hi = torch.gather(x, -1, left + 1)
    return lo + weight * (hi - lo)


def minmax(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return curves scaled to [0, 1] each (constant curves become zeros)."""
    work = _flat(x)
    lo = work.amin(dim=-1, keepdim=True)
    span = work.amax(dim=-1, keepdim=True) - lo
    out = torch.where(span > 0, (work - lo) / span.clamp_min(torch.finfo(work.dtype).tiny), 0.0)
    return _restore(out, x)


# --- augmentations of the paper ------------------------------------------------------------------
def magnitude_warp(
    x: torch.Tensor,
    sigma: float = 0.3,
    knots: int = 4,
    generator: torch.Generator | None = None,
    min_factor: float = 0.1,
) -> torch.Tensor:
    """Return curves multiplied by smooth random factors (spline through ``knots`` + 2 values ~ N(1, σ)).

    Factors are kept at or above ``min_factor``: with σ = 0.3 about 1 % of the curves would
    otherwise get a factor near or below zero somewhere, which erases or inverts a peak and so
    changes the phase signature the encoder should be invariant to (the reference code did not clip).
    """
    g = _generator_for(x, generator)
    work = _flat(x)
    values = 1.0 + sigma * _randn((work.shape[0], knots + 2), g, work)
    factors = smooth_random_curves(values, work.shape[-1]).clamp_min(min_factor)
    return _restore(work * factors, x)


def angle_warp_positions(
    batch: int,
    length: int,
    sigma: float = 0.2,
    knots: int = 8,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Return (batch, length) strictly increasing source positions from 0 to length − 1."""
    like = torch.empty(0, device=device, dtype=dtype)
    g = _generator_for(like, generator)
    values = 1.0 + sigma * _randn((batch, knots + 2), g, like)
    speeds = smooth_random_curves(values, length).clamp_min(_MIN_SPEED)
    # trapezoidal integral of the speeds, starting at 0
    steps = 0.5 * (speeds[:, 1:] + speeds[:, :-1])
    positions = torch.cat([torch.zeros_like(speeds[:, :1]), torch.cumsum(steps, dim=-1)], dim=-1)
    return positions * ((length - 1) / positions[:, -1:])


def angle_warp(
    x: torch.Tensor, sigma: float = 0.2, knots: int = 8, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Return curves re-sampled on a smooth monotonic re-mapping of the angle axis.

    The local speed of the mapping is a spline through ``knots`` + 2 values ~ N(1, σ), kept
    positive; as the mapping is monotonic, peaks keep their order and number.
    """
    work = _flat(x)
    positions = angle_warp_positions(
        work.shape[0],
        work.shape[-1],
        sigma,
        knots,
        _generator_for(x, generator),
        work.device,
        work.dtype,
    )
    return _restore(resample(work, positions), x)


def window_slice(
    x: torch.Tensor, ratio: float = 0.8, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Return a random window of ``ratio`` · L points of each curve, stretched back to L points."""
    g = _generator_for(x, generator)
    work = _flat(x)
    length = work.shape[-1]
    window = max(2.0, min(float(length), ratio * length)) - 1.0
    starts = _rand((work.shape[0], 1), g, work) * (length - 1 - window)
    positions = starts + torch.linspace(0.0, window, length, device=work.device, dtype=work.dtype)
    return _restore(resample(work, positions), x)


def jitter(
    x: torch.Tensor, sigma: float = 0.1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Return curves plus Gaussian noise of standard deviation σ."""
    g = _generator_for(x, generator)
    work = _flat(x)
    return _restore(work + sigma * _randn(tuple(work.shape), g, work), x)


def scaling(
    x: torch.Tensor, sigma: float = 0.1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Return each curve multiplied by one random factor ~ N(1, σ)."""
    g = _generator_for(x, generator)
    work = _flat(x)
    return _restore(work * (1.0 + sigma * _randn((work.shape[0], 1), g, work)), x)


# --- physics-motivated augmentations -------------------------------------------------------------
def d_stretch(
    x: torch.Tensor, max_strain: float = 0.03, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Return curves stretched or compressed uniformly by a strain in ±``max_strain`` around a random point.

    Compression scales all d-spacings at once, which on a q or (small-angle) 2θ axis scales all
    peak positions; the origin is drawn inside the window because the true origin is off-screen
    and the rest of the shift is what ``axis_shift`` models. Points beyond the edges are padded.
    """
    g = _generator_for(x, generator)
    work = _flat(x)
    batch, length = work.shape
    strain = (2.0 * _rand((batch, 1), g, work) - 1.0) * max_strain
    origin = _rand((batch, 1), g, work) * (length - 1)
    grid = torch.arange(length, device=work.device, dtype=work.dtype)
    positions = origin + (grid - origin) / (1.0 + strain)
    return _restore(resample(work, positions), x)


def axis_shift(
    x: torch.Tensor, max_fraction: float = 0.05, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Return curves shifted along the axis by up to ±``max_fraction`` of their length (edge-padded)."""
    g = _generator_for(x, generator)
    work = _flat(x)
    batch, length = work.shape
    shift = (2.0 * _rand((batch, 1), g, work) - 1.0) * max_fraction * (length - 1)
    grid = torch.arange(length, device=work.device, dtype=work.dtype)
    return _restore(resample(work, grid - shift), x)


def add_sparse_peaks(
    x: torch.Tensor,
    max_peaks: int = 3,
    max_amplitude: float = 0.1,
    width_points: tuple[float, float] = (0.7, 2.5),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return curves with 0 to ``max_peaks`` narrow extra Gaussian lines at random positions.

    Like lines of a calibrant, gasket or pressure medium: amplitudes up to ``max_amplitude``
    times each curve's range, standard deviations in ``width_points`` (points of the curve).
    """
    g = _generator_for(x, generator)
    work = _flat(x)
    batch, length = work.shape
    if max_peaks < 1:
        return x.clone()
    shape = (batch, max_peaks)
    count = torch.floor(_rand((batch, 1), g, work) * (max_peaks + 1))
    present = torch.arange(max_peaks, device=work.device, dtype=work.dtype) < count
    centers = _rand(shape, g, work) * (length - 1)
    lo_w, hi_w = width_points
    widths = lo_w + (hi_w - lo_w) * _rand(shape, g, work)
    span = (work.amax(dim=-1, keepdim=True) - work.amin(dim=-1, keepdim=True)).clamp_min(1e-12)
    amplitudes = max_amplitude * (0.2 + 0.8 * _rand(shape, g, work)) * span * present
    grid = torch.arange(length, device=work.device, dtype=work.dtype)
    offsets = (grid.view(1, 1, -1) - centers.unsqueeze(-1)) / widths.unsqueeze(-1)
    lines = (amplitudes.unsqueeze(-1) * torch.exp(-0.5 * offsets**2)).sum(dim=1)
    return _restore(work + lines, x)


def poisson_noise(
    x: torch.Tensor,
    min_counts: float = 100.0,
    max_counts: float = 10000.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return curves with counting noise of a random exposure (peak counts log-uniform in the range).

    Each curve's range is mapped to 0 … counts, Poisson-sampled and mapped back, so short
    exposures are noisier; constant curves stay unchanged.
    """
    g = _generator_for(x, generator)
    work = _flat(x)
    lo = work.amin(dim=-1, keepdim=True)
    span = work.amax(dim=-1, keepdim=True) - lo
    u = _rand((work.shape[0], 1), g, work)
    counts = torch.exp(math.log(min_counts) + u * (math.log(max_counts) - math.log(min_counts)))
    rate = (work - lo) / span.clamp_min(1e-12) * counts
    sampled = torch.poisson(rate.to(g.device, torch.float32), generator=g).to(
        work.device, work.dtype
    )
    out = torch.where(span > 0, sampled / counts * span + lo, work)
    return _restore(out, x)


def intensity_texture(
    x: torch.Tensor, sigma: float = 0.3, knots: int = 32, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Return curves multiplied by a smooth log-normal modulation with a short correlation length.

    Mimics texture and preferred orientation, which change the relative heights of nearby peaks:
    log-factor = σ · spline through ``knots`` + 2 values ~ N(0, 1) (about L / (knots + 1) points
    between knots). Factors are always positive.
    """
    g = _generator_for(x, generator)
    work = _flat(x)
    values = _randn((work.shape[0], knots + 2), g, work)
    log_factors = sigma * smooth_random_curves(values, work.shape[-1]) - 0.5 * sigma**2
    return _restore(work * torch.exp(log_factors), x)


# --- pipelines -----------------------------------------------------------------------------------
AUGMENTATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "magnitude_warp": magnitude_warp,
    "angle_warp": angle_warp,
    "window_slice": window_slice,
    "jitter": jitter,
    "scaling": scaling,
    "d_stretch": d_stretch,
    "axis_shift": axis_shift,
    "add_sparse_peaks": add_sparse_peaks,
    "poisson_noise": poisson_noise,
    "intensity_texture": intensity_texture,
    "minmax": minmax,
}

Step = str | tuple[str, Mapping[str, Any]]


class Augmenter:
    """A named sequence of augmentations applied in order, each with optional parameters.

    A parameter ``p`` (0 … 1) applies that step to a random subset of the curves only.
    """

    def __init__(
        self, steps: Sequence[Step] = PAPER_PIPELINE, generator: torch.Generator | None = None
    ):
        self.steps: list[tuple[str, dict[str, Any]]] = []
        for step in steps:
            name, params = (step, {}) if isinstance(step, str) else (step[0], dict(step[1]))
            if name not in AUGMENTATIONS:
                known = ", ".join(AUGMENTATIONS)
                raise ValueError(f"unknown augmentation {name!r}; known: {known}")
            p = params.get("p", 1.0)
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"{name}: probability p must be within 0 … 1, got {p}")
            self.steps.append((name, params))
        self.generator = generator

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the steps in order."""
        return tuple(name for name, _ in self.steps)

    def describe(self) -> list[dict[str, Any]]:
        """Return the pipeline as JSON-friendly dicts (for configs and reports)."""
        return [{"name": name, **params} for name, params in self.steps]

    def __repr__(self) -> str:
        return f"Augmenter({self.describe()})"

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        g = _generator_for(x, generator if generator is not None else self.generator)
        for name, params in self.steps:
            kwargs = dict(params)
            p = float(kwargs.pop("p", 1.0))
            augmented = AUGMENTATIONS[name](x, generator=g, **kwargs)
            if p < 1.0:
                flat = x.reshape(-1, x.shape[-1])
                chosen = _rand((flat.shape[0], 1), g, flat.float()) < p
                augmented = torch.where(chosen, augmented.reshape(flat.shape), flat).reshape(
                    x.shape
                )
            x = augmented
        return x


def make_augmentation(names: Sequence[Step], generator: torch.Generator | None = None) -> Augmenter:
    """Return an ``Augmenter`` applying the named augmentations in order, e.g. ``PAPER_PIPELINE``."""
    return Augmenter(names, generator)
