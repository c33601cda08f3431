"""Classification blind to known phases: the fitted lines of a marker or medium subtracted.

A pressure marker (Pt, Au, ...) or a solid pressure medium (Ne, NaCl, ...) adds lines to every
curve of a series, and they move with pressure. An encoder that reads them sees "something
changed" where the sample did not change phase. ``mask_phases`` removes them before the curves
reach the encoder. Each line of each named phase is placed from the phase's equation of state
at each curve's pressure. On up to 64 curves spread over the series every line is fitted freely
(``pressure._fit_lines``, pseudo-Voigt on a linear background): a phase with clean fits in at
least 30 % of the curves that should show it is found, and its lines' widths (a trend of
ln FWHM in pressure), Lorentzian share and offset from the prediction are measured from its
own fits — not from the sample's lines. Then in every curve each line of a found phase is
fitted again with that width and shape fixed and its centre held near the prediction, and the
fitted peak is subtracted over ± 15 FWHM: the background and the sample's lines, including one
that crosses the marker's, stay. Where a line cannot be fitted (its window leaves the axis) a
window of ± ``width`` FWHM is replaced by a straight line between its edges. A phase not found
(a series without the marker) is left alone, so masking a marker-free series changes nothing.
A medium is masked only above its freezing pressure; curves whose pressure is unknown (NaN)
stay as they are.

The masked stack records what was masked in ``metadata["ignored_phases"]``. A classifier fitted
with ``ignore_phases`` masks every stack it embeds the same way, when it is fitted and when it
predicts; an encoder pretrained with it records the mask in its config, and classifiers fitted
on it use that mask unless told otherwise. No Qt, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..stack import SpectraStack, StackError, convert_axis
from ._errors import PhaseError

# where a line cannot be fitted (its fit window leaves the axis, or the fit fails) a window of
# this many FWHM (the line's own) either side of its centre is cut instead: a Gaussian keeps
# nothing there, a Lorentzian 6 % of its height. Wider windows erase more of the sample's own
# lines where they pass a marker's.
DEFAULT_WIDTH_FWHM = 2.0
# each line is fitted on ± this many FWHM around its predicted centre (pressure.py uses 3 too)
FIT_HALF_WIDTH_FWHM = 3.0
# the fitted centre stays within this many FWHM of the prediction (plus the series' offset):
# the marker's place is known from the pressure; a sample line beside it must not pull the fit
CENTRE_TOLERANCE_FWHM = 0.3
# the fitted peak is subtracted over ± this many FWHM: a Lorentzian keeps 0.1 % of its height
# at 15 FWHM, so a strong line's tails go with it
SUBTRACT_FWHM = 15.0
# a phase counts as present in a series when at least this share of the curves that should
# show it have a clean fit of one of its lines; a phase not found is left alone
FOUND_SHARE = 0.3
# a line's fitted height may exceed its typical share of its phase's strongest line by this
# factor (grain statistics) before it is capped there
HEIGHT_RATIO_SLACK = 1.3
# a clean fit of a found phase lies within this many FWHM of the phase's typical offset
OFFSET_TOLERANCE_FWHM = 0.35
# curves spread over the series on which the lines' widths, shapes and offsets are measured
PROFILE_CURVES = 64
# lines weaker than this (strongest line of the phase = 100) are left alone
DEFAULT_MIN_INTENSITY = 1.0
# the background at each window edge is the mean of this many points just outside it
EDGE_POINTS = 5
# room-temperature freezing pressures (GPa) of pressure media: below, the medium is a fluid and
# gives no lines. Ne 4.7 GPa and Ar 1.3 GPa: Finger L. W., Hazen R. M., Zou G., Mao H. K.,
# Bell P. M. (1981) Appl. Phys. Lett. 39, 892–894 (structure and compression of crystalline Ar
# and Ne at room temperature); the simulator freezes Ne at the same 4.7 GPa.
FREEZING_GPA: dict[str, float] = {"Ne": 4.7, "Ar": 1.3}
# units of an external variable that is a pressure, and their factor to GPa
PRESSURE_UNITS = {"gpa": 1.0, "kbar": 0.1, "mpa": 1e-3}
METADATA_KEY = "ignored_phases"
# how the lines are removed, as files record it
METHOD = (
    "each line fitted (pseudo-Voigt, width and shape of the phase's own lines, centre at the "
    "equation of state's place) and subtracted; the window cut where a fit cannot run"
)
# (V/V0)^(1/3) covered when placing lines: 0.3 is far beyond 1 TPa for every marker
_X_MIN, _X_MAX = 0.3, 1.2
# curves masked per block: the window bookkeeping holds (block × points) arrays
_BLOCK = 2048


@dataclass(frozen=True)
class PhaseMask:
    """Which phases to remove from the curves and how: the settings a model or classifier records.

    ``phases``: built-in names or .jcpds paths; ``scales``: {phase: scale name} where a phase
    should not use its default scale; ``width``: half-width in FWHM of the window cut where a
    line cannot be fitted;
    ``min_intensity``: the weakest line masked (strongest = 100).
    """

    phases: tuple[str, ...]
    width: float = DEFAULT_WIDTH_FWHM
    scales: tuple[tuple[str, str], ...] = ()
    min_intensity: float = DEFAULT_MIN_INTENSITY

    def __post_init__(self) -> None:
        from . import get_phase

        if not self.phases:
            raise PhaseError("no phase to ignore was named")
        names = []
        for name in self.phases:
            phase = get_phase(name)  # an unknown name: PhaseError listing the known ones
            names.append(phase.name if phase.source == "built-in" else str(name))
        object.__setattr__(self, "phases", tuple(dict.fromkeys(names)))
        scales = dict(self.scales)
        for name, scale in scales.items():
            get_phase(name).scale(scale)  # an unknown scale: PhaseError listing the known ones
        object.__setattr__(self, "scales", tuple(sorted(scales.items())))
        if not (math.isfinite(self.width) and self.width > 0):
            raise PhaseError(f"the mask width must be a positive number of FWHM, got {self.width}")
        if not (math.isfinite(self.min_intensity) and 0 <= self.min_intensity <= 100):
            raise PhaseError(
                f"min_intensity must be in [0, 100] (strongest line 100), got {self.min_intensity}"
            )

    def as_dict(self) -> dict[str, Any]:
        """Return the settings as JSON-compatible values (stored in model and classifier files)."""
        return {
            "phases": list(self.phases),
            "method": METHOD,
            "width_fwhm": self.width,
            "scales": dict(self.scales),
            "min_intensity": self.min_intensity,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PhaseMask:
        """Return the mask ``as_dict`` describes."""
        return cls(
            tuple(values["phases"]),
            width=float(values.get("width_fwhm", DEFAULT_WIDTH_FWHM)),
            scales=tuple(dict(values.get("scales", {})).items()),
            min_intensity=float(values.get("min_intensity", DEFAULT_MIN_INTENSITY)),
        )

    def describe(self) -> str:
        """Return e.g. 'Pt, Ne (fitted lines subtracted; ± 2 FWHM cut where a fit fails)'."""
        scales = "".join(f", {p} scale {s}" for p, s in self.scales)
        return (
            f"{', '.join(self.phases)} (fitted lines subtracted; ± {self.width:g} FWHM cut where "
            f"a fit fails{scales})"
        )

    def apply(
        self, stack: SpectraStack, pressures: Sequence[float] | np.ndarray | None = None
    ) -> MaskedStack:
        """Return ``stack`` with these phases' fitted lines subtracted (``mask_phases``)."""
        return mask_phases(
            stack, self.phases, pressures=pressures, width=self.width,
            scales=dict(self.scales), min_intensity=self.min_intensity,
        )  # fmt: skip


