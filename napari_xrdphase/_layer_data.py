"""Conversion between a SpectraStack and napari layer data tuples (no napari import)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .stack import SpectraStack

METADATA_KEY = "xrdphase"
# in the layer metadata: the file or folder the series was read from, the one live mode watches
SOURCE_PATH_KEY = "source_path"
LIVE_PATH_KEY = "live_path"
DISPLAY_MODES = ("sqrt", "log", "linear")
DIFFRACTION_COLORMAP = "inferno"
ROW_ASPECT = 0.66


def _display_data(stack: SpectraStack, display: str) -> Any:
    if display != "log":
        return stack.intensities  # sqrt and linear differ by gamma only: no copy, lazy stays lazy
    data = stack.curves()
    floor = np.percentile(data, 1)
    return np.log10(np.clip(data - floor, 0, None) + 1.0).astype(np.float32)


def _contrast_limits(data: Any) -> tuple[float, float]:
    # a sample of rows keeps this cheap for lazy stacks
    n = data.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, 64)).astype(int))
    sample = np.asarray(data[rows.tolist()] if not isinstance(data, np.ndarray) else data[rows])
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(sample, [1.0, 99.8])
    if high <= low:
        high = low + 1.0
    return float(low), float(high)


def stack_to_layer_data(
    stack: SpectraStack, display: str = "sqrt", extra: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any], str]:
    """Return a napari Image layer-data tuple showing ``stack``: rows = curves, columns = axis.

    The column scale and offset put the x axis in the stack's axis unit (for non-uniform grids
    the mean step is used); the row scale only sets the aspect ratio; ``layer.metadata["xrdphase"]["stack"]`` keeps the stack itself
    (raw intensities, axis, external variable) so that other widgets and writers find it.
    ``display`` is ``sqrt`` (gamma 0.5), ``log`` (log10 of background-subtracted counts) or
    ``linear``.
    """
    if display not in DISPLAY_MODES:
        raise ValueError(f"display must be one of {DISPLAY_MODES}, not {display!r}")
    data = _display_data(stack, display)
    contrast_limits = _contrast_limits(data)
    if stack.is_lazy:
        # napari reads a whole 2D image to draw it; as a multiscale image of lazy row-strided
        # levels it reads only what the zoom shows (see stream.display_pyramid). Every display
        # of a lazy stack is multiscale, since napari cannot switch a layer to or from it.
        from .stream import display_pyramid

        data = display_pyramid(data)
    axis = stack.axis
    step = (axis[-1] - axis[0]) / (axis.size - 1)
    # rows get a scale that makes the picture about 2:3 whatever the curve count, so a
    # 60-curve and a 60 000-curve series both fill the canvas; rows stay rows in data coordinates
    row_scale = ROW_ASPECT * abs(axis[-1] - axis[0]) / stack.n_curves
    meta = {"stack": stack, "display": display}
    meta.update(extra or {})
    kwargs = {
        "name": stack.name,
        "scale": (float(row_scale), float(step)),
        "translate": (0.0, float(axis[0])),
        "colormap": DIFFRACTION_COLORMAP,
        "gamma": 0.5 if display == "sqrt" else 1.0,
        "contrast_limits": contrast_limits,
        "axis_labels": ("curve", stack.axis_label),
        "metadata": {METADATA_KEY: meta},
        "interpolation2d": "nearest",
    }
    if isinstance(data, list):
        kwargs["multiscale"] = True
    return data, kwargs, "image"


def stack_from_layer(layer: Any) -> SpectraStack:
    """Return the SpectraStack behind an Image layer made by this plugin, or one built from its data."""
    meta = getattr(layer, "metadata", {}).get(METADATA_KEY, {})
    stack = meta.get("stack")
    if isinstance(stack, SpectraStack):
        return stack
    data = np.asarray(layer.data)
    if data.ndim != 2:
        raise ValueError(
            f"layer {layer.name!r} has {data.ndim} dimensions; a diffraction series is 2D "
            "(curves × points)"
        )
    scale, translate = layer.scale[-1], layer.translate[-1]
    axis = translate + scale * np.arange(data.shape[1])
    return SpectraStack(intensities=data, axis=axis, name=layer.name)
