"""Phases proposed without labels: change points along each series, matched across series.

``propose_phases(encoder, stacks)`` returns one ``SeriesSegments`` per series:

1. **Strain removed.** Within a phase, compression moves every line by the same factor in q:
   a shift along ln q. Each series' curves are brought back to a common lattice scale
   (``strain_aligned``): the ln q shift between every curve and its next ``ALIGN_LAGS`` (4)
   neighbours is measured by cross-correlation (background removed, sub-sample peak), the
   shifts of all curves are solved by least squares from those pairs, and each curve is moved
   back by its own shift. What is left along a series is what a uniform strain cannot do:
   lines appearing, vanishing, splitting or changing height.
2. **Features.** The encoder's embeddings of the aligned curves, standardised over all curves
   and reduced by PCA to ``N_COMPONENTS`` (10) components; each component is then divided by
   its noise level, estimated from the differences of consecutive curves (median absolute
   difference / (0.6745·√2), pooled over the series), so that curve-to-curve noise has unit
   variance in every component.
3. **Change points.** Along each series in acquisition order, ``ruptures.Pelt`` with a cost
   that lets every component drift linearly with the series' variable inside a segment
   (residual sum of squares of a straight-line fit, ``LinearDriftCost``; non-uniform strain,
   texture and background still move the embeddings a little inside a phase) and a BIC-like
   penalty ``pen = PENALTY_FACTOR · (2d + 1) · ln n`` (2d + 1 parameters per segment: a level
   and a slope per component and its start; n curves). A plain BIC (unit noise) would take a
   factor of 1; the within-phase variation left after alignment is slow and correlated from
   curve to curve, larger than the curve-to-curve noise the features are scaled by, so the
   factor is 30. Segments are at least ``MIN_SEGMENT`` (3) curves long.
4. **Common phases.** The segments' mean features are clustered across all series
   (average-linkage agglomerative clustering, scipy) with a distance threshold of
   ``MERGE_FACTOR`` (3) times the median within-segment spread (root-mean-square distance
   of a segment's curves to its straight-line fit, the same model as the cost): segments
   closer than that are the same provisional phase. Phases are named S1, S2, ... in order of their first
   curve (series in the given order).

Only numpy, scipy, scikit-learn and ruptures; the encoder needs torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ruptures.base import BaseCost

from .stack import SpectraStack, StackError

N_COMPONENTS = 10
PENALTY_FACTOR = 30.0
MIN_SEGMENT = 3
MERGE_FACTOR = 3.0
# strain alignment: shifts measured between each curve and its next ALIGN_LAGS neighbours, on
# ALIGN_POINTS points of ln q, at most ALIGN_MAX_STEP (in ln q) per curve apart
ALIGN_LAGS = 4
ALIGN_POINTS = 8192
ALIGN_MAX_STEP = 0.02
ALIGN_BLOCK = 256  # curves prepared at a time


@dataclass
class SeriesSegments:
    """One series cut into segments, each named after its provisional phase."""

    name: str
    labels: np.ndarray  # the phase (S1, S2, ...) of every curve
    breaks: list[int] = field(default_factory=list)  # first curve of each segment but the first

    def describe(self, stack: SpectraStack | None = None) -> list[str]:
        """Return the summary lines: the segments with their curves (and variable range)."""
        lines = [f"{self.name}:"]
        starts = [0, *self.breaks]
        stops = [*self.breaks, len(self.labels)]
        for start, stop in zip(starts, stops, strict=True):
            where = f"curves {start}–{stop - 1}"
            if stack is not None:
                values = np.asarray(stack.variable, dtype=float)[start:stop]
                if np.all(np.isfinite(values)) and values.size:
                    unit = f" {stack.variable_unit}".rstrip()
                    where += f", {stack.variable_name} {values.min():.3g}–{values.max():.3g}{unit}"
            lines.append(f"  {self.labels[start]}: {where}")
        if self.breaks:
            lines.append(
                "  proposed boundaries before curves " + ", ".join(str(b) for b in self.breaks)
            )
        else:
            lines.append("  no change found: one segment")
        return lines


def _log_q(stack: SpectraStack) -> np.ndarray:
    """Return ln q of the stack's axis up to a constant (no wavelength needed)."""
    x = np.asarray(stack.axis, dtype=np.float64)
    if stack.axis_kind == "2theta":
        half = np.radians(x) / 2 if stack.axis_unit.startswith("deg") else x / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(np.sin(half))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x) if stack.axis_kind == "q" else -np.log(x)


