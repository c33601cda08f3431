"""Names and helpers shared by the readers: suffixes, the reserved variable name, ReaderError, HDF5 attribute and JSON helpers."""

from __future__ import annotations

import json
import re
from typing import Any

import h5py
import numpy as np

TEXT_SUFFIXES = (".xy", ".xye", ".chi", ".dat")

HDF5_SUFFIXES = (".h5", ".hdf5", ".nxs")

NPZ_SUFFIXES = (".npz",)

METADATA_CSV = "metadata.csv"

LABEL_COLUMNS = ("dataset", "index", "label")

# ``variable=`` value (``--variable`` on the command line) meaning the acquisition index 0, 1, 2, ...
INDEX_VARIABLE = "index"

_INDEX_HINT = f'variable="{INDEX_VARIABLE}" (--variable {INDEX_VARIABLE}) for the acquisition order'

# wavelengths in one folder that differ by less than this fraction are the same, rounded
WAVELENGTH_RTOL = 1e-3

# external-variable units recognised as a suffix of a column name (``pressure_GPa``)
# fmt: off
_VARIABLE_UNITS = (
    "GPa", "MPa", "kPa", "Pa", "bar", "kbar", "mbar", "K", "C", "degC", "s", "ms", "min", "h",
    "eV", "keV", "V", "kV", "mA", "mm", "um", "nm", "deg", "rad", "percent",
)
# fmt: on


class ReaderError(ValueError):
    """A file or folder that cannot be read as a series; the message names it and the problem."""


def _metadata_from_json(stored: str, key: str) -> dict[str, Any]:
    """Return the JSON object in ``stored``; anything else (a list, bad or too deeply nested JSON) is kept as text under ``key``."""
    try:
        value = json.loads(stored)
    except (json.JSONDecodeError, RecursionError):
        value = None
    return value if isinstance(value, dict) else {key: stored}


def _is_real_number_dtype(dtype: np.dtype) -> bool:
    """True for integer and floating dtypes: not bool, complex, datetime/timedelta, strings."""
    return np.dtype(dtype).kind in "iuf"


class _NanFilledDataset:
    """A lazy, read-only view of an HDF5 dataset that reads NaN as ``fill_value``."""

    def __init__(self, dataset: h5py.Dataset, fill_value: float) -> None:
        self.dataset = dataset
        self.fill_value = fill_value
        self.shape = dataset.shape
        self.dtype = dataset.dtype

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, key: Any) -> np.ndarray:
        block = np.asarray(self.dataset[key])
        return np.where(np.isnan(block), block.dtype.type(self.fill_value), block)


def _attr_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return _attr_text(value.ravel()[0]) if value.size == 1 else None
    return str(value)


def _attr_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return [_attr_text(v) or "" for v in value.ravel()]
    text = _attr_text(value) or ""
    return [t.strip() for t in re.split(r"[:,]", text)] if text else []


def _strings(dataset: h5py.Dataset) -> list[str]:
    return [_attr_text(v) or "" for v in np.asarray(dataset[()]).ravel()]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)
