"""Pressure of each curve from the lines of a calibrant (pressure marker) in the curve itself.

For a series, ``fit_pressure(stack, "Pt")`` finds the calibrant's lines where its equation of
state puts them, fits each with a pseudo-Voigt on a linear background, drops lines that overlap
other peaks or fit badly, refines the cell from the fitted positions and inverts the equation
of state: a pressure and its standard error per curve, with the lines used. Curves where no
line is usable get NaN and a reason. No Qt, no napari; method and rules in docs/phases.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .stack import AXIS_UNITS, SpectraStack, convert_axis

P_MAX_GPA = 150.0  # the first curve's search runs over 0 … P_MAX_GPA
GRID_STEP_GPA = 0.1
# tracking: the cost of a jump between neighbouring curves, per 1 % change of the calibrant's
# d-spacings (≈ 10 GPa for Pt or Au near ambient), in units of one curve's full line evidence
TRACK_STEP_COST = 0.3
PEAK_PROMINENCE_NOISE = 8.0  # a peak counts for the tracking when it stands this many σ out
MIN_SIGNAL_TO_NOISE = 5.0  # fitted height over its standard error
WIDTH_TOLERANCE = 0.3  # a line's width may differ this much (relative) from its series median
OVERLAP_FWHM = 3.0  # another peak within this many FWHM of a line: the line is skipped
MAX_REDUCED_CHI2 = 4.0  # a line fit worse than this (Poisson noise) is skipped
OUTLIER_SIGMA = 4.0  # a line this far from the cell fit (in its σ) is dropped
# live mode: a new curve is fitted together with this many curves before it (their line
# widths judge its lines' widths; a window of the series rather than all of it keeps each
# arrival's cost fixed)
TRACK_CONTEXT = 16
_ITERATIONS = 15
ZERO_SHIFT_CURVES = (
    40  # the 2θ offset is measured on at most this many curves spread over the series
)
# structures whose a and c are refined apart where the lines allow it (else the fixed c/a)
HEXAGONAL = ("hcp", "JCPDS (hexagonal)")


class PressureError(ValueError):
    """A pressure fit that cannot run: no wavelength, unknown calibrant, no line in range."""


@dataclass
class PressureFit:
    """Fitted pressure per curve of one series (NaN where the fit failed, with a reason)."""

    name: str
    calibrant: str
    scale: str
    pressure: np.ndarray  # GPa
    sigma: np.ndarray  # GPa, one standard error
    lines_used: list[tuple[str, ...]]  # per curve, e.g. ("111", "200")
    reason: list[str]  # per curve, "" where the fit worked
    zero_shift: float = 0.0  # axis offset fitted for the whole series (2θ axes), in axis units
    zero_shift_sigma: float = 0.0  # its uncertainty (the spread of the curves' estimates)
    zero_shift_curves: int = 0  # curves it was fitted on (0: held, or not fitted)
    lattice: np.ndarray = field(default_factory=lambda: np.empty(0))  # a (Å) per curve
    lattice_c: np.ndarray = field(default_factory=lambda: np.empty(0))  # c (Å) per curve

    @property
    def failed(self) -> np.ndarray:
        """Return a bool mask of curves without a pressure."""
        return ~np.isfinite(self.pressure)

    def summary(self) -> str:
        """Return one line: the pressure range and how many curves failed."""
        ok = ~self.failed
        n = self.pressure.size
        if not ok.any():
            return f"{self.name}: {self.calibrant} ({self.scale}): no pressure in any of {n} curves"
        p = self.pressure[ok]
        return (
            f"{self.name}: {self.calibrant} ({self.scale}) {p.min():.2f}–{p.max():.2f} GPa, "
            f"median σ {np.median(self.sigma[ok]):.2f} GPa, "
            f"{int(self.failed.sum())} of {n} curves failed"
        )


@dataclass(frozen=True)
class _Lines:
    labels: tuple[str, ...]
    d0: np.ndarray  # d (Å) at V0 of the scale
    weight: np.ndarray  # relative intensity (strongest 1)
    hkl: np.ndarray  # (K, 3)


def _phase_and_scale(calibrant, scale):
    from .phases import CifError, JcpdsError, PhaseError, builtin_phase_names, get_phase

    try:
        phase = get_phase(calibrant)
    except (JcpdsError, CifError) as exc:  # a phase file that cannot be read: its file and line
        raise PressureError(str(exc)) from None
    except PhaseError:
        raise PressureError(
            f"unknown calibrant {str(calibrant)!r}; known: {', '.join(builtin_phase_names())} "
            "(or a .jcpds file)"
        ) from None
    try:
        eos = phase.scale(scale)
    except PhaseError as exc:
        raise PressureError(str(exc)) from None
    name = scale if scale is not None else phase.default_scale
    name = next(k for k in phase.scales if k.lower() == str(name).lower())
    return phase, eos, name


def _calibrant_lines(phase, eos, d_low: float) -> _Lines:
    lines = phase.reflections(0.0, scale=eos.name, d_min=d_low)
    lines = [r for r in lines if r.intensity >= 1.0]
    return _Lines(
        labels=tuple(
            "".join(str(i) for i in r.hkl) if min(r.hkl) >= 0 else r.label.strip("()")
            for r in lines
        ),
        d0=np.array([r.d for r in lines]),
        weight=np.array([r.intensity for r in lines]) / 100.0,
        hkl=np.array([r.hkl for r in lines], dtype=np.float64).reshape(-1, 3),
    )


def _axis_of(stack: SpectraStack) -> tuple[np.ndarray, str]:
    """Return the axis in its kind's first unit (deg, 1/Å, Å) and the kind; needs λ for 2θ."""
    kind = stack.axis_kind
    if kind == "2theta" and stack.wavelength is None:
        raise PressureError(
            f"{stack.name}: the pressure fit needs the X-ray wavelength for a 2θ axis; "
            "give --wavelength (Å) or a file that states it"
        )
    unit = AXIS_UNITS[kind][0]
    return convert_axis(stack.axis, kind, stack.axis_unit, kind, unit), kind


def _positions(d: np.ndarray, kind: str, wavelength: float | None) -> np.ndarray:
    """Return the axis position of d-spacings ``d`` (Å); NaN beyond the wavelength's reach."""
    if kind == "d":
        return d
    if kind == "q":
        return 2 * np.pi / d
    sin_t = wavelength / (2 * d)
    with np.errstate(invalid="ignore"):
        return np.degrees(2 * np.arcsin(np.where(sin_t <= 1, sin_t, np.nan)))