@dataclass
class MaskedStack:
    """What ``mask_phases`` returns: the masked stack and what was done to it."""

    stack: SpectraStack
    mask: PhaseMask
    fwhm_points: float  # the series' FWHM (points): the first guess of the lines' widths
    n_masked: int  # curves with at least one line subtracted or cut
    n_unknown_pressure: int  # curves left as they were: their pressure is unknown
    lines: dict[str, int] = field(default_factory=dict)  # lines on the axis per phase (some curve)
    found: dict[str, bool] = field(default_factory=dict)  # per phase: found in the series
    n_subtracted: int = -1  # line fits subtracted (-1: an on-disk stack, masked as it is read)
    n_cut: int = -1  # windows cut where a fit failed (-1: on disk)

    def describe(self) -> str:
        """Return one line: what was ignored, on how many curves, and the curves left alone."""
        lines = ", ".join(
            f"{name} {n} lines" + ("" if self.found.get(name, True) else " (not found: left alone)")
            for name, n in self.lines.items()
        )
        text = (
            f"{self.stack.name}: ignoring {self.mask.describe()}: {lines} on the axis, "
            f"{self.n_masked} of {self.stack.n_curves} curves masked"
        )
        if self.n_subtracted >= 0:
            text += f" ({self.n_subtracted} line fits subtracted, {self.n_cut} windows cut)"
        if self.n_unknown_pressure:
            text += (
                f"; {self.n_unknown_pressure} curves left unmasked because their pressure is "
                "unknown"
            )
        return text


