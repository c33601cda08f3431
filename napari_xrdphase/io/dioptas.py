"""What is particular to Dioptas batch files: process details, units and the fill value of empty bins."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._files import decode_text
from ._common import _attr_text, _NanFilledDataset, _strings
from .units import _wavelength_in_angstrom

_DIOPTAS_UNITS = {
    "2th_deg": ("2theta", "deg"),
    "q_a^-1": ("q", "1/A"),
    "q_nm^-1": ("q", "1/nm"),
    "d_a": ("d", "A"),
}


def _dioptas_details(entry: h5py.Group, path: Path, n_curves: int) -> dict[str, Any]:
    process = entry["process"]

    def text(name: str) -> str | None:
        item = process.get(name)
        return _attr_text(item[()]) if isinstance(item, h5py.Dataset) and item.size == 1 else None

    files = _strings(process["files"]) if isinstance(process.get("files"), h5py.Dataset) else []
    info: dict[str, Any] = {
        "files": files,
        "cal_file": text("cal_file"),
        "int_method": text("int_method"),
        "int_unit": text("int_unit"),
        "num_points": _integer_or_none(process.get("num_points")),
        "has_background": "bkg" in process,
        "has_mask": "mask" in process or "mask_file" in process,
    }
    sources = None
    pos_map = process.get("pos_map")
    if isinstance(pos_map, h5py.Dataset) and pos_map.shape == (n_curves, 2) and files:
        positions = np.asarray(pos_map[()], dtype=np.int64)
        if positions[:, 0].min() >= 0 and positions[:, 0].max() < len(files):
            short = [re.split(r"[\\/]", f)[-1] for f in files]
            sources = [f"{short[i]}[{frame}]" for i, frame in positions]
    wavelength, wavelength_from = None, None
    if info["cal_file"] and info["cal_file"].lower().endswith(".poni"):
        # the stored path is from the machine that ran Dioptas; also look next to the file
        stored = Path(info["cal_file"])
        for poni in (stored, path.parent / re.split(r"[\\/]", info["cal_file"])[-1]):
            wavelength = _poni_wavelength(poni)
            if wavelength is not None:
                wavelength_from = str(poni)
                break
    axis = _DIOPTAS_UNITS.get((info["int_unit"] or "").lower())
    return {
        "dioptas": info,
        "sources": sources,
        "wavelength": wavelength,
        "wavelength_from": wavelength_from,
        "axis": axis,
    }


def _integer_or_none(item: Any) -> int | None:
    """Return the single integer stored in a dataset, or None for anything else."""
    if not isinstance(item, h5py.Dataset) or item.size != 1 or item.dtype.kind not in "iu":
        return None
    return int(np.asarray(item[()]).ravel()[0])


def _poni_wavelength(poni: Path) -> float | None:
    try:
        if not poni.is_file():
            return None
        text = decode_text(poni.read_bytes())[0]
    except OSError:
        return None
    match = re.search(r"^\s*Wavelength\s*:\s*([-+0-9.eE]+)", text, re.MULTILINE)
    return _wavelength_in_angstrom(float(match.group(1)), "m") if match else None


def _fill_value_of(sample: np.ndarray) -> tuple[float | None, bool]:
    """Return (the repeated minimum used as fill, whether NaN occurs) for Dioptas intensities."""
    has_nan = bool(np.isnan(sample).any())
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return None, has_nan
    minimum = finite.min()
    # integrated intensities practically never repeat one exact float; a minimum held by
    # at least 1 % of all values is the value Dioptas wrote into bins without data
    if np.count_nonzero(finite == minimum) >= 0.01 * sample.size:
        return float(minimum), has_nan
    return None, has_nan


def _fill_warning(
    path: Path, fill: float, fraction: float, empty: int | None, n_points: int
) -> None:
    empty_text = (
        f"; {empty} of the {n_points} points of the axis hold it on every curve (no detector "
        "pixel reaches them: outside the detector, in a gap or under the beam stop)"
        if empty is not None
        else ""
    )
    warnings.warn(
        f"{path}: {fraction:.1%} of the intensities are the Dioptas fill value {fill:g} "
        f"(bins that no detector pixel reached, or intensities at or below it){empty_text}; "
        "they are kept as that value, not interpolated",
        UserWarning,
        stacklevel=6,  # the caller of load_stack
    )


def _mask_dioptas_fill(data: np.ndarray, path: Path, metadata: dict[str, Any]) -> np.ndarray:
    fill, has_nan = _fill_value_of(data)
    if fill is None and not has_nan:
        return data
    fill = 0.0 if fill is None else fill
    if has_nan:
        data = np.where(np.isnan(data), data.dtype.type(fill), data)
    is_fill = data == data.dtype.type(fill)
    empty_bins = np.flatnonzero(is_fill.all(axis=0))
    fraction = float(is_fill.mean())
    metadata.update(fill_value=fill, fill_fraction=fraction, empty_bins=empty_bins.tolist())
    _fill_warning(path, fill, fraction, empty_bins.size, data.shape[1])
    return data


def _mask_dioptas_fill_lazily(signal: h5py.Dataset, path: Path, metadata: dict[str, Any]) -> Any:
    rows = np.unique(
        np.linspace(0, signal.shape[0] - 1, min(signal.shape[0], 256)).astype(np.int64)
    )
    sample = np.asarray(signal[rows])
    fill, has_nan = _fill_value_of(sample)
    if fill is None and not has_nan:
        return signal
    fill = 0.0 if fill is None else fill
    fraction = float(((sample == sample.dtype.type(fill)) | np.isnan(sample)).mean())
    metadata.update(fill_value=fill, fill_fraction=fraction, empty_bins=None)
    _fill_warning(path, fill, fraction, None, signal.shape[1])
    return _NanFilledDataset(signal, fill) if has_nan else signal