def _line_spectra(stack: SpectraStack, rows: range, grid: np.ndarray, order: np.ndarray):
    """Fourier transforms (padded to twice the grid) of curves ``rows`` on the ln q ``grid``.

    Each curve is interpolated onto the grid, its background (a rolling minimum over 2.5 % of
    the window, wider than any line) removed, lightly smoothed, and scaled to zero mean and
    unit norm, so that the correlation of two curves is at most 1.
    """
    from scipy.ndimage import gaussian_filter1d, minimum_filter1d, uniform_filter1d

    u = _log_q(stack)[order]
    data = stack.curves(np.arange(rows.start, rows.stop))[:, order].astype(np.float64)
    out = np.stack([np.interp(grid, u, row) for row in data])
    width = max(grid.size // 40, 3)
    out -= uniform_filter1d(minimum_filter1d(out, width, axis=1), width, axis=1)
    out = gaussian_filter1d(out, 1.5, axis=1)
    out -= out.mean(axis=1, keepdims=True)
    out /= np.linalg.norm(out, axis=1, keepdims=True) + 1e-12
    return np.fft.rfft(out, 2 * grid.size, axis=1)


def _lag(first: np.ndarray, second: np.ndarray, max_lag: int) -> float:
    """Return the sub-sample lag of ``second`` against ``first`` (their spectra) at best match."""
    cc = np.fft.irfft(np.conj(first) * second)
    size = cc.size
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    best = int(lags[int(np.argmax(cc[lags]))])
    y0, y1, y2 = (cc[(best + k) % size] for k in (-1, 0, 1))
    curvature = y0 - 2 * y1 + y2
    return best + (0.5 * (y0 - y2) / curvature if curvature < 0 else 0.0)


def series_strains(stack: SpectraStack) -> np.ndarray:
    """Return each curve's ln q shift against the series (mean 0): its uniform strain.

    The shift between every curve and each of its next ``ALIGN_LAGS`` neighbours is measured
    by cross-correlation on ``ALIGN_POINTS`` points of ln q; the shifts of all curves are
    their least-squares solution (sparse; curves are prepared in blocks, so long series stay
    cheap in memory).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import lsqr

    u = _log_q(stack)
    finite = np.isfinite(u)
    if stack.n_curves < 2 or finite.sum() < 8:
        return np.zeros(stack.n_curves)
    order = np.argsort(np.where(finite, u, np.inf))[: int(finite.sum())]
    grid = np.linspace(u[order[0]], u[order[-1]], ALIGN_POINTS)
    step = grid[1] - grid[0]
    n = stack.n_curves
    max_lags = [min(int(np.ceil(ALIGN_MAX_STEP * lag / step)), ALIGN_POINTS - 1)
                for lag in range(ALIGN_LAGS + 1)]  # fmt: skip
    rows, cols, values, measured = [], [], [], []
    for start in range(0, n - 1, ALIGN_BLOCK):
        block = range(start, min(n, start + ALIGN_BLOCK + ALIGN_LAGS))
        spectra = _line_spectra(stack, block, grid, order)
        for i in range(start, min(n - 1, start + ALIGN_BLOCK)):
            for lag in range(1, min(ALIGN_LAGS, n - 1 - i) + 1):
                k = len(measured)
                rows += [k, k]
                cols += [i + lag, i]
                values += [1.0, -1.0]
                first, second = spectra[i - start], spectra[i + lag - start]
                measured.append(_lag(first, second, max_lags[lag]) * step)
    k = len(measured)  # the shifts sum to zero: the series' own mean lattice is the reference
    rows += [k] * n
    cols += list(range(n))
    values += [1.0] * n
    matrix = coo_matrix((values, (rows, cols)), shape=(k + 1, n)).tocsr()
    shifts = lsqr(matrix, np.array([*measured, 0.0]), atol=1e-10, btol=1e-10)[0]
    return shifts - shifts.mean()


def strain_aligned(stack: SpectraStack, shifts: np.ndarray | None = None) -> SpectraStack:
    """Return the stack with each curve moved back along ln q by its shift (``series_strains``)."""
    shifts = series_strains(stack) if shifts is None else np.asarray(shifts, dtype=np.float64)
    u = _log_q(stack)
    finite = np.isfinite(u)
    if not np.any(shifts) or finite.sum() < 2:
        return stack
    order = np.argsort(np.where(finite, u, np.inf))[: int(finite.sum())]
    data = stack.curves().astype(np.float64)
    out = data.copy()
    for row, shift in enumerate(shifts):
        out[row, order] = np.interp(u[order] + shift, u[order], data[row, order])
    return stack.replace(intensities=out.astype(np.float32))


class LinearDriftCost(BaseCost):
    """ruptures cost: residual sum of squares of a straight line in ``x`` per component.

    Prefix sums make each segment's cost O(d), so ``Pelt`` stays fast on long series.
    """

    model = "linear_drift"
    min_size = 3

    def __init__(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        self.x = (x - x.mean()) / (x.std() or 1.0)

    def fit(self, signal: np.ndarray) -> LinearDriftCost:
        """Remember the prefix sums of ``signal`` (curves × components) and ``x``."""
        y = np.asarray(signal, dtype=np.float64)
        self.signal = y
        x = self.x[:, None]
        # one row per curve: 1, x, x², then y, x·y, y² summed over components, in one array so
        # that a segment's sums are one subtraction (Pelt calls ``error`` O(n²) times)
        terms = np.hstack([np.ones_like(x), x, x * x, y, x * y, (y * y).sum(axis=1, keepdims=True)])
        self._sums = np.vstack([np.zeros((1, terms.shape[1])), np.cumsum(terms, axis=0)])
        self._d = y.shape[1]
        return self

    def error(self, start: int, end: int) -> float:
        """Return the residual sum of squares of the line fits on curves ``start:end``."""
        sums = self._sums[end] - self._sums[start]
        d = self._d
        n, sx, sxx = sums[0], sums[1], sums[2]
        sy, sxy = sums[3 : 3 + d], sums[3 + d : 3 + 2 * d]
        residual = sums[-1] - float(sy @ sy) / n
        vxx = sxx - sx * sx / n
        if vxx > 1e-9 * n:
            v = sxy - sx * sy / n
            residual -= float(v @ v) / vxx
        return float(residual)


def _drift_axis(stack: SpectraStack) -> np.ndarray:
    """The series' variable where every value is finite, otherwise the curve index."""
    values = np.asarray(stack.variable, dtype=np.float64)
    if values.shape == (stack.n_curves,) and np.all(np.isfinite(values)) and np.ptp(values) > 0:
        return values
    return np.arange(stack.n_curves, dtype=np.float64)


def propose_phases(
    encoder: Any,
    stacks: Sequence[SpectraStack],
    *,
    embeddings: Mapping[str, np.ndarray] | None = None,
    penalty_factor: float = PENALTY_FACTOR,
    merge_factor: float = MERGE_FACTOR,
    min_segment: int = MIN_SEGMENT,
    ignore_phases: Any = None,
) -> list[SeriesSegments]:
    """Return each series cut at its change points, segments named by common phase S1, S2, ...

    ``embeddings`` (by series name) are used as given, without strain alignment; series not in
    it are aligned (``strain_aligned``) and embedded by ``encoder``. ``ignore_phases`` (names
    such as ``["Pt", "Ne"]``, 'Pt,Ne' or a ``PhaseMask``): the lines of these markers and
    media, at each curve's pressure, are fitted and subtracted before the curves are aligned
    and embedded (``phases.masking``); None: what the encoder was pretrained with, ``[]``:
    nothing.
    """
    import ruptures as rpt
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.decomposition import PCA

    stacks = list(stacks)
    if not stacks:
        raise StackError("no series to segment")
    if not (penalty_factor > 0 and merge_factor > 0):
        raise StackError("the penalty and merge factors must be positive numbers")
    given = embeddings or {}
    if any(s.name not in given for s in stacks):
        from .phases.masking import masked_stacks

        stacks, _ = masked_stacks(stacks, ignore_phases, encoder)
    emb = [
        np.asarray(
            given[s.name] if s.name in given else encoder.embed(strain_aligned(s)),
            dtype=np.float64,
        )
        for s in stacks
    ]
    everything = np.concatenate(emb)
    mean, std = everything.mean(axis=0), everything.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    n_components = int(min(N_COMPONENTS, everything.shape[1], everything.shape[0] - 1))
    pca = PCA(n_components=max(n_components, 1), svd_solver="full").fit((everything - mean) / std)
    reduced = [pca.transform((e - mean) / std) for e in emb]
    steps = np.concatenate([np.abs(np.diff(r, axis=0)) for r in reduced if r.shape[0] > 1])
    noise = np.median(steps, axis=0) / (0.6745 * np.sqrt(2.0)) if steps.size else None
    if noise is None:
        noise = np.ones(reduced[0].shape[1])
    noise = np.where(noise > 0, noise, 1.0)
    signals = [r / noise for r in reduced]

    cuts = []
    for stack, signal in zip(stacks, signals, strict=True):
        n, d = signal.shape
        if n < 2 * min_segment:
            cuts.append([n])
            continue
        pen = penalty_factor * (2 * d + 1) * np.log(n)
        cost = LinearDriftCost(_drift_axis(stack))
        algo = rpt.Pelt(custom_cost=cost, min_size=int(min_segment), jump=1).fit(signal)
        cuts.append([int(b) for b in algo.predict(pen=pen)])

    means, spreads, owners = [], [], []
    for s, (stack, signal, ends) in enumerate(zip(stacks, signals, cuts, strict=True)):
        cost = LinearDriftCost(_drift_axis(stack)).fit(signal)
        start = 0
        for stop in ends:
            means.append(signal[start:stop].mean(axis=0))
            spreads.append(np.sqrt(cost.error(start, stop) / (stop - start)))
            owners.append((s, start, stop))
            start = stop
    threshold = merge_factor * float(np.median(spreads)) if spreads else 1.0
    if len(means) > 1:
        tree = linkage(np.asarray(means), method="average")
        group = fcluster(tree, t=threshold, criterion="distance")
    else:
        group = np.ones(1, dtype=int)
    names: dict[int, str] = {}
    for g in group:  # S1, S2, ... in order of first appearance
        names.setdefault(int(g), f"S{len(names) + 1}")
    out = []
    for s, stack in enumerate(stacks):
        labels = np.empty(stack.n_curves, dtype=object)
        breaks = []
        for (owner, start, stop), g in zip(owners, group, strict=True):
            if owner != s:
                continue
            labels[start:stop] = names[int(g)]
            if start > 0 and labels[start - 1] != names[int(g)]:
                breaks.append(start)
        out.append(SeriesSegments(stack.name, labels.astype(str), breaks))
    return out