def curve_pressures(stack: SpectraStack) -> np.ndarray:
    """Return each curve's pressure in GPa: the external variable when it is a pressure, else NaN."""
    factor = PRESSURE_UNITS.get(stack.variable_unit.strip().lower())
    if factor is None:
        return np.full(stack.n_curves, np.nan)
    return np.asarray(stack.variable, dtype=np.float64) * factor


def estimate_fwhm_points(curves: np.ndarray, max_curves: int = 16) -> float:
    """Return the median FWHM, in points, of the most prominent peaks of up to ``max_curves`` curves."""
    from scipy.signal import find_peaks, peak_widths

    curves = np.asarray(curves, dtype=np.float64)
    rows = np.unique(np.linspace(0, curves.shape[0] - 1, min(max_curves, curves.shape[0])).round())
    widths: list[float] = []
    for row in rows.astype(int):
        y = curves[row]
        # noise from the point-to-point differences, robust to the peaks (MAD)
        noise = 1.4826 * np.median(np.abs(np.diff(y) - np.median(np.diff(y)))) / math.sqrt(2)
        peaks, props = find_peaks(y, prominence=max(8.0 * noise, 1e-12))
        if peaks.size == 0:
            continue
        top = peaks[np.argsort(props["prominences"])[::-1][:20]]
        widths.extend(peak_widths(y, top, rel_height=0.5)[0].tolist())
    if not widths:
        return max(2.0, 0.002 * curves.shape[1])
    return max(2.0, float(np.median(widths)))


def _compression(eos, pressures: np.ndarray) -> np.ndarray:
    """Return (V(P)/V0)^(1/3) per pressure, NaN where P is NaN (a dense grid inverted by interp)."""
    x = np.linspace(_X_MIN, _X_MAX, 4000)  # (V/V0)^(1/3), strong compression to tension
    p_grid = np.asarray(eos.pressure(x**3 * eos.v0), dtype=np.float64)  # decreasing in x
    keep = np.isfinite(p_grid)
    out = np.full(pressures.shape, np.nan)
    known = np.isfinite(pressures)
    out[known] = np.interp(pressures[known], p_grid[keep][::-1], x[keep][::-1])
    return out


def _check_axis(stack: SpectraStack) -> np.ndarray:
    """Return the axis in d (Å); a 2θ axis without a wavelength is refused."""
    if stack.axis_kind == "2theta" and not stack.wavelength:
        raise StackError(
            f"{stack.name}: its 2θ axis states no wavelength, so the lines of known phases "
            "cannot be placed on it; give the wavelength (--wavelength Å)"
        )
    with np.errstate(divide="ignore"):
        return convert_axis(
            stack.axis, stack.axis_kind, stack.axis_unit, "d", "A", stack.wavelength
        )


