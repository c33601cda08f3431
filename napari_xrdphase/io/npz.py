"""NumPy ``.npz`` archives (read without unpickling) and their writer."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_write
from ..stack import (
    AXIS_UNITS,
    SpectraStack,
    StackError,
    normalize_axis_kind,
    normalize_unit,
)
from ._common import (
    _INDEX_HINT,
    INDEX_VARIABLE,
    ReaderError,
    _attr_text,
    _is_real_number_dtype,
    _json_default,
    _metadata_from_json,
)

# fmt: off
_NPZ_RESERVED = {
    "intensity", "two_theta", "q", "d", "wavelength", "names", "metadata_json", "variable",
    "variable_name", "variable_unit",
}
# fmt: on


def _memory_bytes() -> int:
    """Physical memory of this machine in bytes (a large number where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 50


def _check_npz_size(path: Path) -> None:
    """Refuse an archive whose entries would not fit in memory once decompressed.

    An .npz is read whole; a small file that inflates to more than half the machine's memory
    (a corrupt or hostile "zip bomb") would otherwise exhaust it.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # np.load reports what is wrong with the archive
    if inflated > _memory_bytes() // 2:
        raise ReaderError(
            f"{path}: the archive inflates to {inflated / 1e9:.1f} GB, more than half of this "
            "machine's memory; store a series this large as HDF5/NeXus, which is read lazily"
        )


def _read_npz(path: Path, variable: str | None) -> SpectraStack:
    _check_npz_size(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as exc:  # zipfile.BadZipFile, EOFError, OSError, zlib and format errors
        if isinstance(exc, ValueError) and "pickle" in str(exc).lower():
            raise ReaderError(
                f"{path}: the archive holds Python objects, which are never unpickled "
                "(allow_pickle=False); store plain numeric and string arrays"
            ) from exc
        raise ReaderError(
            f"{path}: cannot read the .npz archive ({exc}); it may be truncated or corrupt"
        ) from exc

    def text(key: str, default: str) -> str:
        return str(arrays[key].item()) if key in arrays and arrays[key].size == 1 else default

    if "intensity" not in arrays:
        raise ReaderError(f"{path}: no 'intensity' array (entries: {', '.join(arrays) or 'none'})")
    intensity = arrays["intensity"]
    if not _is_real_number_dtype(intensity.dtype):
        raise ReaderError(f"{path}: 'intensity' is not real numbers ({intensity.dtype})")
    if intensity.ndim != 2:
        raise ReaderError(
            f"{path}: 'intensity' has shape {intensity.shape}; it must be 2D (curves × points)"
        )
    axis_key = next((k for k in ("two_theta", "q", "d") if k in arrays), None)
    if axis_key is None:
        raise ReaderError(f"{path}: no axis array; add 'two_theta' (degrees), 'q' or 'd'")
    if not _is_real_number_dtype(arrays[axis_key].dtype):
        raise ReaderError(f"{path}: {axis_key!r} is not real numbers ({arrays[axis_key].dtype})")
    n_axis = arrays[axis_key].size
    if intensity.shape[0] == n_axis != intensity.shape[1]:  # stored points × curves, as in HDF5
        intensity = np.ascontiguousarray(intensity.T)
    n_curves = intensity.shape[0]
    kind = normalize_axis_kind(axis_key)
    try:
        unit = normalize_unit(text(f"{axis_key}_unit", AXIS_UNITS[kind][0]))
    except StackError as exc:
        raise ReaderError(f"{path}: {exc}") from exc

    if variable == INDEX_VARIABLE:
        key, name, unit_default = None, INDEX_VARIABLE, ""
    elif variable is not None:
        if variable not in arrays:
            raise ReaderError(
                f"{path}: no entry {variable!r} (entries: {', '.join(arrays)}); "
                f"or pass {_INDEX_HINT}"
            )
        key, name = variable, variable
        unit_default = "GPa" if variable == "pressure" else ""
    elif "variable" in arrays:
        key, name, unit_default = (
            "variable",
            text("variable_name", "variable"),
            text("variable_unit", ""),
        )
    elif "pressure" in arrays:
        key, name, unit_default = "pressure", "pressure", "GPa"
    else:
        key = next(
            (
                k
                for k, v in arrays.items()
                if k not in _NPZ_RESERVED
                and not k.endswith("_unit")
                and v.ndim == 1
                and v.shape[0] == n_curves
                and _is_real_number_dtype(v.dtype)
            ),
            None,
        )
        name, unit_default = key or INDEX_VARIABLE, ""
    variable_values, variable_unit = None, ""
    if key is not None:
        values = arrays[key]
        if values.ndim != 1 or not _is_real_number_dtype(values.dtype):
            raise ReaderError(
                f"{path}: {key!r} is not a 1D numeric array (shape {values.shape}, {values.dtype}); "
                f"or pass {_INDEX_HINT}"
            )
        variable_values = values
        variable_unit = text(f"{key}_unit", unit_default) if key != "variable" else unit_default

    metadata: dict[str, Any] = {}
    if "metadata_json" in arrays:
        metadata.update(_metadata_from_json(text("metadata_json", "{}"), "metadata_json"))
    metadata["format"] = "npz"
    wavelength = None
    if "wavelength" in arrays and arrays["wavelength"].size == 1:
        if not _is_real_number_dtype(arrays["wavelength"].dtype):
            raise ReaderError(
                f"{path}: 'wavelength' is not a number ({arrays['wavelength'].dtype}); store Å"
            )
        wavelength = float(arrays["wavelength"].ravel()[0])
    if "names" in arrays:
        sources = [_attr_text(s) or "" for s in arrays["names"].ravel()]
    else:  # the file and the row: "run.npz[12]"
        sources = [f"{path.name}[{i}]" for i in range(n_curves)]
    try:
        return SpectraStack(
            intensities=intensity,
            axis=arrays[axis_key],
            axis_kind=kind,
            axis_unit=unit,
            variable=variable_values,
            variable_name=name if variable_values is not None else INDEX_VARIABLE,
            variable_unit=variable_unit,
            name=path.stem,
            sources=sources,
            wavelength=wavelength,
            metadata=metadata,
        )
    except StackError as exc:
        raise ReaderError(f"{path}: {exc}") from exc


def _save_npz(stack: SpectraStack, path: Path) -> Path:
    axis_key = {"2theta": "two_theta", "q": "q", "d": "d"}[stack.axis_kind]
    arrays: dict[str, np.ndarray] = {
        "intensity": stack.curves(),
        axis_key: stack.axis,
        f"{axis_key}_unit": np.array(stack.axis_unit),
        "variable": stack.variable,
        "variable_name": np.array(stack.variable_name),
        "variable_unit": np.array(stack.variable_unit),
        "names": np.array(stack.sources, dtype=str),
        "metadata_json": np.array(json.dumps(stack.metadata, default=_json_default)),
    }
    if stack.wavelength is not None:
        arrays["wavelength"] = np.array(stack.wavelength)

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as fh:  # a file object, so numpy adds no ".npz" suffix
            np.savez(fh, **arrays)

    return atomic_write(path, write)
