"""Turn diffraction curves into encoder input: a fixed number of points, scaled to [0, 1].

Each curve is linearly interpolated onto ``input_length`` equally spaced points spanning the
axis range (the stack's own range by default, or a fixed ``axis_range`` so that curves from
different beamtimes land on the same grid), then min–max scaled to [0, 1] on its own.

Why [0, 1] per curve: the encoder should see the shape of a pattern (peak positions and relative
heights), not the exposure, beam current or detector gain, which differ between curves and
beamtimes. The reference code instead scaled to [−1, 1] with the minimum and maximum of the
training set, which ties a trained model to that data set's intensity scale: a brighter beamtime
would land outside the range the model was trained on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .stack import SpectraStack

__all__ = ["iter_prepared_chunks", "minmax_rows", "prepare_curves", "prepare_stack", "target_axis"]


def target_axis(
    axis: np.ndarray, input_length: int = 1024, axis_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Return the ``input_length`` equally spaced, ascending points the curves are resampled onto."""
    axis = np.asarray(axis, dtype=np.float64).ravel()
    if int(input_length) < 2:
        raise ValueError(f"input_length must be at least 2, got {input_length}")
    if axis_range is None:
        lo, hi = float(np.min(axis)), float(np.max(axis))
    else:
        lo, hi = sorted(float(v) for v in axis_range)
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
            raise ValueError(f"axis_range must be two different finite values, got {axis_range}")
    return np.linspace(lo, hi, int(input_length))


def _interpolation_plan(
    source: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (left index, right index, weight) of linear interpolation from ascending ``source``."""
    right = np.clip(np.searchsorted(source, target, side="right"), 1, source.size - 1)
    left = right - 1
    step = source[right] - source[left]
    weight = np.clip((target - source[left]) / step, 0.0, 1.0)  # clipping pads with edge values
    return left, right, weight


def minmax_rows(curves: np.ndarray) -> np.ndarray:
    """Return each row scaled to [0, 1] as float32 (constant rows become zeros)."""
    return _minmax_rows_inplace(np.array(curves, dtype=np.float32, copy=True))


def _minmax_rows_inplace(out: np.ndarray) -> np.ndarray:
    """Scale each row of the float32 array ``out`` to [0, 1] in place and return it."""
    lo = out.min(axis=1, keepdims=True)
    span = out.max(axis=1, keepdims=True) - lo
    scale = np.divide(1.0, span, out=np.zeros_like(span), where=span > 0)
    out -= lo
    out *= scale
    return out


def prepare_curves(
    curves: np.ndarray,
    axis: np.ndarray,
    input_length: int = 1024,
    axis_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Return (N, input_length) float32 curves resampled onto an even grid and scaled to [0, 1] each.

    ``axis`` may run up or down (a d axis runs down): the output always runs from the low to the
    high end of the axis range. Outside the curves' own range (with a wider ``axis_range``) the
    edge values are repeated. A 1D ``curves`` is taken as one curve.
    """
    data = np.asarray(curves)
    if data.ndim == 1:
        data = data[np.newaxis]
    if data.ndim != 2:
        raise ValueError(f"curves must be 2D (curves × points), got shape {data.shape}")
    source = np.asarray(axis, dtype=np.float64).ravel()
    if source.size != data.shape[1]:
        raise ValueError(f"axis has {source.size} values but curves have {data.shape[1]} points")
    if source.size < 2:
        raise ValueError("curves need at least 2 points")
    steps = np.diff(source)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise ValueError("the axis must be strictly increasing or strictly decreasing")
    data = data.astype(np.float32, copy=False)
    if not np.all(np.isfinite(data)):
        bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
        raise ValueError(f"curves {bad[:10].tolist()} contain NaN or inf values")
    if steps[0] < 0:
        source, data = source[::-1], data[:, ::-1]
    target = target_axis(source, input_length, axis_range)
    if target.size == source.size and np.allclose(
        target, source, rtol=0, atol=1e-9 * np.ptp(source)
    ):
        return minmax_rows(data)  # already on the grid: nothing to interpolate
    left, right, weight = _interpolation_plan(source, target)
    resampled = data[:, left]  # a new float32 array: scaled in place, without another copy
    resampled += (data[:, right] - resampled) * weight.astype(np.float32)
    return _minmax_rows_inplace(resampled)


def iter_prepared_chunks(
    stack: SpectraStack,
    input_length: int = 1024,
    axis_range: tuple[float, float] | None = None,
    chunk_size: int = 4096,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, prepared curves)`` blocks of a stack, reading lazy stacks chunk by chunk."""
    for start, block in stack.iter_chunks(chunk_size):
        yield start, prepare_curves(block, stack.axis, input_length, axis_range)


def prepare_stack(
    stack: SpectraStack,
    input_length: int = 1024,
    axis_range: tuple[float, float] | None = None,
    chunk_size: int = 4096,
) -> np.ndarray:
    """Return the whole stack prepared as (N, input_length) float32, read in bounded chunks."""
    out = np.empty((stack.n_curves, int(input_length)), dtype=np.float32)
    for start, block in iter_prepared_chunks(stack, input_length, axis_range, chunk_size):
        out[start : start + block.shape[0]] = block
    return out