class _Lines:
    """The lines of a mask's phases on one stack's axis: their d at 0 GPa and how they shrink."""

    def __init__(self, stack: SpectraStack, mask: PhaseMask) -> None:
        from . import get_phase

        d_axis = _check_axis(stack)
        finite_d = d_axis[np.isfinite(d_axis) & (d_axis > 0)]
        self.d_low, self.d_high = float(finite_d.min()), float(finite_d.max())
        order = np.argsort(stack.axis)
        self.axis_sorted = stack.axis[order]
        self.index_sorted = np.arange(stack.n_points, dtype=np.float64)[order]
        self.kind, self.unit, self.wavelength = stack.axis_kind, stack.axis_unit, stack.wavelength
        scales = dict(mask.scales)
        self.phases = []  # (name, eos, d0 of its lines, freezing pressure or None)
        self.intensity: list[float] = []  # each line's tabulated relative intensity
        for name in mask.phases:
            phase = get_phase(name)
            scale = scales.get(name)
            builtin = phase.source == "built-in"
            kept = [
                r
                for r in phase.reflections(0.0, scale=scale, d_min=self.d_low / _X_MAX)
                if r.intensity >= mask.min_intensity
            ]
            lines = [r.d for r in kept]
            self.intensity.extend(r.intensity for r in kept)
            freezing = FREEZING_GPA.get(phase.name) if builtin else None
            label = phase.name if builtin else str(name)
            self.phases.append((label, phase.scale(scale), np.asarray(lines), freezing))
        self.phase_of = [label for label, _, d0, _ in self.phases for _ in d0]

    def centres(self, pressures: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        """Return each line's fractional point index (curves × lines, NaN: absent) and lines per phase."""
        columns, counts = [], {}
        for label, eos, d0, freezing in self.phases:
            shrink = _compression(eos, pressures)
            if freezing is not None:
                shrink = np.where(pressures >= freezing, shrink, np.nan)
            d = np.outer(shrink, d0)  # curves × lines, Å
            d = np.where((d >= self.d_low) & (d <= self.d_high), d, np.nan)
            with np.errstate(invalid="ignore", divide="ignore"):
                if self.kind == "2theta":
                    two_theta = np.degrees(2 * np.arcsin(np.clip(self.wavelength / (2 * d), 0, 1)))
                    position = convert_axis(two_theta, "2theta", "deg", "2theta", self.unit)
                else:
                    position = convert_axis(d, "d", "A", self.kind, self.unit)
            centre = np.interp(position, self.axis_sorted, self.index_sorted)
            centre[~np.isfinite(position)] = np.nan
            columns.append(centre)
            counts[label] = int(np.any(np.isfinite(centre), axis=0).sum())
        if not columns:
            return np.full((pressures.shape[0], 0), np.nan), counts
        return np.concatenate(columns, axis=1), counts


def _window_mask(centres: np.ndarray, half_width: float, n_points: int) -> np.ndarray:
    """Return (curves × points) True inside some line's window, runs closer than the edge merged."""
    rows, cols = np.nonzero(np.isfinite(centres))
    n = centres.shape[0]
    delta = np.zeros((n, n_points + 1), dtype=np.int32)
    if rows.size:
        c = centres[rows, cols]
        start = np.clip(np.ceil(c - half_width), 0, n_points).astype(np.int64)
        stop = np.clip(np.floor(c + half_width) + 1, 0, n_points).astype(np.int64)
        keep = stop > start
        np.add.at(delta, (rows[keep], start[keep]), 1)
        np.add.at(delta, (rows[keep], stop[keep]), -1)
    inside = np.cumsum(delta[:, :n_points], axis=1) > 0
    # windows closer than EDGE_POINTS merge, so no edge mean reads another window's line
    from scipy.ndimage import binary_closing

    if inside.any():
        structure = np.ones((1, 2 * EDGE_POINTS + 1), dtype=bool)
        closed = binary_closing(inside, structure=structure, border_value=0)
        inside |= closed
    return inside


def _fill_windows(curves: np.ndarray, inside: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Return ``curves`` with every run of ``inside`` points replaced by a line between its edges."""
    out = np.array(curves, dtype=np.float32, copy=True)
    if not inside.any():
        return out
    n, m = curves.shape
    idx = np.broadcast_to(np.arange(m), (n, m))
    left = np.maximum.accumulate(np.where(~inside, idx, -1), axis=1)  # last outside point before
    right = np.minimum.accumulate(np.where(~inside, idx, m)[:, ::-1], axis=1)[:, ::-1]
    rows, cols = np.nonzero(inside)
    lo, hi = left[rows, cols], right[rows, cols]
    y = curves.astype(np.float64)
    x = np.broadcast_to(np.asarray(axis, dtype=np.float64), (n, m))
    zero = np.zeros((n, 1))
    outside = ~inside
    sums_y = np.concatenate([zero, np.cumsum(np.where(outside, y, 0.0), axis=1)], axis=1)
    sums_x = np.concatenate([zero, np.cumsum(np.where(outside, x, 0.0), axis=1)], axis=1)
    counts = np.concatenate([zero, np.cumsum(outside, axis=1)], axis=1)

    def edge(first, last):
        """Mean position and intensity of the outside points in [first, last] of each row."""
        first, last = np.clip(first, 0, m - 1), np.clip(last, 0, m - 1) + 1
        k = counts[rows, last] - counts[rows, first]
        safe = np.maximum(k, 1)
        return (
            (sums_x[rows, last] - sums_x[rows, first]) / safe,
            (sums_y[rows, last] - sums_y[rows, first]) / safe,
            k,
        )

    x_lo, y_lo, k_lo = edge(lo - EDGE_POINTS + 1, lo)
    x_hi, y_hi, k_hi = edge(hi, hi + EDGE_POINTS - 1)
    has_lo, has_hi = (lo >= 0) & (k_lo > 0), (hi < m) & (k_hi > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(x_hi != x_lo, (x[rows, cols] - x_lo) / (x_hi - x_lo), 0.5)
    # a window that reaches the end of the axis takes the one edge it has
    value = np.where(
        has_lo & has_hi,
        y_lo + (y_hi - y_lo) * t,
        np.where(has_lo, y_lo, np.where(has_hi, y_hi, np.median(y, axis=1)[rows])),
    )
    out[rows, cols] = value.astype(np.float32)
    return out


@dataclass
class _Profiles:
    """What a series says about each line of the mask's phases (lines in ``_Lines.centres`` order).

    ``present``: the line's phase was found in the series; ``coef``: ln(FWHM in points) against
    pressure (slope, intercept); ``eta``: Lorentzian share; ``offset``: fitted minus predicted
    centre (points); ``order``: lines by decreasing fitted height (strongest subtracted first).
    """

    present: np.ndarray
    coef: np.ndarray
    eta: np.ndarray
    offset: np.ndarray
    order: np.ndarray
    found: dict[str, bool]
    # height relative to its phase's strongest line (median over curves where both are clean;
    # NaN: unknown) and that line's column: caps a fit that a sample line under it inflates
    ratio: np.ndarray = field(default_factory=lambda: np.empty(0))
    reference: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def widths(self, pressures: np.ndarray) -> np.ndarray:
        """Return the FWHM (points) of every line at every pressure (curves × lines)."""
        return np.exp(self.coef[:, 0][None, :] * pressures[:, None] + self.coef[:, 1][None, :])


def _clean_fits(curves: np.ndarray, centres: np.ndarray, fwhm: float):
    """Return free pseudo-Voigt fits of every line (pressure._fit_lines) and where they are clean.

    Clean: fitted, height over MIN_SIGNAL_TO_NOISE σ, centre within one FWHM of its predicted
    place, width between 0.4 and 3 times the series' FWHM, reduced χ² (counts) at most
    MAX_REDUCED_CHI2.
    """
    from ..pressure import MAX_REDUCED_CHI2, MIN_SIGNAL_TO_NOISE, _fit_lines

    x = np.arange(curves.shape[1], dtype=np.float64)
    half = max(math.ceil(FIT_HALF_WIDTH_FWHM * fwhm), 6)
    params, cov, ok, chi2 = _fit_lines(x, curves, np.nan_to_num(centres, nan=-1e9), half, fwhm)
    ok &= np.isfinite(centres)
    sig_h = np.sqrt(np.maximum(np.nan_to_num(cov[..., 0, 0]), 0.0))
    with np.errstate(invalid="ignore"):
        clean = (
            ok
            & (params[..., 0] > MIN_SIGNAL_TO_NOISE * np.maximum(sig_h, 1e-300))
            & (np.abs(params[..., 1] - centres) < fwhm)
            & (params[..., 2] > 0.4 * fwhm)
            & (params[..., 2] < 3.0 * fwhm)
            & (chi2 <= MAX_REDUCED_CHI2)
        )
    return params, clean


def _line_profiles(
    curves: np.ndarray,
    centres: np.ndarray,
    pressures: np.ndarray,
    fwhm: float,
    phase_of,
    intensity,
) -> _Profiles:
    """Return the lines' profiles measured on ``curves`` (a sample of the series' curves).

    A phase counts as found where at least FOUND_SHARE of the curves that should show it have a
    clean fit of one of its lines; a phase not found is left alone (nothing to subtract). Each
    line's width follows its own clean fits (a robust trend of ln FWHM in pressure) where it has
    3, else those of its phase pooled; η and the centre offset likewise.
    """
    from ..pressure import width_trend_coefficients

    n_lines = centres.shape[1]
    params, clean = _clean_fits(curves, centres, fwhm) if n_lines else (None, None)
    present = np.zeros(n_lines, dtype=bool)
    coef = np.full((n_lines, 2), np.nan)
    eta, offset, height = np.zeros(n_lines), np.zeros(n_lines), np.zeros(n_lines)
    ratio, reference = np.full(n_lines, np.nan), np.arange(n_lines)
    found: dict[str, bool] = {}
    for label in dict.fromkeys(phase_of):
        cols = np.flatnonzero(np.asarray(phase_of) == label)
        expected = np.isfinite(centres[:, cols]).any(axis=1)
        if clean[:, cols].any():
            # a phase in the beam sits at its predicted places with one offset (the axis
            # zero, the pressure's error); a sample line that happens to pass one does not
            shift = params[:, cols, 1] - centres[:, cols]
            typical = float(np.median(shift[clean[:, cols]]))
            clean[:, cols] &= np.abs(shift - typical) < OFFSET_TOLERANCE_FWHM * fwhm
        seen = clean[:, cols].any(axis=1) if cols.size else np.zeros(0, bool)
        found[label] = bool(expected.any() and seen[expected].mean() >= FOUND_SHARE)
        if not found[label]:
            continue
        sub = clean[:, cols]
        widths = params[..., 2][:, cols]
        pooled_rows = np.repeat(pressures, cols.size)
        pooled = width_trend_coefficients(widths.reshape(-1, 1), sub.reshape(-1, 1), pooled_rows)[0]
        own = width_trend_coefficients(widths, sub, pressures)
        for j, k in enumerate(cols):
            mine = sub[:, j]
            use = mine if mine.sum() >= 3 else sub
            values = params[:, k] if mine.sum() >= 3 else params[:, cols].reshape(-1, 6)
            take = use.reshape(-1)
            present[k] = True
            coef[k] = own[j] if mine.sum() >= 3 else pooled
            eta[k] = float(np.median(values[take, 3]))
            shift = values[:, 1] - (centres[:, k] if mine.sum() >= 3 else centres[:, cols].ravel())
            offset[k] = float(np.median(shift[take]))
            height[k] = float(np.median(params[mine, k, 0])) if mine.any() else 0.0
        strongest = cols[int(np.argmax(height[cols]))]
        for k in cols:
            reference[k] = strongest
            both = clean[:, k] & clean[:, strongest]
            if k != strongest and both.sum() >= 3:
                ratio[k] = float(np.median(params[both, k, 0] / params[both, strongest, 0]))
            elif k != strongest:  # never clean beside it: the structure factors' ratio
                ratio[k] = float(intensity[k]) / max(float(intensity[strongest]), 1e-12)
    return _Profiles(
        present, coef, eta, offset, np.argsort(-height, kind="stable"), found, ratio, reference
    )


def _subtract_lines(
    curves: np.ndarray,
    centres: np.ndarray,
    pressures: np.ndarray,
    profiles: _Profiles,
    cut_width: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the curves less the fitted lines, and per curve × line where a fit / a cut was used.

    Each line of a found phase is fitted (pressure._pseudo_voigt_fit) with its width and η
    fixed to the series' profile and its centre held within ± CENTRE_TOLERANCE FWHM of the
    prediction plus the series' offset; the fitted peak (never negative) is subtracted over
    ± SUBTRACT_FWHM FWHM, leaving the background and every other peak. The strongest lines go
    first, so a weaker line is fitted on what they left. Where a fit cannot run (its window
    leaves the axis) or fails, ± ``cut_width`` FWHM is replaced by the local background instead.
    """
    from ..pressure import _pseudo_voigt_fit, _windows, pseudo_voigt

    out = np.asarray(curves, dtype=np.float64).copy()
    n, m = out.shape
    subtracted = np.zeros(centres.shape, dtype=bool)
    cut = np.zeros(centres.shape, dtype=bool)
    if not profiles.present.any():
        return out.astype(np.float32), subtracted, cut
    x = np.arange(m, dtype=np.float64)
    widths = profiles.widths(pressures)
    rows_all = np.arange(n)
    fixed = np.array([False, False, True, True, False, False])
    heights = np.full(centres.shape, np.nan)  # fitted heights, for the cap of weaker lines
    for k in profiles.order:
        if not profiles.present[k]:
            continue
        centre = centres[:, k] + profiles.offset[k]
        rows = rows_all[np.isfinite(centre) & np.isfinite(widths[:, k])]
        if rows.size == 0:
            continue
        h = widths[rows, k]
        half = max(math.ceil(FIT_HALF_WIDTH_FWHM * float(np.max(h))), 6)
        xw, yw, inside = _windows(x, out[rows], centre[rows, None], half)
        xw, yw, inside = xw[:, 0], yw[:, 0], inside[:, 0]
        ok = np.zeros(rows.size, dtype=bool)
        params = np.full((rows.size, 6), np.nan)
        if inside.any():
            lo = (yw[inside, :3].mean(1) + yw[inside, -3:].mean(1)) / 2
            b1 = (yw[inside, -3:].mean(1) - yw[inside, :3].mean(1)) / (
                xw[inside, -1] - xw[inside, 0]
            )
            c = centre[rows][inside]
            at_c = yw[inside, half]
            p0 = np.stack([np.maximum(at_c - lo, 0.0), c, h[inside],
                           np.full(c.size, profiles.eta[k]), lo, b1], axis=1)  # fmt: skip
            tol = CENTRE_TOLERANCE_FWHM * h[inside]
            p, _, _ = _pseudo_voigt_fit(xw[inside], yw[inside], p0, fixed, (c - tol, c + tol))
            good = np.all(np.isfinite(p), axis=1)
            params[inside] = p
            ok[inside] = good
        ref = profiles.reference[k] if profiles.reference.size else k
        if ref != k and np.isfinite(profiles.ratio[k]):
            # grain statistics move a line's height by tens of %, not by factors: a fit far
            # above its share of the phase's strongest line holds a sample line too, and a
            # centre pushed to its bound means a neighbour pulls it: then the line's height is
            # its share of the strongest line's, at its predicted place
            share = profiles.ratio[k] * heights[rows, ref]
            known = np.isfinite(share)
            pulled = known & (np.abs(params[:, 1] - centre[rows]) >= 0.95 * CENTRE_TOLERANCE_FWHM
                              * widths[rows, k])  # fmt: skip
            params[pulled, 0] = share[pulled]
            params[pulled, 1] = centre[rows][pulled]
            capped = np.minimum(params[:, 0], HEIGHT_RATIO_SLACK * share)
            params[:, 0] = np.where(known, capped, params[:, 0])
        heights[rows[ok], k] = params[ok, 0]
        for i, row in enumerate(rows):
            if not ok[i]:
                continue
            a, x0, hh, e = params[i, :4]
            if a <= 0:
                continue
            reach = math.ceil(SUBTRACT_FWHM * hh)
            lo_i, hi_i = max(int(x0) - reach, 0), min(int(x0) + reach + 1, m)
            out[row, lo_i:hi_i] -= a * pseudo_voigt(x[lo_i:hi_i], x0, hh, e)
            subtracted[row, k] = True
        failed = rows[~ok]
        if failed.size:
            window = np.full((failed.size, 1), np.nan)
            window[:, 0] = centre[failed]
            inside_cut = _window_mask(window, cut_width * widths[failed, k : k + 1].max(), m)
            out[failed] = _fill_windows(out[failed], inside_cut, x)
            cut[failed, k] = True
    return out.astype(np.float32), subtracted, cut


class _MaskedRows:
    """The intensities of an on-disk stack, masked as rows are read (a lazy array for SpectraStack)."""

    def __init__(
        self, source: Any, lines: _Lines, pressures: np.ndarray, profiles: _Profiles, cut_width
    ):
        self._source, self._lines, self._pressures = source, lines, pressures
        self._profiles, self._cut_width = profiles, cut_width
        self.shape = tuple(int(n) for n in source.shape)
        self.dtype = np.dtype(np.float32)
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows):
        data = np.asarray(self._source[rows], dtype=np.float32)
        index = np.arange(self.shape[0])[rows]
        if data.ndim == 1:
            return self[np.atleast_1d(index)][0]
        p = self._pressures[index]
        centres, _ = self._lines.centres(p)
        return _subtract_blocks(data, centres, p, self._profiles, self._cut_width)[0]


