"""HDF5 / NeXus files: the NXdata reader (Dioptas batch files included) and the NeXus writer."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import h5py
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
    _attr_list,
    _attr_text,
    _is_real_number_dtype,
    _json_default,
    _metadata_from_json,
    _strings,
)
from .dioptas import _dioptas_details, _mask_dioptas_fill, _mask_dioptas_fill_lazily
from .units import _axis_from_label, _wavelength_in_angstrom

_NEXUS_UNITS = {
    "deg": "degree",
    "rad": "rad",
    "1/A": "1/angstrom",
    "1/nm": "1/nm",
    "A": "angstrom",
    "nm": "nm",
}

_NEXUS_AXIS_NAMES = {"2theta": "two_theta", "q": "q", "d": "d_spacing"}


def _read_hdf5(path: Path, variable: str | None, lazy_threshold_bytes: int) -> SpectraStack:
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise ReaderError(
            f"{path}: cannot open the HDF5 file ({exc}); it may be truncated or corrupt"
        ) from exc
    keep_open = False
    try:
        stack, keep_open = _stack_from_hdf5(h5, path, variable, lazy_threshold_bytes)
        return stack
    except ReaderError:
        raise
    except StackError as exc:
        raise ReaderError(f"{path}: {exc}") from exc
    except (OSError, KeyError, RuntimeError) as exc:  # how h5py reports damaged data or links
        raise ReaderError(
            f"{path}: cannot read the data ({exc}); the file may be truncated or corrupt"
        ) from exc
    except (UnicodeError, TypeError, ValueError) as exc:
        # h5py on names/attributes that are not UTF-8, attributes of unexpected types or shapes
        raise ReaderError(
            f"{path}: unexpected content ({type(exc).__name__}: {exc}); the file does not "
            "follow the NeXus layout in docs/formats.md"
        ) from exc
    finally:
        if not keep_open:
            h5.close()


def _is_nxdata(obj: Any) -> bool:
    return isinstance(obj, h5py.Group) and (
        _attr_text(obj.attrs.get("NX_class")) == "NXdata" or "signal" in obj.attrs
    )


def _signal_of(group: h5py.Group) -> h5py.Dataset | None:
    name = _attr_text(group.attrs.get("signal"))
    if name and isinstance(group.get(name), h5py.Dataset):
        return group[name]
    for item in group.values():  # the older convention: a dataset with signal=1
        if isinstance(item, h5py.Dataset) and _attr_text(item.attrs.get("signal")) == "1":
            return item
    return None


def _find_nxdata(h5: h5py.File) -> tuple[h5py.Group | None, list[str]]:
    """Return the NXdata group with a 2D signal (the ``default`` one first) and notes on others."""
    candidates: list[h5py.Group] = []
    group: h5py.Group = h5
    for _ in range(4):  # root -> NXentry -> NXdata (-> one more level, tolerated)
        name = _attr_text(group.attrs.get("default"))
        child = group.get(name) if name else None
        if not isinstance(child, h5py.Group):
            break
        group = child
        if _is_nxdata(group):
            candidates.append(group)
            break

    def collect(_name: str, obj: Any) -> None:
        if _is_nxdata(obj):
            candidates.append(obj)

    h5.visititems(collect)
    notes = []
    for candidate in candidates:
        signal = _signal_of(candidate)
        if signal is not None and signal.ndim == 2:
            return candidate, notes
        if signal is None:
            notes.append(f"NXdata {candidate.name} names no signal dataset")
        else:
            notes.append(
                f"NXdata {candidate.name} has a {signal.ndim}D signal of shape {signal.shape}"
            )
    return None, notes


def _other_2d_datasets(h5: h5py.File) -> list[str]:
    found: list[str] = []

    def collect(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.ndim == 2 and len(found) < 5:
            found.append(f"/{name} {obj.shape}")

    h5.visititems(collect)
    return found


def _axis_names(group: h5py.Group, signal: h5py.Dataset) -> list[str | None]:
    """Return the axis dataset names of the signal's two dimensions (None where unnamed).

    From the group's ``axes`` and ``AXISNAME_indices`` attributes (NeXus 2014), else from
    the older conventions: an ``axes`` attribute on the signal (``"pressure:two_theta"``) or
    datasets with a 1-based ``axis`` attribute. An axis whose length fits only the other
    dimension, left unnamed, is moved there (``axes="two_theta"`` on a 2D signal).
    """
    names: list[str | None] = [None, None]
    listed = _attr_list(group.attrs.get("axes")) or _attr_list(signal.attrs.get("axes"))
    for dim, name in enumerate(listed[:2]):
        if name and name != ".":
            names[dim] = name
    for key, value in group.attrs.items():
        if key.endswith("_indices"):
            axis = key[: -len("_indices")]
            try:
                dim = int(np.asarray(value).ravel()[0])
            except (TypeError, ValueError, IndexError):
                continue
            if dim in (0, 1) and names[dim] is None and axis in group:
                names[dim] = axis
    for name, item in group.items():
        number = _attr_text(item.attrs.get("axis")) if isinstance(item, h5py.Dataset) else None
        if number in ("1", "2") and names[int(number) - 1] is None and name not in names:
            names[int(number) - 1] = name
    lengths = signal.shape
    for dim in (0, 1):
        item = group.get(names[dim]) if names[dim] else None
        other = 1 - dim
        if (
            isinstance(item, h5py.Dataset)
            and item.ndim == 1
            and item.shape[0] != lengths[dim]
            and item.shape[0] == lengths[other]
            and names[other] is None
        ):
            names[other], names[dim] = names[dim], None
    return names


def _units_of(dataset: h5py.Dataset) -> str | None:
    # NeXus says "units"; Dioptas writes "unit"
    return _attr_text(dataset.attrs.get("units", dataset.attrs.get("unit")))


def _scattering_unit(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return normalize_unit(text)
    except StackError:
        low = text.strip().lower()
        if re.search(r"^(1/|inverse )?(nm|nanomet)", low) or "nm-1" in low or "nm^-1" in low:
            return "1/nm" if ("1/" in low or "-1" in low or "inverse" in low) else "nm"
        if re.search(r"(1/|inverse )(a|å|angstrom)|(a|å|angstrom)\^?-1", low):
            return "1/A"
        if low.startswith("deg"):
            return "deg"
        return None


def _scattering_axis(name: str, dataset: h5py.Dataset) -> tuple[str, str] | None:
    """Return (kind, unit) of a scattering axis from its name, long_name and units, or None."""
    base = name.rsplit("/", 1)[-1]
    unit = _scattering_unit(_units_of(dataset))
    kind = None
    try:
        kind = normalize_axis_kind(base)
    except StackError:
        for label in (_attr_text(dataset.attrs.get("long_name")), base):
            found = _axis_from_label(label) if label else None
            if found is not None:
                kind = found[0]
                unit = unit or found[1]
                break
    if kind is None and unit is not None:
        kind = next(k for k, units in AXIS_UNITS.items() if unit in units)
    if kind is None:
        return None
    if unit is None:
        unit = AXIS_UNITS[kind][0]
    if unit not in AXIS_UNITS[kind]:
        raise StackError(f"axis {name!r} is {kind} but its units {_units_of(dataset)!r} do not fit")
    return kind, unit


def _numeric_1d(dataset: Any, length: int) -> bool:
    return (
        isinstance(dataset, h5py.Dataset)
        and dataset.ndim == 1
        and dataset.shape[0] == length
        and _is_real_number_dtype(dataset.dtype)
    )


def _entry_of(group: h5py.Group) -> h5py.Group:
    node = group
    while node.name != "/":
        if _attr_text(node.attrs.get("NX_class")) == "NXentry":
            return node
        node = node.parent
    return group.parent if group.name != "/" else group


def _stack_from_hdf5(
    h5: h5py.File, path: Path, variable: str | None, lazy_threshold_bytes: int
) -> tuple[SpectraStack, bool]:
    group, notes = _find_nxdata(h5)
    if group is None:
        others = _other_2d_datasets(h5)
        detail = "; ".join(notes) if notes else "no NXdata group"
        hint = (
            f"; 2D datasets in the file: {', '.join(others)} — mark the group holding one with "
            "NX_class='NXdata' and signal='<name>'"
            if others
            else ""
        )
        raise ReaderError(f"{path}: no 2D data (curves × points) found ({detail}){hint}")
    signal = _signal_of(group)
    assert signal is not None
    if not _is_real_number_dtype(signal.dtype):  # complex would silently lose its imaginary part
        raise ReaderError(f"{path}: the signal {signal.name} is not real numbers ({signal.dtype})")
    entry = _entry_of(group)
    dioptas = "binning" in group and isinstance(entry.get("process"), h5py.Group)

    names = _axis_names(group, signal)
    axes = [
        (n, _scattering_axis(n, group[n]))
        if n and isinstance(group.get(n), h5py.Dataset)
        else (n, None)
        for n in names
    ]
    transposed = axes[1][1] is None and axes[0][1] is not None
    n_curves, n_points = (signal.shape[1], signal.shape[0]) if transposed else signal.shape
    lazy = signal.size * signal.dtype.itemsize > lazy_threshold_bytes
    if transposed and lazy:
        raise ReaderError(
            f"{path}: {signal.name} is stored points × curves and is too large to transpose in "
            "memory; store it as curves × points"
        )
    axis_name, axis_info = axes[0] if transposed else axes[1]
    variable_axis = names[1] if transposed else names[0]
    if axis_name is None or not _numeric_1d(group.get(axis_name), n_points):
        raise ReaderError(
            f"{path}: no scattering axis of {n_points} values for {signal.name} "
            f"(NXdata {group.name} axes: {[n for n in names if n] or 'none'})"
        )
    axis_values = np.asarray(group[axis_name][()], dtype=np.float64)
    metadata: dict[str, Any] = {}
    stored = _attr_text(entry.attrs.get("xrdphase_metadata"))
    if stored:
        metadata.update(_metadata_from_json(stored, "xrdphase_metadata"))
    metadata["format"] = "dioptas-batch" if dioptas else "nexus"

    if dioptas:
        details = _dioptas_details(entry, path, n_curves)
        metadata["dioptas"] = details["dioptas"]
        axis_info = details["axis"] or axis_info
        sources = details["sources"]
        wavelength = details["wavelength"]
        if details["wavelength_from"]:
            metadata["wavelength_from"] = details["wavelength_from"]
    else:
        sources = None
        for holder in (group, entry):
            if (
                "sources" in holder
                and isinstance(holder["sources"], h5py.Dataset)
                and holder["sources"].shape == (n_curves,)
            ):
                sources = _strings(holder["sources"])
                break
        wavelength = _hdf5_wavelength(h5, entry)
    if axis_info is None:
        warnings.warn(
            f"{path}: the axis {axis_name!r} has no units or name saying 2θ, q or d; "
            "it is read as 2θ in degrees",
            UserWarning,
            stacklevel=4,
        )
        axis_info = ("2theta", "deg")

    variable_values, variable_name, variable_unit = None, INDEX_VARIABLE, ""
    if variable not in (None, INDEX_VARIABLE):
        found = next(
            (
                holder[variable]
                for holder in (group, entry, h5)
                if variable in holder and _numeric_1d(holder[variable], n_curves)
            ),
            None,
        )
        if found is None:
            choices = [k for k, v in group.items() if _numeric_1d(v, n_curves)]
            raise ReaderError(
                f"{path}: no 1D numeric dataset {variable!r} with {n_curves} values "
                f"(candidates in {group.name}: {', '.join(choices) or 'none'}); "
                f"or pass {_INDEX_HINT}"
            )
        variable_dataset = found
    else:
        variable_dataset = group.get(variable_axis) if variable_axis else None
    if isinstance(variable_dataset, h5py.Dataset) and variable_dataset.shape == (n_curves,):
        numeric = _is_real_number_dtype(variable_dataset.dtype)
        if numeric and variable != INDEX_VARIABLE:
            variable_values = np.asarray(variable_dataset[()], dtype=np.float64)
            variable_name = (
                _attr_text(variable_dataset.attrs.get("original_name"))
                or variable_dataset.name.rsplit("/", 1)[-1]
            )
            variable_unit = _units_of(variable_dataset) or ""
        elif not numeric and sources is None:
            sources = _strings(variable_dataset)

    if sources is None:  # the file and the frame: "run.nxs[12]", as Dioptas' sources name them
        sources = [f"{path.name}[{i}]" for i in range(n_curves)]

    keep_open = False
    if lazy:
        intensities: Any = signal
        keep_open = True
        if dioptas:
            intensities = _mask_dioptas_fill_lazily(signal, path, metadata)
    else:
        intensities = np.asarray(signal[()])
        if transposed:
            intensities = intensities.T
        if dioptas:
            intensities = _mask_dioptas_fill(intensities, path, metadata)
    stack = SpectraStack(
        intensities=intensities,
        axis=axis_values,
        axis_kind=axis_info[0],
        axis_unit=axis_info[1],
        variable=variable_values,
        variable_name=variable_name,
        variable_unit=variable_unit,
        name=path.stem,
        sources=sources,
        wavelength=wavelength,
        metadata=metadata,
    )
    return stack, keep_open


def _hdf5_wavelength(h5: h5py.File, entry: h5py.Group) -> float | None:
    candidates = [
        "instrument/monochromator/wavelength",
        "instrument/beam/incident_wavelength",
        "instrument/source/wavelength",
        "instrument/wavelength",
        "sample/beam/incident_wavelength",
        "wavelength",
    ]
    datasets = [entry[c] for c in candidates if isinstance(entry.get(c), h5py.Dataset)]
    if not datasets:
        found: list[h5py.Dataset] = []

        def collect(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and name.rsplit("/", 1)[-1].lower() in (
                "wavelength",
                "incident_wavelength",
            ):
                found.append(obj)

        h5.visititems(collect)
        datasets = found[:1]
    for dataset in datasets:
        if dataset.size != 1 or not np.issubdtype(dataset.dtype, np.number):
            continue
        value = float(np.asarray(dataset[()]).ravel()[0])
        units = (_units_of(dataset) or "").lower().replace("ångström", "a")
        unit = "" if units in ("angstrom", "angstroms", "a", "å") else units
        wavelength = _wavelength_in_angstrom(value, unit)
        if wavelength is not None:
            return wavelength
    return None


def _dataset_name(name: str, taken: set[str]) -> str:
    clean = re.sub(r"[^A-Za-z0-9_]", "_", name.strip()) or "variable"
    if clean[0].isdigit():
        clean = "_" + clean
    while clean in taken:
        clean += "_variable"
    return clean


def save_nexus(stack: SpectraStack, path: str | os.PathLike[str]) -> Path:
    """Write ``stack`` as a NeXus HDF5 file (NXentry/NXdata), atomically, and return its path."""
    from .. import __version__

    axis_name = _NEXUS_AXIS_NAMES[stack.axis_kind]
    variable_name = _dataset_name(stack.variable_name, {"intensity", axis_name, "sources"})

    def write(temporary: Path) -> None:
        with h5py.File(temporary, "w") as h5:
            h5.attrs["NX_class"] = "NXroot"
            h5.attrs["default"] = "entry"
            h5.attrs["creator"] = f"napari-xrdphase {__version__}"
            entry = h5.create_group("entry")
            entry.attrs["NX_class"] = "NXentry"
            entry.attrs["default"] = "data"
            entry.attrs["xrdphase_metadata"] = json.dumps(stack.metadata, default=_json_default)
            entry.create_dataset("title", data=stack.name, dtype=h5py.string_dtype())
            entry.create_dataset("sources", data=list(stack.sources), dtype=h5py.string_dtype())
            data = entry.create_group("data")
            data.attrs["NX_class"] = "NXdata"
            data.attrs["signal"] = "intensity"
            data.attrs["axes"] = [variable_name, axis_name]
            data.attrs[f"{variable_name}_indices"] = 0
            data.attrs[f"{axis_name}_indices"] = 1
            rows_per_chunk = max(1, min(stack.n_curves, (1 << 20) // (4 * stack.n_points)))
            signal = data.create_dataset(
                "intensity",
                shape=(stack.n_curves, stack.n_points),
                dtype=np.float32,
                chunks=(rows_per_chunk, stack.n_points),
            )
            for start, block in stack.iter_chunks():
                signal[start : start + block.shape[0]] = block
            axis = data.create_dataset(axis_name, data=stack.axis)
            axis.attrs["units"] = _NEXUS_UNITS[stack.axis_unit]
            axis.attrs["long_name"] = stack.axis_label
            values = data.create_dataset(variable_name, data=stack.variable)
            values.attrs["long_name"] = stack.variable_label
            if stack.variable_unit:
                values.attrs["units"] = stack.variable_unit
            if variable_name != stack.variable_name:
                values.attrs["original_name"] = stack.variable_name
            if stack.wavelength is not None:
                instrument = entry.create_group("instrument")
                instrument.attrs["NX_class"] = "NXinstrument"
                monochromator = instrument.create_group("monochromator")
                monochromator.attrs["NX_class"] = "NXmonochromator"
                wavelength = monochromator.create_dataset("wavelength", data=stack.wavelength)
                wavelength.attrs["units"] = "angstrom"

    return atomic_write(Path(path).expanduser(), write)