def _detrended(curves: np.ndarray, n_window: int) -> tuple[np.ndarray, np.ndarray]:
    """Return curves minus a smooth lower envelope (peaks about 1) and their noise σ per curve.

    The noise (σ per curve, in the same scale) is that of the smoothed curve, measured on the
    raw one: second differences of white noise have 6 σ², and the Gaussian smoothing (σ = 1
    point) keeps a factor (2√π)^(-1/2) of σ. Measured on the smoothed curve it would be far
    too small, and noise wiggles would count as peaks.
    """
    from scipy.ndimage import gaussian_filter1d, minimum_filter1d, uniform_filter1d

    smooth = gaussian_filter1d(curves, 1.0, axis=1)
    floor = uniform_filter1d(minimum_filter1d(smooth, n_window, axis=1), n_window, axis=1)
    y = smooth - floor
    top = np.percentile(y, 99.9, axis=1)
    top = np.where(top > 0, top, 1.0)
    raw_noise = np.median(np.abs(np.diff(curves, 2, axis=1)), axis=1) / 0.6745 / math.sqrt(6)
    return y / top[:, None], raw_noise / top / math.sqrt(2 * math.sqrt(math.pi))


def _peak_fwhm_points(y: np.ndarray, noise: np.ndarray) -> float:
    """Return the median FWHM (in points) of the clear peaks of a few curves."""
    from scipy.signal import find_peaks, peak_widths

    widths = []
    for i in np.unique(np.linspace(0, y.shape[0] - 1, min(y.shape[0], 5)).astype(int)):
        peaks, _ = find_peaks(y[i], prominence=max(PEAK_PROMINENCE_NOISE * noise[i], 0.02))
        if peaks.size:
            widths.append(peak_widths(y[i], peaks, rel_height=0.5)[0])
    found = np.concatenate(widths) if widths else np.empty(0)
    return float(np.median(found)) if found.size else 5.0


def _peak_nearness(y: np.ndarray, noise: np.ndarray, fwhm: float) -> np.ndarray:
    """Return per point (curves × points) 1 on a clear peak, 0.5 one FWHM away, 0 beyond.

    A clear peak is a local maximum standing PEAK_PROMINENCE_NOISE noise σ (at least 2 % of the
    tallest peak) above the lowest point within ± 3 FWHM.
    """
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    half = max(round(fwhm / 2), 1)
    top = maximum_filter1d(y, 2 * half + 1, axis=1)
    floor = minimum_filter1d(y, 2 * math.ceil(3 * fwhm) + 1, axis=1)
    threshold = np.maximum(PEAK_PROMINENCE_NOISE * noise, 0.02)[:, None]
    peak = (y >= top) & (y - floor > threshold)
    j = np.arange(y.shape[1], dtype=np.float64)
    before = np.maximum.accumulate(np.where(peak, j, -np.inf), axis=1)
    after = np.minimum.accumulate(np.where(peak, j, np.inf)[:, ::-1], axis=1)[:, ::-1]
    dist = np.minimum(j - before, after - j)
    tol = max(fwhm, 2.0)
    return np.where(dist <= tol, 1.0 - 0.5 * dist / tol, 0.0)