def stack_fwhm_points(stack: SpectraStack, max_curves: int = 16) -> float:
    """Return ``estimate_fwhm_points`` of up to ``max_curves`` curves spread over the stack."""
    rows = np.unique(np.linspace(0, stack.n_curves - 1, min(max_curves, stack.n_curves)).round())
    return estimate_fwhm_points(stack.curves(rows.astype(np.int64)), max_curves)


def mask_phases(
    stack: SpectraStack,
    phases: Sequence[str] | PhaseMask,
    *,
    pressures: Sequence[float] | np.ndarray | None = None,
    width: float = DEFAULT_WIDTH_FWHM,
    scales: Mapping[str, str] | None = None,
    min_intensity: float = DEFAULT_MIN_INTENSITY,
    fwhm_points: float | None = None,
) -> MaskedStack:
    """Return the stack with the fitted lines of ``phases`` subtracted (module docstring).

    ``pressures`` (GPa, one per curve; NaN: unknown) default to ``curve_pressures(stack)``, the
    external variable when it is a pressure. ``width`` is the half-width, in the line's FWHM, of
    the window cut where a line cannot be fitted; ``fwhm_points`` (default: measured on the
    curves) is the first guess of the lines' widths. A 2θ axis needs the stack's
    wavelength; q and d axes need none. An in-memory stack gives an in-memory stack; an
    on-disk one stays on disk and is masked as its curves are read. The result's
    ``metadata["ignored_phases"]`` says what was masked.
    """
    mask = (
        phases
        if isinstance(phases, PhaseMask)
        else PhaseMask(
            tuple(phases), width=width, scales=tuple((scales or {}).items()),
            min_intensity=min_intensity,
        )
    )  # fmt: skip
    if pressures is None:
        p = curve_pressures(stack)
    else:
        p = np.asarray(pressures, dtype=np.float64).ravel()
        if p.shape[0] != stack.n_curves:
            raise StackError(f"{stack.name}: {p.shape[0]} pressures for {stack.n_curves} curves")
    lines = _Lines(stack, mask)
    if fwhm_points is None:
        fwhm_points = stack_fwhm_points(stack)
    cut_width = mask.width
    centres, counts = lines.centres(p)
    # the lines' profiles from up to PROFILE_CURVES curves spread over the series (all of a
    # short one): the same for an on-disk stack read in chunks as for one in memory
    sample = np.unique(
        np.linspace(0, stack.n_curves - 1, min(PROFILE_CURVES, stack.n_curves)).round()
    ).astype(np.int64)
    sample = sample[np.isfinite(p[sample])]
    if sample.size:
        sample_curves = np.asarray(stack.curves(sample), dtype=np.float64)
        profiles = _line_profiles(
            sample_curves,
            centres[sample],
            p[sample],
            float(fwhm_points),
            lines.phase_of,
            lines.intensity,
        )
    else:
        profiles = _line_profiles(
            np.zeros((0, stack.n_points)),
            centres[:0],
            p[:0],
            float(fwhm_points),
            lines.phase_of,
            lines.intensity,
        )
    if stack.is_lazy:
        masked = _MaskedRows(stack.intensities, lines, p, profiles, cut_width)
        n_masked = int(np.any(np.isfinite(centres[:, profiles.present]), axis=1).sum())
        n_subtracted = n_cut = -1
    else:
        masked, subtracted, cut = _subtract_blocks(stack.curves(), centres, p, profiles, cut_width)
        n_masked = int((subtracted | cut).any(axis=1).sum())
        n_subtracted, n_cut = int(subtracted.sum()), int(cut.sum())
    metadata = dict(stack.metadata)
    metadata[METADATA_KEY] = {
        **mask.as_dict(),
        "fwhm_points": float(fwhm_points),
        "found": profiles.found,
    }
    return MaskedStack(
        stack=stack.replace(intensities=masked, metadata=metadata),
        mask=mask,
        fwhm_points=float(fwhm_points),
        n_masked=n_masked,
        n_unknown_pressure=int((~np.isfinite(p)).sum()),
        lines=counts,
        found=profiles.found,
        n_subtracted=n_subtracted,
        n_cut=n_cut,
    )


def _subtract_blocks(curves, centres, pressures, profiles, cut_width):
    """Return ``_subtract_lines`` of a long series, block by block (bounded memory)."""
    parts = [
        _subtract_lines(
            curves[i : i + _BLOCK],
            centres[i : i + _BLOCK],
            pressures[i : i + _BLOCK],
            profiles,
            cut_width,
        )
        for i in range(0, curves.shape[0], _BLOCK)
    ]
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


def parse_phase_list(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Return the phase names of 'Pt,Ne' (or a list of names); empty for None or ''."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(s.strip() for s in items if s and s.strip())


def resolve_mask(
    ignore_phases: PhaseMask | str | Sequence[str] | None, encoder: Any = None
) -> PhaseMask | None:
    """Return the mask to use: ``ignore_phases`` as given, or (None) the one ``encoder`` records.

    A pretrained encoder records in ``config["ignored_phases"]`` what its training curves were
    masked with; an empty list or '' means no masking, whatever the encoder records.
    """
    if isinstance(ignore_phases, PhaseMask):
        return ignore_phases
    if ignore_phases is None:
        config = getattr(encoder, "config", None)
        recorded = config.get(METADATA_KEY) if isinstance(config, Mapping) else None
        return PhaseMask.from_dict(recorded) if recorded else None
    names = parse_phase_list(ignore_phases)
    return PhaseMask(names) if names else None


def masked_stacks(
    stacks: Sequence[SpectraStack],
    ignore_phases: PhaseMask | str | Sequence[str] | None,
    encoder: Any = None,
) -> tuple[list[SpectraStack], PhaseMask | None]:
    """Return the stacks without the lines of the mask ``resolve_mask`` picks, and that mask.

    None: no mask (the stacks as given). A series whose curves keep their lines because their
    pressure is unknown gets a warning (``unknown_pressure_note``).
    """
    import warnings

    mask = resolve_mask(ignore_phases, encoder)
    if mask is None:
        return list(stacks), None
    results = [mask.apply(stack) for stack in stacks]
    for note in filter(None, map(unknown_pressure_note, results)):
        warnings.warn(note, UserWarning, stacklevel=3)
    return [r.stack for r in results], mask


def unknown_pressure_note(result: MaskedStack) -> str:
    """Return a note when some curves of the series could not be masked, else ''."""
    n, stack = result.n_unknown_pressure, result.stack
    if not n:
        return ""
    why = (
        f"its external variable is {stack.variable_label}, not a pressure in GPa"
        if n == stack.n_curves
        else "their pressure is unknown (NaN)"
    )
    return (
        f"{stack.name}: {n} of {stack.n_curves} curves keep the lines of "
        f"{', '.join(result.mask.phases)}: {why}"
    )