def _line_evidence(
    y: np.ndarray, noise: np.ndarray, index: np.ndarray, lines: _Lines
) -> np.ndarray:
    """Return, per curve and grid pressure, the share of the calibrant's lines that find a peak.

    Each line counts with √(relative intensity) (a weak line is often lost in the noise, so
    missing it says little); a line within 2 FWHM of a stronger one adds nothing (both would
    claim the same peak). ``index`` is the lines' fractional point index per grid pressure.
    """
    fwhm = _peak_fwhm_points(y, noise)
    near = _peak_nearness(y, noise, fwhm).astype(np.float32)
    weight = np.sqrt(lines.weight)
    centre = index[index.shape[0] // 2]  # the lines keep their order and nearly their spacing
    for k in np.argsort(-lines.weight):
        close = np.abs(centre - centre[k]) < 2 * fwhm
        close[k] = False
        if weight[k] > 0:
            weight[close & (lines.weight <= lines.weight[k])] = 0.0
    n = y.shape[1]
    valid = np.isfinite(index) & (index >= 0) & (index <= n - 1)
    i = np.rint(np.where(valid, index, 0.0)).astype(np.int64)
    w = (weight * valid).astype(np.float32)
    return (near[:, i] * w).sum(axis=2) / max(float(weight.sum()), 1e-12)


def _best_path(
    evidence: np.ndarray, coordinate: np.ndarray, cost: float, start: int | None = None
) -> np.ndarray:
    """Return the grid index per curve that maximises the summed evidence less the jump costs.

    Dynamic programming (Viterbi) over the series: a jump between neighbouring curves costs
    ``cost`` per unit of |Δ coordinate| (monotonic along the grid), so a pressure that holds
    over several curves is followed wherever it goes, and a curve without evidence keeps its
    neighbours' pressure. The L1 jump cost lets each step run in O(grid) with running minima.
    ``start``: the grid index of the curve before the first (a neighbour fitted earlier): the
    first curve's jump from it costs as any other.
    """
    n_curves = evidence.shape[0]
    # monotonic along the grid, so |c_g − c_h| = cost·|Δ coordinate|
    c = cost * np.abs(coordinate - coordinate[0])
    total = np.empty_like(evidence, dtype=np.float64)
    total[0] = -evidence[0] + (0.0 if start is None else np.abs(c - c[start]))
    for i in range(1, n_curves):
        prev = total[i - 1]
        ahead = np.minimum.accumulate(prev - c) + c  # from a grid point at or before
        behind = np.minimum.accumulate((prev + c)[::-1])[::-1] - c  # from one at or after
        total[i] = np.minimum(ahead, behind) - evidence[i]
    path = np.empty(n_curves, dtype=np.int64)
    path[-1] = int(np.argmin(total[-1]))
    for i in range(n_curves - 2, -1, -1):
        path[i] = int(np.argmin(total[i] + np.abs(c - c[path[i + 1]])))
    return path


def pseudo_voigt(x: np.ndarray, x0, h, eta) -> np.ndarray:
    """Return the pseudo-Voigt profile (peak 1) of centre ``x0``, FWHM ``h``, Lorentzian share ``eta``."""
    z = 4 * (x - x0) ** 2 / (h * h)
    return eta / (1 + z) + (1 - eta) * np.exp(-math.log(2.0) * z)


def _pseudo_voigt_fit(
    x: np.ndarray,
    y: np.ndarray,
    p0: np.ndarray,
    fixed: np.ndarray | None = None,
    x0_bounds: tuple[np.ndarray, np.ndarray] | None = None,
):
    """Batched Levenberg–Marquardt fit of height·pV(x0, H, η) + b0 + b1·t on windows (N × M).

    Returns the parameters (N × 6: A, x0, H, η, b0, b1), their covariance (N × 6 × 6, scaled by
    the residual variance) and the residual sum of squares. ``fixed`` (6 bools) keeps those
    parameters at ``p0``; ``x0_bounds`` (low, high per window) keeps the centre between them.
    """
    ln2 = math.log(2.0)
    xc = x.mean(axis=1, keepdims=True)
    t = x - xc
    p = p0.copy()
    lam = np.full(len(p), 1e-2)
    free = np.ones(6) if fixed is None else (~np.asarray(fixed, dtype=bool)).astype(np.float64)
    pinned = np.diag(1.0 - free)  # a fixed parameter's row of the normal equations: step 0

    def model(p):
        a, x0, h, eta, b0, b1 = (p[:, i : i + 1] for i in range(6))
        u = x - x0
        z = 4 * u * u / (h * h)
        g = np.exp(-ln2 * z)
        lo = 1 / (1 + z)
        shape = eta * lo + (1 - eta) * g
        f = a * shape + b0 + b1 * t
        dshape_dz = -eta * lo * lo - (1 - eta) * ln2 * g
        jac = np.stack(
            [
                shape,
                a * dshape_dz * (-8 * u / (h * h)),
                a * dshape_dz * (-2 * z / h),
                a * (lo - g),
                np.ones_like(x),
                t,
            ],
            axis=-1,
        )
        return f, jac * free

    f, jac = model(p)
    r = y - f
    cost = (r * r).sum(axis=1)
    for _ in range(_ITERATIONS):
        jt = jac.transpose(0, 2, 1)
        jtj = jt @ jac
        g = (jt @ r[..., None])[..., 0]
        diag = np.einsum("nii->ni", jtj)
        a = jtj + lam[:, None, None] * (np.eye(6) * np.maximum(diag, 1e-12)[:, :, None]) + pinned
        try:
            step = np.linalg.solve(a, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.zeros_like(p)
        trial = p + step
        trial[:, 2] = np.maximum(trial[:, 2], 1e-6)
        trial[:, 3] = np.clip(trial[:, 3], 0.0, 1.0)
        if x0_bounds is not None:
            trial[:, 1] = np.clip(trial[:, 1], x0_bounds[0], x0_bounds[1])
        f_t, jac_t = model(trial)
        r_t = y - f_t
        cost_t = (r_t * r_t).sum(axis=1)
        better = np.isfinite(cost_t) & (cost_t < cost)
        p = np.where(better[:, None], trial, p)
        jac = np.where(better[:, None, None], jac_t, jac)
        r = np.where(better[:, None], r_t, r)
        cost = np.where(better, cost_t, cost)
        lam = np.where(better, lam / 3, lam * 4)
        if np.all(np.abs(step[:, 1]) < 1e-4 * p[:, 2]):
            break
    jtj = jac.transpose(0, 2, 1) @ jac
    dof = max(x.shape[1] - int(free.sum()), 1)
    cov = np.linalg.pinv(jtj) * (cost / dof)[:, None, None]
    return p, cov, cost


def _volume_grid(eos):
    """Return (pressure, volume) on a dense grid for interpolation, P increasing."""
    v = eos.v0 * np.linspace(1.02, 0.35, 4000)
    p = eos.pressure(v)
    keep = np.concatenate([[True], np.diff(p) > 0])
    return p[keep], v[keep]


def fit_pressure(
    stack: SpectraStack,
    calibrant: str,
    scale: str | None = None,
    *,
    p_max: float = P_MAX_GPA,
    fit_zero_shift: bool = True,
    start: float | None = None,
    zero_shift: float | None = None,
    zero_shift_sigma: float = 0.0,
) -> PressureFit:
    """Return the pressure of each curve of ``stack`` from the lines of ``calibrant``.

    ``start`` (GPa): the pressure of the curve before the first, fitted earlier: the tracking
    starts from it (``PressureTrack``). ``zero_shift``: hold a 2θ axis's offset (degrees) at
    this value, of uncertainty ``zero_shift_sigma``, instead of fitting it to the series.
    """
    phase, eos, scale_name = _phase_and_scale(calibrant, scale)
    x_axis, kind = _axis_of(stack)
    wavelength = stack.wavelength
    flip = x_axis[-1] < x_axis[0]
    curves = np.asarray(stack.curves(), dtype=np.float64)
    if flip:
        x_axis, curves = x_axis[::-1], curves[:, ::-1]
    n_curves, n_points = curves.shape
    d_axis = convert_axis(x_axis, kind, AXIS_UNITS[kind][0], "d", "A", wavelength)
    d_low = float(np.nanmin(d_axis))
    p_grid, v_grid = _volume_grid(eos)
    in_range = p_grid <= p_max
    p_grid, v_grid = p_grid[in_range], v_grid[in_range]
    s_min = float(np.cbrt(v_grid[-1] / eos.v0))
    lines = _calibrant_lines(phase, eos, d_low * s_min * 0.999)
    # lines that enter the curves' range somewhere between 0 and p_max
    x_lo, x_hi = x_axis[0], x_axis[-1]
    reach = _positions(np.array([lines.d0 * s_min, lines.d0]), kind, wavelength)
    inside = np.any((reach > x_lo) & (reach < x_hi), axis=0)
    if not inside.any():
        span = f"{x_lo:.4g}–{x_hi:.4g} {AXIS_UNITS[kind][0]}"
        raise PressureError(
            f"{stack.name}: no line of {phase.name} falls inside the curves' range ({span}) "
            f"between 0 and {p_max:g} GPa"
        )
    lines = _Lines(
        tuple(lab for lab, keep in zip(lines.labels, inside, strict=True) if keep),
        lines.d0[inside],
        lines.weight[inside],
        lines.hkl[inside],
    )
    n_lines = lines.d0.size

    # --- tracking: where the lines are, curve by curve ------------------------------------------
    step = (x_hi - x_lo) / (n_points - 1)
    y, noise = _detrended(curves, max(int(0.02 * n_points), 15))
    s_grid = np.cbrt(v_grid / eos.v0)
    fine = np.arange(0.0, min(p_max, p_grid[-1]) + 1e-9, GRID_STEP_GPA)
    s_fine = np.interp(fine, p_grid, s_grid)
    pos_fine = _positions(lines.d0[None, :] * s_fine[:, None], kind, wavelength)
    index_fine = (pos_fine - x_lo) / step
    evidence = _line_evidence(y, noise, index_fine, lines)
    start_index = None
    if start is not None and math.isfinite(start):
        start_index = int(np.clip(round(start / GRID_STEP_GPA), 0, fine.size - 1))
    track = fine[_best_path(evidence, 100.0 * np.log(s_fine), TRACK_STEP_COST, start_index)]

    # --- local fits of every line of every curve ------------------------------------------------
    centre = _positions(lines.d0[None, :] * np.interp(track, p_grid, s_grid)[:, None], kind,
                        wavelength)  # fmt: skip
    fwhm0 = _first_width(x_axis, curves, centre, lines.weight, step)
    half = max(math.ceil(OVERLAP_FWHM * fwhm0 / step), 6)
    params, cov, ok_fit, reduced_chi2 = _fit_lines(x_axis, curves, centre, half, fwhm0)

    x0 = params[..., 1]
    sig_x0 = np.sqrt(np.maximum(cov[..., 1, 1], 0.0))
    height, sig_h = params[..., 0], np.sqrt(np.maximum(cov[..., 0, 0], 0.0))
    width = params[..., 2]
    reason = np.full((n_curves, n_lines), "", dtype=object)
    usable = ok_fit.copy()
    reason[~ok_fit] = "outside the curves"
    weak = usable & ~(height > MIN_SIGNAL_TO_NOISE * np.maximum(sig_h, 1e-300))
    reason[weak] = "too weak"
    usable &= ~weak
    off = usable & (np.abs(x0 - centre) > 2.0 * fwhm0)
    reason[off] = "far from its predicted place"
    usable &= ~off
    expected_w = _width_trend(width, usable, track)
    bad_w = usable & (np.abs(width / expected_w - 1.0) > WIDTH_TOLERANCE)
    reason[bad_w] = "width off (overlap?)"
    usable &= ~bad_w
    bad_chi = usable & (reduced_chi2 > MAX_REDUCED_CHI2)
    reason[bad_chi] = "poor fit (overlap?)"
    usable &= ~bad_chi
    line_w = np.where(np.isfinite(expected_w), expected_w, fwhm0)
    crowded = usable & _overlaps(x_axis, y, x0, line_w, height, curves)
    reason[crowded] = "another peak within 3 FWHM"
    usable &= ~crowded

    # --- cell from the positions, zero shift for the series ------------------------------------
    zero = sig_zero = 0.0
    zero_curves = 0
    hexagonal = phase.structure in HEXAGONAL
    cell0 = phase.cell(0.0, scale_name)
    if zero_shift is not None and kind == "2theta":
        zero, sig_zero = float(zero_shift), float(zero_shift_sigma)
    elif fit_zero_shift and kind == "2theta" and hexagonal:
        zero, sig_zero, zero_curves = _hexagonal_zero_shift(
            x0, sig_x0, usable, lines.hkl, cell0.a, cell0.c, wavelength
        )
    elif fit_zero_shift and kind == "2theta":
        zero, sig_zero, zero_curves = _series_zero_shift(x0, sig_x0, usable, lines.d0, wavelength)
    scale_s, sig_s, usable = _fit_scale(x0 - zero, sig_x0, usable, lines.d0, kind, wavelength)
    if sig_zero > 0:  # the offset's own uncertainty moves every line of a curve together
        shifted, _, _ = _fit_scale(x0 - zero - sig_zero, sig_x0, usable, lines.d0, kind, wavelength)
        sig_s = np.hypot(sig_s, shifted - scale_s)
    volume = eos.v0 * scale_s**3
    rel_sig_v = 3 * sig_s / scale_s
    scale_a = scale_c = scale_s
    if hexagonal:  # a and c apart where the lines tell them apart
        scale_a, scale_c, rel_hex = _fit_hexagonal(
            x0 - zero, sig_x0, usable, lines.hkl, cell0.a, cell0.c, kind, wavelength, scale_s
        )
        if sig_zero > 0:  # as above: the offset's uncertainty moves every line together
            moved_a, moved_c, _ = _fit_hexagonal(
                x0 - zero - sig_zero, sig_x0, usable, lines.hkl, cell0.a, cell0.c, kind,
                wavelength, scale_s,
            )  # fmt: skip
            rel_hex = np.hypot(rel_hex, np.log(moved_a**2 * moved_c / (scale_a**2 * scale_c)))
        apart = np.isfinite(rel_hex)
        volume = np.where(apart, eos.v0 * scale_a**2 * scale_c, volume)
        rel_sig_v = np.where(apart, rel_hex, rel_sig_v)
    pressure = np.interp(volume, v_grid[::-1], p_grid[::-1], left=np.nan, right=np.nan)
    dv = 1e-4 * eos.v0
    dp_dv = (eos.pressure(volume - dv) - eos.pressure(volume + dv)) / (2 * dv)
    sigma = np.abs(dp_dv) * volume * rel_sig_v
    lines_used, reasons = [], []
    for i in range(n_curves):
        used = tuple(lab for lab, u in zip(lines.labels, usable[i], strict=True) if u)
        lines_used.append(used)
        if used and np.isfinite(pressure[i]):
            reasons.append("")
        else:
            pressure[i] = sigma[i] = np.nan
            why = sorted({str(r) for r in reason[i] if r})
            reasons.append(f"no usable {phase.name} line" + (f" ({'; '.join(why)})" if why else ""))
    return PressureFit(
        name=stack.name,
        calibrant=phase.name,
        scale=scale_name,
        pressure=pressure,
        sigma=sigma,
        lines_used=lines_used,
        reason=reasons,
        zero_shift=float(zero),
        zero_shift_sigma=float(sig_zero),
        zero_shift_curves=zero_curves,
        lattice=np.where(np.isfinite(pressure), cell0.a * scale_a, np.nan),
        lattice_c=np.where(np.isfinite(pressure), cell0.c * scale_c, np.nan),
    )


def _width_trend(width: np.ndarray, usable: np.ndarray, pressure: np.ndarray) -> np.ndarray:
    """Return each line's expected FWHM per curve: a robust straight line of ln(width) in pressure.

    Lines broaden under pressure (strain, non-hydrostatic stress), so a line's width is judged
    against the trend of the series, not its median. Lines fitted in fewer than 3 curves, or
    all at one pressure, get their median.
    """
    coef = width_trend_coefficients(width, usable, pressure)
    return np.exp(coef[:, 0][None, :] * pressure[:, None] + coef[:, 1][None, :])


def width_trend_coefficients(
    width: np.ndarray, usable: np.ndarray, pressure: np.ndarray
) -> np.ndarray:
    """Return per line (lines × 2) the slope and intercept of ln(FWHM) against pressure.

    A robust straight line (refitted without widths more than WIDTH_TOLERANCE off it); a line
    fitted in fewer than 3 curves, or all at one pressure, gets slope 0 and its median; a line
    never fitted gets NaN.
    """
    n_lines = width.shape[1]
    out = np.full((n_lines, 2), np.nan)
    for k in range(n_lines):
        keep = usable[:, k] & (width[:, k] > 0)
        if not keep.any():
            continue
        log_w = np.log(np.where(width[:, k] > 0, width[:, k], np.nan))
        coef = np.array([0.0, float(np.median(log_w[keep]))])
        for _ in range(3):  # least squares, then again without the lines far off the trend
            if keep.sum() < 3 or np.ptp(pressure[keep]) <= 0:
                break
            coef = np.polyfit(pressure[keep], log_w[keep], 1)
            near = np.abs(np.exp(log_w - np.polyval(coef, pressure)) - 1.0) <= WIDTH_TOLERANCE
            if np.array_equal(near & usable[:, k], keep):
                break
            keep = near & usable[:, k]
        out[k] = coef
    return out


def _windows(x_axis, curves, centre, half):
    n_points = x_axis.size
    step = (x_axis[-1] - x_axis[0]) / (n_points - 1)
    idx0 = np.round((np.nan_to_num(centre, nan=-1e9) - x_axis[0]) / step).astype(np.int64)
    inside = (idx0 - half >= 0) & (idx0 + half < n_points) & np.isfinite(centre)
    offsets = np.arange(-half, half + 1)
    idx = np.clip(idx0[..., None] + offsets, 0, n_points - 1)
    rows = np.arange(curves.shape[0])[:, None, None]
    return x_axis[idx], curves[rows, idx], inside


def _initial(xw, yw, centre, fwhm):
    lo_y = np.minimum(yw[..., :3].mean(-1), yw[..., -3:].mean(-1))
    span = xw[..., -1] - xw[..., 0]
    b1 = (yw[..., -3:].mean(-1) - yw[..., :3].mean(-1)) / np.where(span != 0, span, 1.0)
    peak = np.argmax(yw, axis=-1)
    x_peak = np.take_along_axis(xw, peak[..., None], -1)[..., 0]
    a = yw.max(-1) - lo_y
    near = np.abs(x_peak - centre) < 1.5 * fwhm
    x0 = np.where(near, x_peak, centre)
    return np.stack([np.maximum(a, 1e-3), x0, np.full_like(a, fwhm), np.full_like(a, 0.5),
                     (yw[..., :3].mean(-1) + yw[..., -3:].mean(-1)) / 2, b1], axis=-1)  # fmt: skip


def _fit_lines(x_axis, curves, centre, half, fwhm):
    n_curves, n_lines = centre.shape
    xw, yw, inside = _windows(x_axis, curves, centre, half)
    p0 = _initial(xw, yw, centre, fwhm)
    flat = inside.ravel()
    params = np.full((n_curves * n_lines, 6), np.nan)
    cov = np.full((n_curves * n_lines, 6, 6), np.nan)
    chi2 = np.full(n_curves * n_lines, np.inf)
    if flat.any():
        m = xw.shape[-1]
        p, c, cost = _pseudo_voigt_fit(
            xw.reshape(-1, m)[flat], yw.reshape(-1, m)[flat], p0.reshape(-1, 6)[flat]
        )
        params[flat], cov[flat] = p, c
        # Poisson noise where the data are counts; else the residual itself is the noise
        model_level = np.maximum(yw.reshape(-1, m)[flat].mean(axis=1), 1.0)
        counts = bool(np.all(curves >= 0) and np.allclose(curves, np.round(curves)))
        chi2[flat] = cost / (m - 6) / model_level if counts else 1.0
    ok = flat & np.isfinite(params[:, 1]) & (params[:, 0] > 0)
    return (
        params.reshape(n_curves, n_lines, 6),
        cov.reshape(n_curves, n_lines, 6, 6),
        ok.reshape(n_curves, n_lines),
        chi2.reshape(n_curves, n_lines),
    )


def _first_width(x_axis, curves, centre, weight, step):
    """Return a typical FWHM of the calibrant's lines from a wide fit of the strongest ones."""
    k = int(np.argmax(np.where(np.isfinite(centre).any(0), weight, -1)))
    span = x_axis[-1] - x_axis[0]
    half = max(int(0.006 * span / step), 8)
    guess = 5 * step
    rows = np.linspace(0, curves.shape[0] - 1, min(curves.shape[0], 20)).astype(int)
    params, _, ok, _ = _fit_lines(x_axis, curves[rows], centre[rows, k : k + 1], half, guess)
    w = params[..., 0, 2][ok[:, 0]]
    w = w[(w > step) & (w < half * step)]
    return float(np.median(w)) if w.size else 8 * step


def _overlaps(x_axis, y, x0, fwhm, height, curves):
    """Return where another peak of the curve lies within OVERLAP_FWHM FWHM of a fitted line."""
    from scipy.signal import find_peaks

    out = np.zeros(x0.shape, dtype=bool)
    step = (x_axis[-1] - x_axis[0]) / (x_axis.size - 1)
    noise = np.median(np.abs(np.diff(y, 2, axis=1)), axis=1) / 0.6745 / math.sqrt(6)
    for i in range(y.shape[0]):
        peaks, props = find_peaks(y[i], prominence=max(8 * noise[i], 0.02))
        if peaks.size == 0:
            continue
        px = x_axis[peaks]
        dist = np.abs(px[None, :] - x0[i][:, None])  # lines × peaks
        near = (dist > 0.75 * fwhm[i][:, None]) & (dist < OVERLAP_FWHM * fwhm[i][:, None])
        line_top = np.interp(x0[i], x_axis, y[i])
        strong = props["prominences"][None, :] > 0.1 * np.maximum(line_top, 1e-9)[:, None]
        out[i] = np.any(near & strong, axis=1)
    del step, height, curves
    return out


def _predicted(scale_s, d0, kind, wavelength):
    return _positions(scale_s[:, None] * d0[None, :], kind, wavelength)


def _fit_scale(x0, sig_x0, usable, d0, kind, wavelength):
    """Weighted least squares of the isotropic cell scale per curve, dropping outlier lines."""
    usable = usable.copy()
    n = x0.shape[0]
    scale_s = np.ones(n)
    sig_s = np.full(n, np.nan)
    for _ in range(3):
        w = np.where(usable, 1.0 / np.maximum(sig_x0, 1e-12) ** 2, 0.0)
        x_obs = np.where(usable, x0, 0.0)
        for _ in range(6):  # Gauss–Newton in the scale
            pred = _predicted(scale_s, d0, kind, wavelength)
            deriv = (_predicted(scale_s * (1 + 1e-7), d0, kind, wavelength) - pred) / (
                1e-7 * scale_s[:, None]
            )
            pred, deriv = np.nan_to_num(pred), np.nan_to_num(deriv)
            num = (w * deriv * (x_obs - pred)).sum(1)
            den = (w * deriv * deriv).sum(1)
            scale_s = scale_s + np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        pred = np.nan_to_num(_predicted(scale_s, d0, kind, wavelength))
        resid = np.where(usable, (x0 - pred) / np.maximum(sig_x0, 1e-12), 0.0)
        n_used = usable.sum(1)
        chi2 = (resid**2).sum(1) / np.maximum(n_used - 1, 1)
        birge = np.where(n_used > 1, np.sqrt(np.maximum(chi2, 1.0)), 1.0)
        sig_s = np.where(den > 0, birge / np.sqrt(np.where(den > 0, den, 1)), np.nan)
        worst = np.argmax(np.abs(resid), axis=1)
        # position errors may be underestimated for the whole series: judge against its median
        typical = np.sqrt(np.median(chi2[n_used > 1])) if (n_used > 1).any() else 1.0
        limit = OUTLIER_SIGMA * max(1.0, float(typical))
        drop = (n_used >= 3) & (np.abs(resid[np.arange(n), worst]) > limit)
        if not drop.any():
            break
        usable[np.flatnonzero(drop), worst[drop]] = False
    return scale_s, sig_s, usable


def _fit_hexagonal(x0, sig_x0, usable, hkl, a0, c0, kind, wavelength, scale_s):
    """Return per curve the scales of a and c of a hexagonal cell and the relative σ of V.

    Weighted least squares (Gauss–Newton from the isotropic scale) of 1/d² = 4/3 (h² + hk + k²)
    / a² + l²/c², on curves with at least one usable line with l ≠ 0 and one with (h, k) ≠ 0
    (two lines at least); elsewhere both scales are the isotropic one (fixed c/a) and the σ
    is NaN. σ_V/V from the covariance of the two scales, scaled by the Birge ratio where > 1.
    """
    h, k, l_ = hkl[:, 0], hkl[:, 1], hkl[:, 2]
    inv_a = 4.0 / 3.0 * (h * h + h * k + k * k) / a0**2  # 1/d² from a at V0, per line
    inv_c = l_ * l_ / c0**2
    n = x0.shape[0]
    has_l = (usable & (l_ != 0)).any(axis=1)
    has_hk = (usable & ((h != 0) | (k != 0))).any(axis=1)
    rows = np.flatnonzero(has_l & has_hk & (usable.sum(axis=1) >= 2))
    sa, sc = scale_s.astype(np.float64).copy(), scale_s.astype(np.float64).copy()
    rel = np.full(n, np.nan)
    if rows.size == 0:
        return sa, sc, rel
    u = usable[rows]
    w = np.where(u, 1.0 / np.maximum(sig_x0[rows], 1e-12) ** 2, 0.0)
    x_obs = np.where(u, x0[rows], 0.0)

    def pred(a, c):
        d = 1.0 / np.sqrt(inv_a[None, :] / a[:, None] ** 2 + inv_c[None, :] / c[:, None] ** 2)
        return np.nan_to_num(_positions(d, kind, wavelength))

    a, c = sa[rows], sc[rows]
    for _ in range(8):
        p0 = pred(a, c)
        ja = (pred(a * (1 + 1e-7), c) - p0) / (1e-7 * a[:, None])
        jc = (pred(a, c * (1 + 1e-7)) - p0) / (1e-7 * c[:, None])
        r = np.where(u, x_obs - p0, 0.0)
        a11, a12, a22 = (w * ja * ja).sum(1), (w * ja * jc).sum(1), (w * jc * jc).sum(1)
        b1, b2 = (w * ja * r).sum(1), (w * jc * r).sum(1)
        det = a11 * a22 - a12 * a12
        ok = det > 1e-12 * np.maximum(a11 * a22, 1e-300)
        safe = np.where(ok, det, 1.0)
        a = a + np.where(ok, (a22 * b1 - a12 * b2) / safe, 0.0)
        c = c + np.where(ok, (a11 * b2 - a12 * b1) / safe, 0.0)
    r = np.where(u, (x_obs - pred(a, c)) * np.sqrt(w), 0.0)
    n_used = u.sum(1)
    birge = np.sqrt(np.maximum((r * r).sum(1) / np.maximum(n_used - 2, 1), 1.0))
    safe = np.where(ok, det, 1.0)
    var_a, var_c, cov = a22 / safe, a11 / safe, -a12 / safe
    rel_v = np.sqrt(np.maximum(4 * var_a / a**2 + var_c / c**2 + 4 * cov / (a * c), 0.0)) * birge
    good = ok & np.isfinite(rel_v) & (a > 0) & (c > 0)
    sa[rows[good]], sc[rows[good]], rel[rows[good]] = a[good], c[good], rel_v[good]
    return sa, sc, rel


def _hexagonal_zero_shift(x0, sig_x0, usable, hkl, a0, c0, wavelength):
    """Return the series' 2θ offset, its σ and its curves for a hexagonal cell: (a, c, offset) per curve.

    As ``_series_zero_shift``, with a and c free, so a c/a that differs from the ambient one is
    not taken for an offset; curves need ≥ 4 usable lines, one with l ≠ 0 and one with
    (h, k) ≠ 0.
    """
    h, k, l_ = hkl[:, 0], hkl[:, 1], hkl[:, 2]
    inv_a = 4.0 / 3.0 * (h * h + h * k + k * k) / a0**2
    inv_c = l_ * l_ / c0**2
    enough = (
        (usable.sum(1) >= 4) & (usable & (l_ != 0)).any(1) & (usable & ((h != 0) | (k != 0))).any(1)
    )
    rows, u, w, x_obs = _offset_fit_rows(enough, x0, sig_x0, usable)
    if rows.size == 0:
        return 0.0, 0.0, 0

    def pred(a, c):
        d = 1.0 / np.sqrt(inv_a[None, :] / a[:, None] ** 2 + inv_c[None, :] / c[:, None] ** 2)
        return np.nan_to_num(_positions(d, "2theta", wavelength))

    theta = np.stack([np.ones(rows.size), np.ones(rows.size), np.zeros(rows.size)], axis=1)
    normal = np.zeros((rows.size, 3, 3))
    for _ in range(10):  # Gauss–Newton in (a scale, c scale, offset), all rows at once
        a, c, z = theta.T
        p0 = pred(a, c)
        jac = np.stack(
            [
                (pred(a * (1 + 1e-7), c) - p0) / (1e-7 * a[:, None]),
                (pred(a, c * (1 + 1e-7)) - p0) / (1e-7 * c[:, None]),
                np.ones_like(p0),
            ],
            axis=-1,
        )
        r = np.where(u, x_obs - p0 - z[:, None], 0.0)
        normal = np.einsum("nk,nki,nkj->nij", w, jac, jac)
        rhs = np.einsum("nk,nki,nk->ni", w, jac, r)
        ok = np.linalg.cond(normal) < 1e12
        step = np.zeros_like(theta)
        step[ok] = np.linalg.solve(normal[ok], rhs[ok][..., None])[..., 0]
        theta = theta + step
    ok = np.linalg.cond(normal) < 1e12
    if not ok.any():
        return 0.0, 0.0, 0
    var_z = np.linalg.inv(normal[ok])[:, 2, 2]
    estimates, weights = theta[ok, 2], 1.0 / np.maximum(var_z, 1e-30)
    order = np.argsort(estimates)
    cum = np.cumsum(weights[order])
    zero = float(estimates[order][np.searchsorted(cum, cum[-1] / 2)])
    spread = 1.4826 * float(np.median(np.abs(estimates - zero)))
    return zero, spread, int(ok.sum())


def _offset_fit_rows(eligible, x0, sig_x0, usable):
    """The curves an offset fit reads (at most ``ZERO_SHIFT_CURVES`` of the eligible ones, evenly
    spaced), their usable lines, the lines' weights 1/σ² and observed positions (0 where unused)."""
    rows = np.flatnonzero(eligible)
    if rows.size > ZERO_SHIFT_CURVES:
        rows = rows[np.linspace(0, rows.size - 1, ZERO_SHIFT_CURVES).astype(int)]
    u = usable[rows]
    w = np.where(u, 1.0 / np.maximum(sig_x0[rows], 1e-12) ** 2, 0.0)
    return rows, u, w, np.where(u, x0[rows], 0.0)


def _series_zero_shift(x0, sig_x0, usable, d0, wavelength):
    """Return one 2θ offset for the series, its σ and the curves it came from (≥ 3 usable lines)."""
    rows, u, w, x_obs = _offset_fit_rows(usable.sum(1) >= 3, x0, sig_x0, usable)
    if rows.size == 0:
        return 0.0, 0.0, 0
    s, z = np.ones(rows.size), np.zeros(rows.size)
    a11 = a12 = a22 = np.zeros(rows.size)
    for _ in range(8):  # Gauss–Newton in (scale, offset), all rows at once
        pred = np.nan_to_num(_positions(s[:, None] * d0[None, :], "2theta", wavelength))
        moved = _positions(s[:, None] * (1 + 1e-7) * d0[None, :], "2theta", wavelength)
        deriv = (np.nan_to_num(moved) - pred) / (1e-7 * s[:, None])
        r = np.where(u, x_obs - pred - z[:, None], 0.0)
        a11, a12, a22 = (w * deriv * deriv).sum(1), (w * deriv).sum(1), w.sum(1)
        b1, b2 = (w * deriv * r).sum(1), (w * r).sum(1)
        det = a11 * a22 - a12 * a12
        ok = det > 1e-12 * np.maximum(a11 * a22, 1e-300)
        safe = np.where(ok, det, 1.0)
        s = s + np.where(ok, (a22 * b1 - a12 * b2) / safe, 0.0)
        z = z + np.where(ok, (a11 * b2 - a12 * b1) / safe, 0.0)
    det = a11 * a22 - a12 * a12
    ok = det > 1e-12 * np.maximum(a11 * a22, 1e-300)
    if not ok.any():
        return 0.0, 0.0, 0
    var_z = a11[ok] / det[ok]
    estimates, weights = z[ok], 1.0 / np.maximum(var_z, 1e-30)
    # a weighted median resists curves whose lines were disturbed
    order = np.argsort(estimates)
    cum = np.cumsum(weights[order])
    zero = float(estimates[order][np.searchsorted(cum, cum[-1] / 2)])
    # its uncertainty: the robust spread of the curves' estimates (not divided by √n: curves
    # share systematic errors, e.g. the same neighbouring sample lines)
    spread = 1.4826 * float(np.median(np.abs(estimates - zero)))
    return zero, spread, int(ok.sum())


def with_fitted_pressure(
    stack: SpectraStack, calibrant: str, scale: str | None = None
) -> SpectraStack:
    """Return a copy of ``stack`` whose variable is the fitted pressure (GPa).

    The series' own variable is kept in ``metadata["own_variable"]`` (name, unit, values) and
    the σ per curve in ``metadata["pressure_sigma_gpa"]``. A series with any curve whose fit
    failed is refused (``PressureError`` naming the curves): a made-up pressure would place
    boundaries, so such curves are left for the user to look at (``xrdphase pressure``).
    """
    return stack_with_pressure(stack, fit_pressure(stack, calibrant, scale))


def stack_with_pressure(stack: SpectraStack, fit: PressureFit) -> SpectraStack:
    """Return a copy of ``stack`` whose variable is ``fit``'s pressure (every curve must have one).

    The own variable goes to ``metadata["own_variable"]``, σ to ``metadata["pressure_sigma_gpa"]``;
    a fit with failed curves is refused (``PressureError`` naming them).
    """
    if fit.pressure.size != stack.n_curves:
        raise PressureError(f"{stack.name}: the pressure fit does not cover every curve")
    failed = np.flatnonzero(fit.failed)
    if failed.size:
        shown = ", ".join(f"{i} ({fit.reason[i]})" for i in failed[:3])
        more = f" and {failed.size - 3} more" if failed.size > 3 else ""
        raise PressureError(
            f"{stack.name}: {failed.size} of {stack.n_curves} curves have no pressure from "
            f"{fit.calibrant}: curve {shown}{more}; check them with `xrdphase pressure` and "
            "leave them out of the series"
        )
    metadata = dict(stack.metadata)
    if "pressure_calibrant" not in metadata:  # fitted again: the own variable stays the first
        metadata["own_variable"] = {
            "name": stack.variable_name,
            "unit": stack.variable_unit,
            "values": np.asarray(stack.variable, dtype=np.float64).tolist(),
        }
    metadata["pressure_calibrant"] = f"{fit.calibrant} ({fit.scale})"
    metadata["pressure_sigma_gpa"] = fit.sigma.tolist()
    metadata["pressure_lines_used"] = [" ".join(u) for u in fit.lines_used]
    return stack.replace(
        variable=fit.pressure.copy(),
        variable_name="pressure",
        variable_unit="GPa",
        metadata=metadata,
    )


class PressureTrack:
    """The pressure of a series' curves as they arrive (live mode), each batch continuing the track.

    ``begin(stack)`` fits the curves already there, as ``fit_pressure`` does, and keeps the
    series' 2θ offset. Each ``extend(curves)`` fits the new curves (on the series' axis)
    together with up to ``context`` curves before them, which give the lines' widths; the
    tracking starts from the pressure of the curve before those. The 2θ offset is held at the
    one measured on the most curves so far (a window measures it again while that is fewer
    than the window holds). Curves fitted earlier keep their pressure; a new curve whose fit
    fails gets NaN.
    """

    def __init__(self, calibrant: str, scale: str | None = None, context: int = TRACK_CONTEXT):
        _phase_and_scale(calibrant, scale)  # an unknown calibrant or scale: refused at once
        self.calibrant, self.scale = calibrant, scale
        self.context = max(int(context), 1)
        self.pressures = np.empty(0)
        self._template: SpectraStack | None = None
        self._recent = np.empty((0, 0), dtype=np.float32)
        self._zero = (0.0, 0.0, 0)  # the series' 2θ offset, its σ, the curves it rests on

    def begin(self, stack: SpectraStack) -> PressureFit:
        """Return the fit of every curve of ``stack``, the series the new curves will join."""
        fit = fit_pressure(stack, self.calibrant, self.scale)
        self._template = stack.subset(slice(0, 2))  # the axis, λ and name; not the curves
        self._zero = (fit.zero_shift, fit.zero_shift_sigma, fit.zero_shift_curves)
        self.pressures = fit.pressure.copy()
        curves = np.asarray(stack.curves(), dtype=np.float32)
        self._recent = curves[-self.context :].copy()
        return fit

    def extend(self, curves: np.ndarray) -> PressureFit:
        """Return the fit of new curves (curves × the series' points), continuing the track."""
        if self._template is None:
            raise PressureError("the pressure track has no series yet: call begin() first")
        new = np.asarray(curves, dtype=np.float32).reshape(-1, self._template.n_points)
        window = np.concatenate([self._recent, new])
        before = self.pressures[: self.pressures.size - self._recent.shape[0]]
        known = before[np.isfinite(before)]
        stack = self._template.replace(
            intensities=window,
            variable=np.arange(window.shape[0], dtype=np.float64),
            variable_name="index",
            variable_unit="",
            sources=[f"{self._template.name}[{i}]" for i in range(window.shape[0])],
        )
        start = float(known[-1]) if known.size else None
        fit = None
        if self._zero[2] < min(window.shape[0], ZERO_SHIFT_CURVES):
            # the offset so far rests on fewer curves than this window may hold: measure it here
            fit = fit_pressure(stack, self.calibrant, self.scale, start=start)
            if fit.zero_shift_curves > self._zero[2]:
                self._zero = (fit.zero_shift, fit.zero_shift_sigma, fit.zero_shift_curves)
            else:
                fit = None
        if fit is None:
            fit = fit_pressure(
                stack, self.calibrant, self.scale, start=start, zero_shift=self._zero[0],
                zero_shift_sigma=self._zero[1],
            )  # fmt: skip
        k = self._recent.shape[0]
        self.pressures = np.concatenate([self.pressures, fit.pressure[k:]])
        self._recent = window[-self.context :].copy()
        return PressureFit(
            name=self._template.name,
            calibrant=fit.calibrant,
            scale=fit.scale,
            pressure=fit.pressure[k:],
            sigma=fit.sigma[k:],
            lines_used=fit.lines_used[k:],
            reason=fit.reason[k:],
            zero_shift=fit.zero_shift,
            zero_shift_sigma=fit.zero_shift_sigma,
            lattice=fit.lattice[k:],
            lattice_c=fit.lattice_c[k:],
        )


def pressure_rows(fit: PressureFit) -> list[dict]:
    """Return the CSV rows of ``fit``: dataset, index, pressure_gpa, pressure_sigma_gpa, lines_used."""
    return [
        {
            "dataset": fit.name,
            "index": i,
            "pressure_gpa": "" if not np.isfinite(p) else f"{p:.4f}",
            "pressure_sigma_gpa": "" if not np.isfinite(s) else f"{s:.4f}",
            "lines_used": " ".join(used),
        }
        for i, (p, s, used) in enumerate(zip(fit.pressure, fit.sigma, fit.lines_used, strict=True))
    ]
