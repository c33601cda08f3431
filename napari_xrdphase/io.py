"""Read and write series of diffraction curves: text folders, HDF5/NeXus, Dioptas batch files, .npz.

Every reader returns a :class:`~napari_xrdphase.stack.SpectraStack`; every problem a user can
cause raises :class:`ReaderError` naming the file and what is wrong. See ``docs/formats.md``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import uuid
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._files import atomic_write, decode_text
from .stack import (
    AXIS_UNITS,
    SpectraStack,
    StackError,
    energy_kev_to_wavelength,
    normalize_axis_kind,
    normalize_unit,
)

TEXT_SUFFIXES = (".xy", ".xye", ".chi", ".dat")
HDF5_SUFFIXES = (".h5", ".hdf5", ".nxs")
NPZ_SUFFIXES = (".npz",)
METADATA_CSV = "metadata.csv"
LABEL_COLUMNS = ("dataset", "index", "label")
# ``variable=`` value (``--variable`` on the command line) meaning the acquisition index 0, 1, 2, ...
INDEX_VARIABLE = "index"
_INDEX_HINT = f'variable="{INDEX_VARIABLE}" (--variable {INDEX_VARIABLE}) for the acquisition order'

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"
_MIN_POINTS = 8  # SpectraStack's lower limit
# wavelengths in one folder that differ by less than this fraction are the same, rounded
WAVELENGTH_RTOL = 1e-3

# (axis kind, unit) <-> the pyFAI/Dioptas column name used in text headers
_TEXT_AXIS_TOKENS = {
    ("2theta", "deg"): "2th_deg",
    ("2theta", "rad"): "2th_rad",
    ("q", "1/A"): "q_A^-1",
    ("q", "1/nm"): "q_nm^-1",
    ("d", "A"): "d_A",
    ("d", "nm"): "d_nm",
}
_NEXUS_AXIS_NAMES = {"2theta": "two_theta", "q": "q", "d": "d_spacing"}
_NEXUS_UNITS = {
    "deg": "degree",
    "rad": "rad",
    "1/A": "1/angstrom",
    "1/nm": "1/nm",
    "A": "angstrom",
    "nm": "nm",
}

# external-variable units recognised as a suffix of a column name (``pressure_GPa``)
# fmt: off
_VARIABLE_UNITS = (
    "GPa", "MPa", "kPa", "Pa", "bar", "kbar", "mbar", "K", "C", "degC", "s", "ms", "min", "h",
    "eV", "keV", "V", "kV", "mA", "mm", "um", "nm", "deg", "rad", "percent",
)
# fmt: on
# lower-case spellings accepted for multi-letter units only (``pressure_gpa``; not ``id_a``)
_VARIABLE_UNITS_LOWER = {u.lower(): u for u in _VARIABLE_UNITS if len(u) > 1}

_UNSUPPORTED_AXIS = re.compile(
    r"(?<![a-z])r_mm(?![a-z])|radial distance|(?<![a-z])chi_(deg|rad)|azimuth"
)
_TWO_THETA = re.compile(
    r"(?<![a-z0-9])2[-_ ]?th(?:eta)?(?![a-z])|2θ|two[-_ ]?theta|(?<![a-z])tth(?![a-z])"
)
_Q = re.compile(r"(?<![a-z0-9])q(?![a-z])")
_D = re.compile(r"(?<![a-z0-9*])d(?:[-_ ]?spacing)?(?![a-z0-9*])")
_STRONG_AXIS_TOKEN = re.compile(
    r"(?<![a-z0-9])(2th_deg|2th_rad|q_nm\^-1|q_a\^-1|d_a|d_nm)(?![a-z0-9])"
)
_RAD = re.compile(r"(?<![a-z])rad(?:ians?)?(?![a-z])")
_NANO = re.compile(r"nm|nano")
# photon energy in a header, with its unit (a bare number could be anything): "Energy: 42.7 keV"
_ENERGY = re.compile(
    r"\benergy[^0-9+\-.\n]{0,32}([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(kev|ev)\b",
    re.IGNORECASE,
)
_WAVELENGTH = re.compile(
    # the gap is bounded: unbounded, a long header line with many "wavelength"s takes O(n²)
    r"wave_?length[^0-9+\-.\n]{0,64}([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-zA-Zå]*)",
    re.IGNORECASE,
)
_HEADER_SCAN_CHARS = 1024  # real header lines are short
_CHI_POINT_COUNT = re.compile(r"[0-9]{1,15}")  # ASCII only: "²".isdigit() is True
_TOKEN_SPLIT = re.compile(r"[\s,;]+")
_COMMENTS = ("#", "!")
# a data row written with decimal commas: 2 or 3 numbers apart by spaces, tabs or ";", the first
# with one comma between digits ("10,5\t1234"); a comma-separated row never looks like this
_DECIMAL_COMMA_ROW = re.compile(
    r"[-+]?\d+,\d+(?:[eE][-+]?\d+)?(?:[ \t]*;[ \t]*|[ \t]+)[-+]?\d+(?:,\d+)?(?:[eE][-+]?\d+)?"
    r"(?:(?:[ \t]*;[ \t]*|[ \t]+)[-+]?\d+(?:,\d+)?(?:[eE][-+]?\d+)?)?"
)


class ReaderError(ValueError):
    """A file or folder that cannot be read as a series; the message names it and the problem."""


# --- entry points ----------------------------------------------------------------------------
def can_read(path: str | os.PathLike[str]) -> bool:
    """Return True when ``path`` is a folder with text curves or an .h5/.hdf5/.nxs/.npz file."""
    try:
        p = Path(path).expanduser()
        if p.is_dir():
            return any(_is_text_curve(entry) for entry in p.iterdir())
        return p.is_file() and p.suffix.lower() in HDF5_SUFFIXES + NPZ_SUFFIXES
    except (OSError, TypeError, ValueError):
        return False


def load_stack(
    path: str | os.PathLike[str],
    *,
    variable: str | None = None,
    lazy_threshold_bytes: int = 1 << 30,
) -> SpectraStack:
    """Return the series stored at ``path``: a folder of text curves, an HDF5/NeXus/Dioptas file or an .npz.

    ``variable`` names the external variable: a metadata.csv column, an HDF5 dataset or an
    .npz entry; None finds it in the files. ``INDEX_VARIABLE`` (``"index"``, a reserved name)
    makes it the acquisition index 0, 1, 2, ... whatever the files hold.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ReaderError(f"{p}: no such file or folder")
    if p.is_dir():
        return _read_text_folder(p, variable)
    if not p.is_file():  # a FIFO would block open() forever; devices are no series either
        raise ReaderError(f"{p}: not a regular file or folder (a pipe, socket or device?)")
    suffix = p.suffix.lower()
    try:
        with open(p, "rb") as fh:
            signature = fh.read(8)
    except OSError as exc:
        raise ReaderError(f"{p}: cannot open the file ({exc.strerror or exc})") from exc
    if signature.startswith(_HDF5_SIGNATURE) or (
        suffix in HDF5_SUFFIXES and signature and h5py.is_hdf5(p)
    ):
        return _read_hdf5(p, variable, lazy_threshold_bytes)
    if signature.startswith(_ZIP_SIGNATURE):
        return _read_npz(p, variable)
    if suffix in TEXT_SUFFIXES:
        raise ReaderError(
            f"{p}: a single {suffix} file holds one curve, but a series needs at least 2; "
            "put the curves in one folder and load the folder"
        )
    if suffix in HDF5_SUFFIXES + NPZ_SUFFIXES:
        what = (
            "empty"
            if not signature
            else "not a valid HDF5 file"
            if suffix in HDF5_SUFFIXES
            else "not a valid .npz (zip) archive"
        )
        raise ReaderError(f"{p}: the file is {what}; it may be truncated or corrupt")
    raise ReaderError(
        f"{p}: unsupported file type {suffix or '(no extension)'!r}; load a folder of "
        ".xy/.xye/.chi/.dat curves, or an .h5/.hdf5/.nxs/.npz file"
    )


def save_stack(
    stack: SpectraStack, path: str | os.PathLike[str], format: str | None = None
) -> Path:
    """Write ``stack`` as NeXus (``nexus``/``h5``), ``npz`` or an ``xy`` folder and return the path written."""
    p = Path(path).expanduser()
    if format is None:
        suffix = p.suffix.lower()
        if suffix in HDF5_SUFFIXES:
            format = "nexus"
        elif suffix in NPZ_SUFFIXES:
            format = "npz"
        elif suffix in ("", ".xy"):
            format = "xy"
        else:
            raise ValueError(
                f"{p}: cannot tell the format from the suffix {suffix!r}; use .nxs/.h5/.hdf5, "
                ".npz, a folder name without suffix, or pass format='nexus'|'npz'|'xy'"
            )
    fmt = format.lower()
    if fmt in ("nexus", "nxs", "h5", "hdf5"):
        return save_nexus(stack, p)
    if fmt == "npz":
        return _save_npz(stack, p)
    if fmt == "xy":
        return _save_xy_folder(stack, p)
    raise ValueError(f"unknown format {format!r}; use 'nexus' (or 'h5'), 'npz' or 'xy'")


# --- text folders ------------------------------------------------------------------------------
@dataclass
class _TextCurve:
    path: Path
    x: np.ndarray
    y: np.ndarray
    axis: tuple[str, str] | None  # (kind, unit) when the header says so
    wavelength: float | None


def _is_text_curve(entry: Path) -> bool:
    return (
        entry.suffix.lower() in TEXT_SUFFIXES and not entry.name.startswith(".") and entry.is_file()
    )


def _natural_key(name: str) -> list[Any]:
    # re.split with a group puts text at even and digits at odd positions, so keys always compare
    return [int(part) if i % 2 else part.lower() for i, part in enumerate(re.split(r"(\d+)", name))]


def _read_text_folder(folder: Path, variable: str | None) -> SpectraStack:
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise ReaderError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from exc
    files = sorted((e for e in entries if _is_text_curve(e)), key=lambda e: _natural_key(e.name))
    if not files:
        if not entries:
            raise ReaderError(f"{folder}: the folder is empty")
        raise ReaderError(
            f"{folder}: no curve files in the folder (looked for {', '.join(TEXT_SUFFIXES)})"
        )
    suffixes = Counter(f.suffix.lower() for f in files)
    if len(suffixes) > 1:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(suffixes.items()))
        raise ReaderError(
            f"{folder}: the folder mixes curve formats ({counts}); keep one format per folder "
            "so that no curve is loaded twice"
        )
    if len(files) < 2:
        raise ReaderError(
            f"{folder}: a series needs at least 2 curves, but the folder holds only {files[0].name}"
        )
    curves = [_read_text_curve(f) for f in files]

    declared = [c for c in curves if c.axis is not None]
    for c in declared[1:]:
        if c.axis != declared[0].axis:
            raise ReaderError(
                f"{folder}: files disagree on the x axis: {declared[0].path.name} is "
                f"{_axis_text(declared[0].axis)}, {c.path.name} is {_axis_text(c.axis)}"
            )
    kind, unit = declared[0].axis if declared else ("2theta", "deg")
    stated = [c for c in curves if c.wavelength is not None]
    for c in stated[1:]:
        # beyond rounding: one series has one wavelength (on 2θ it sets every curve's q)
        if abs(c.wavelength - stated[0].wavelength) > WAVELENGTH_RTOL * stated[0].wavelength:
            raise ReaderError(
                f"{folder}: files disagree on the wavelength: {stated[0].path.name} says "
                f"{stated[0].wavelength:.6g} Å, {c.path.name} {c.wavelength:.6g} Å; one series has "
                "one wavelength, so put curves taken at another energy in a folder of their own"
            )
    wavelength = stated[0].wavelength if stated else None

    grid = curves[0].x
    intensities = np.empty((len(curves), grid.size), dtype=np.float32)
    resampled, short = 0, 0
    lo, hi = min(grid[0], grid[-1]), max(grid[0], grid[-1])
    for i, c in enumerate(curves):
        if c.x.shape == grid.shape and np.allclose(c.x, grid, rtol=1e-9, atol=1e-12 * (hi - lo)):
            intensities[i] = c.y
            continue
        resampled += 1
        order = np.argsort(c.x)
        x_sorted = c.x[order]
        if x_sorted[0] > lo + 1e-9 * (hi - lo) or x_sorted[-1] < hi - 1e-9 * (hi - lo):
            short += 1
        intensities[i] = np.interp(grid, x_sorted, c.y[order])
    if resampled:
        message = (
            f"{folder}: {resampled} of {len(curves)} curves are on a different x grid than "
            f"{curves[0].path.name}; they were linearly resampled onto its grid"
        )
        if short:
            message += (
                f"; {short} of them do not cover its full range {lo:g}–{hi:g} and were "
                "extended with their edge values"
            )
        warnings.warn(message, UserWarning, stacklevel=3)

    metadata: dict[str, Any] = {"format": "text-folder"}
    variable_values, variable_name, variable_unit = None, INDEX_VARIABLE, ""
    csv_path = folder / METADATA_CSV
    if csv_path.is_file():
        variable_values, variable_name, variable_unit, entries = _read_metadata_csv(
            csv_path, [f.name for f in files], variable
        )
        metadata.update(entries)
    elif variable not in (None, INDEX_VARIABLE):
        raise ReaderError(
            f"{folder}: variable={variable!r} was asked for, but the folder has no {METADATA_CSV} "
            "(a CSV with a 'file' column and one column per variable)"
        )
    try:
        return SpectraStack(
            intensities=intensities,
            axis=grid,
            axis_kind=kind,
            axis_unit=unit,
            variable=variable_values,
            variable_name=variable_name,
            variable_unit=variable_unit,
            # resolved, so that `.` and `data/..` are named after the folder they mean
            name=folder.resolve().name or str(folder.resolve()),
            sources=[f.name for f in files],
            wavelength=wavelength,
            metadata=metadata,
        )
    except StackError as exc:
        raise ReaderError(f"{folder}: {exc}") from exc


def _read_text_curve(path: Path) -> _TextCurve:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReaderError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    # a byte-order mark is dropped (else a headerless file loses its first point to the
    # header); a header in Windows-1252 or Latin-1 (``µm``, ``°``) is read as such
    lines = decode_text(data)[0].splitlines()
    header: list[str] = []
    label_line: str | None = None
    expected_points: int | None = None
    start = 0
    # Fit2D .chi: title, x label, y label, number of points, then the data
    if (
        path.suffix.lower() == ".chi"
        and len(lines) >= 4
        and _CHI_POINT_COUNT.fullmatch(lines[3].strip())
    ):
        header, label_line, expected_points, start = lines[:4], lines[1], int(lines[3]), 4
    first_data = None
    for index in range(start, len(lines)):
        text = lines[index].strip()
        if not text:
            continue
        values = None if text.startswith(_COMMENTS) else _parse_numbers(text.split("#", 1)[0])
        if values is None or len(values) < 2:
            # comments, a title or column names before the data; only their start is searched
            # for the axis and wavelength, so a hostile megabyte-long line costs nothing
            header.append(text[:_HEADER_SCAN_CHARS])
            continue
        first_data = index
        break
    if first_data is None:
        raise ReaderError(
            f"{path}: no numeric columns found (expected 2 or 3 columns: x, intensity[, error])"
        )
    if _DECIMAL_COMMA_ROW.fullmatch(lines[first_data].split("#", 1)[0].strip()):
        # "10,5<tab>1234" (a European locale): read as 10.5 and 1234, not as 10, 5 and 1234
        lines = lines[:first_data] + [line.replace(",", ".") for line in lines[first_data:]]
    data = _load_rows_fast(lines[first_data:])
    if data is None:  # irregular text: parse line by line to say where and why
        data = _load_rows_checked(path, lines, first_data)
    if data.shape[1] > 3:
        raise ReaderError(
            f"{path} line {first_data + 1}: {data.shape[1]} columns; expected 2 or 3 "
            "(x, intensity[, error])"
        )
    if expected_points is not None and expected_points != data.shape[0]:
        raise ReaderError(
            f"{path}: the header says {expected_points} points but the file holds "
            f"{data.shape[0]}; the file may be truncated"
        )
    if data.shape[0] < _MIN_POINTS:
        raise ReaderError(
            f"{path}: only {data.shape[0]} data points; a curve needs at least {_MIN_POINTS}"
        )
    x, y = data[:, 0], data[:, 1]
    for values, what in ((x, "x value"), (y, "intensity")):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            line = _data_line_numbers(lines, first_data)[bad[0]]
            raise ReaderError(
                f"{path} line {line}: {what} is {values[bad[0]]} "
                f"({bad.size} non-finite values in the file); remove or interpolate them"
            )
    steps = np.diff(x)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        bad = int(np.flatnonzero(steps * np.sign(steps[0] or 1.0) <= 0)[0]) + 1
        line = _data_line_numbers(lines, first_data)[bad]
        raise ReaderError(
            f"{path} line {line}: the x axis is not strictly monotonic "
            f"({x[bad - 1]:g} then {x[bad]:g})"
        )
    return _TextCurve(
        path, x, y, _axis_from_header(path, header, label_line), _wavelength_from_header(header)
    )


def _load_rows_fast(lines: list[str]) -> np.ndarray | None:
    """Return the numeric rows parsed by numpy's C reader, or None when they are irregular."""
    first = lines[0]
    delimiter = "," if "," in first else ";" if ";" in first else None
    try:
        # one comment character keeps numpy on its fast path; "!" lines fall back to the slow one
        return np.loadtxt(lines, comments="#", delimiter=delimiter, ndmin=2)
    except ValueError:
        return None


def _load_rows_checked(path: Path, lines: list[str], first_data: int) -> np.ndarray:
    """Return the numeric rows, or raise a ReaderError naming the first bad line."""
    rows: list[list[float]] = []
    for number, raw in enumerate(lines[first_data:], start=first_data + 1):
        text = raw.strip()
        if not text or text.startswith(_COMMENTS):
            continue
        values = _parse_numbers(text.split("#", 1)[0])
        if values is None:
            raise ReaderError(f"{path} line {number}: cannot read {text[:40]!r} as numbers")
        if rows and len(values) != len(rows[0]):
            raise ReaderError(
                f"{path} line {number}: {len(values)} columns, but the lines above have "
                f"{len(rows[0])} (ragged columns)"
            )
        rows.append(values)
    return np.asarray(rows, dtype=np.float64)


def _data_line_numbers(lines: list[str], first_data: int) -> list[int]:
    """Return the 1-based line number of each data row (for error messages)."""
    return [
        number
        for number, raw in enumerate(lines[first_data:], start=first_data + 1)
        if raw.strip() and not raw.strip().startswith(_COMMENTS)
    ]


def _parse_numbers(text: str) -> list[float] | None:
    tokens = [t for t in _TOKEN_SPLIT.split(text.strip()) if t]
    try:
        return [float(t) for t in tokens]
    except ValueError:
        return None


def _axis_text(axis: tuple[str, str]) -> str:
    return f"{axis[0]} ({axis[1]})"


def _axis_from_label(label: str) -> tuple[str, str] | None:
    """Return (kind, unit) named by an axis label such as ``2th_deg`` or ``Q (1/nm)``, or None."""
    text = label.lower()
    if _TWO_THETA.search(text):
        return "2theta", "rad" if _RAD.search(text) else "deg"
    if _Q.search(text):
        return "q", "1/nm" if _NANO.search(text) else "1/A"
    if _D.search(text):
        return "d", "nm" if _NANO.search(text) else "A"
    return None


def _axis_from_header(
    path: Path, header: list[str], label_line: str | None
) -> tuple[str, str] | None:
    # the x label is the chi's second line, else the line right above the data (column names)
    label = label_line if label_line is not None else (header[-1] if header else None)
    if label is not None:
        if _UNSUPPORTED_AXIS.search(label.lower()):
            raise ReaderError(
                f"{path}: the x axis {label.strip().lstrip('#').strip()!r} is not a scattering "
                "axis; integrate to 2θ, q or d"
            )
        axis = _axis_from_label(label)
        if axis is not None:
            return axis
    for line in reversed(header):
        match = _STRONG_AXIS_TOKEN.search(line.lower())
        if match:
            return _axis_from_label(match.group(1))
    return None


def _wavelength_from_header(header: list[str]) -> float | None:
    for line in header:
        match = _WAVELENGTH.search(line)
        if match:
            wavelength = _wavelength_in_angstrom(float(match.group(1)), match.group(2))
            if wavelength is not None:
                return wavelength
    for line in header:  # no wavelength stated: a photon energy with its unit will do
        match = _ENERGY.search(line)
        if match:
            kev = float(match.group(1)) / (1000.0 if match.group(2).lower() == "ev" else 1.0)
            wavelength = energy_kev_to_wavelength(kev) if kev > 0 else math.nan
            if math.isfinite(wavelength) and 0.005 < wavelength < 20:
                return wavelength
    return None


def _wavelength_in_angstrom(value: float, unit: str) -> float | None:
    unit = unit.lower()
    if unit.startswith("nm") or unit.startswith("nano"):
        value *= 10.0
    elif unit.startswith("pm"):
        value /= 100.0
    elif unit in ("m", "meter", "metre", "meters", "metres") or (not unit and value < 1e-6):
        value *= 1e10  # pyFAI headers and .poni files store metres
    return value if math.isfinite(value) and 0.005 < value < 20 else None


def _bracketed_unit(header: str) -> tuple[str, str] | None:
    """Return (name, unit) of ``name (unit)`` or ``name [unit]``, else None; linear time.

    (The regular expression this replaces backtracked for seconds on a long header cell.)
    """
    if not header.endswith((")", "]")):
        return None
    body = header[:-1]
    after_last_close = max(body.rfind(")"), body.rfind("]")) + 1
    opens = [
        i for i in (body.find("(", after_last_close), body.find("[", after_last_close)) if i >= 0
    ]
    if not opens:
        return None
    start = min(opens)
    return header[:start].strip(), body[start + 1 :].strip()


def _split_name_unit(header: str) -> tuple[str, str]:
    """Return (name, unit) from a column header like ``pressure_GPa``, ``pressure (GPa)`` or ``P/GPa``."""
    header = header.strip()
    bracketed = _bracketed_unit(header)
    if bracketed is not None and bracketed[0]:
        return bracketed
    for separator in ("_", "/"):
        if separator in header:
            base, suffix = (part.strip() for part in header.rsplit(separator, 1))
            unit = _known_unit(suffix)
            if base and unit:
                return base, unit
    return header, ""


def _known_unit(text: str) -> str | None:
    """Return the canonical spelling of a unit in ``_VARIABLE_UNITS`` (``gpa`` -> ``GPa``), or None."""
    return text if text in _VARIABLE_UNITS else _VARIABLE_UNITS_LOWER.get(text.lower())


# --- metadata.csv ------------------------------------------------------------------------------
# headers of the file-name column, compared without case, spaces, "_", "-" and "."; in this order
# fmt: off
_FILE_COLUMNS = (
    "file", "filename", "files", "filenames", "fname", "filepath", "path", "image", "imagename",
    "imagefile", "img", "name",
)
# words of a column name that make it a pressure: "pressure", "P", "p_GPa", "P (GPa)", "P_Au"...
_PRESSURE_GAUGES = {
    "ruby", "au", "gold", "pt", "ne", "nacl", "mgo", "re", "w", "cu", "ag", "mo", "sample",
    "nominal", "measured", "meas", "calc", "set", "target", "eos", "cell", "dac",
}
# ... unless a word says it is about something else: "pressure medium", "pressure_err"
_NOT_THE_QUANTITY = {
    "medium", "media", "transmitting", "ptm", "gauge", "calibrant", "marker", "standard",
    "method", "note", "notes", "comment", "comments", "err", "error", "errors", "sigma", "std",
    "stdev", "stddev", "uncertainty", "unc", "esd", "delta", "rate", "step",
}
# names made only of these words count acquisitions ("frame", "image number", "#", "n")
_COUNTER_WORDS = {
    "frame", "frames", "index", "idx", "image", "images", "img", "number", "num", "no", "nr",
    "n", "#", "id", "scan", "scans", "point", "seq", "sequence", "count", "counter", "file",
    "run", "shot", "acq", "acquisition", "step",
}
# fmt: on
_UNIT_WORDS = {u.lower() for u in _VARIABLE_UNITS}
_NAME_WORD = re.compile(r"[a-z0-9]+|#")
_COMPRESSED = re.compile(r"\.(gz|bz2|xz|zst|z)$", re.IGNORECASE)
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,9}$")  # not ".5" in "f_1.5"
# a number followed by a unit: "12.5 GPa", "12.5GPa", "300 K", "25 °C", "12,5" (decimal comma)
_CELL_NUMBER = re.compile(
    r"([-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?)\s*"
    r"((?:[^\W\d_]|[°%])(?:[^\W_]|[°%/^*·.\-])*)?"
)
_MAX_CELL_CHARS = 64  # a number with its unit is short; longer cells are text


@dataclass
class _CsvTable:
    path: Path
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (line number, stripped cells); blank rows left out
    delimiter: str
    encoding: str


@dataclass
class _CsvColumn:
    values: list[float | None] | None  # None when the column is not numeric
    unit: str  # the unit written in the cells, "" when none
    problem: tuple[int, str] | None  # (line, why) for the first cell that is not a number
    has_digits: bool  # some cell holds a digit: the column was probably meant to be numeric


def _read_csv_table(csv_path: Path) -> _CsvTable:
    """Read a CSV as spreadsheets and other programs write it; see docs/formats.md."""
    try:
        data = csv_path.read_bytes()
    except OSError as exc:
        raise ReaderError(f"{csv_path}: cannot read the file ({exc.strerror or exc})") from exc
    text, encoding = decode_text(data)
    lines = text.splitlines()
    skipped, delimiter = 0, None
    if lines and re.fullmatch(r"sep=[,;\t|]", lines[0].strip("\r\n "), re.IGNORECASE):
        # Excel's "sep=;" line: the delimiter, then the table
        delimiter, lines, skipped = lines[0].strip("\r\n ")[4], lines[1:], 1
    if delimiter is None:
        delimiter = _guess_delimiter(lines)
    try:
        reader = csv.reader(lines, delimiter=delimiter)
        table = [(reader.line_num + skipped, row) for row in reader]
    except csv.Error as exc:  # e.g. a cell longer than csv.field_size_limit()
        raise ReaderError(f"{csv_path}: not a readable CSV file ({exc})") from exc
    if not table:
        raise ReaderError(f"{csv_path}: the file is empty; it needs a 'file' column")
    header = [h.strip() for h in table[0][1]]
    rows = []
    for number, row in table[1:]:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ReaderError(
                f"{csv_path} line {number}: {len(row)} cells, but the header has {len(header)}"
            )
        rows.append((number, [cell.strip() for cell in row]))
    return _CsvTable(csv_path, header, rows, delimiter, encoding)


def _guess_delimiter(lines: list[str]) -> str:
    """Tab, ';' or ',': the first that splits every row into as many cells as the header.

    Tab and ';' come first: a European ``file;pressure (GPa, ruby)`` header or ``12,5`` cells
    hold commas that are no separators.
    """
    first = lines[0] if lines else ""
    for delimiter in ("\t", ";", ","):
        if delimiter not in first:
            continue
        try:
            rows = [r for r in csv.reader(lines, delimiter=delimiter) if any(c.strip() for c in r)]
        except csv.Error:
            continue
        if rows and len(rows[0]) >= 2 and all(len(r) == len(rows[0]) for r in rows):
            return delimiter
    return next((d for d in (",", ";", "\t") if d in first), ",")


def _name_key(header: str) -> str:
    return re.sub(r"[\s_.\-]+", "", header.lower())


def _file_column_candidates(header: list[str]) -> list[int]:
    """Columns that may hold the file names, most likely first (``file`` before ``name``)."""
    keys = [_name_key(h) for h in header]
    return [col for alias in _FILE_COLUMNS for col, key in enumerate(keys) if key == alias]


def _name_words(header: str) -> list[str]:
    """Lower-case words of a column name without its unit: ``Pressure (GPa)`` -> ``[pressure]``."""
    name = _split_name_unit(header[:200])[0].lower()
    return [w for w in _NAME_WORD.findall(name) if w not in _UNIT_WORDS]


def _is_pressure_name(header: str) -> bool:
    words = _name_words(header)
    if not words or any(w in _NOT_THE_QUANTITY for w in words):
        return False
    if any(w.startswith("pressure") or w == "press" for w in words):
        return True
    return words[0] == "p" and (
        len(words) == 1 or (len(words) == 2 and words[1] in _PRESSURE_GAUGES)
    )


def _is_counter_name(header: str) -> bool:
    words = _name_words(header)
    return bool(words) and all(w in _COUNTER_WORDS for w in words)


def _curves_named_by(
    cell: str, by_name: Mapping[str, str], by_stem: Mapping[str, list[str]]
) -> list[str]:
    """The curve files a metadata.csv name stands for: itself, or the curve with its stem.

    ``f_00001.xy`` names itself; ``f_00001`` (no extension), ``f_00001.tif``, ``.cbf``, ``.h5``
    or ``.cbf.gz`` (the raw image a program such as Dioptas integrated into ``f_00001.xy``)
    name the curve file with stem ``f_00001``. A path keeps only its last part. More than one
    result means the name is ambiguous.
    """
    name = re.split(r"[\\/]", cell.strip())[-1]
    if name in by_name:
        return [by_name[name]]
    found = list(by_stem.get(name, []))
    bare = _EXTENSION.sub("", _COMPRESSED.sub("", name))
    if bare != name:
        found += [f for f in by_stem.get(bare, []) if f not in found]
    return found


def _match_file_column(
    table: _CsvTable, col: int, file_names: list[str]
) -> tuple[dict[str, tuple[int, list[str]]], list[str], ReaderError | None]:
    """Rows by the curve file they name, the names that match no file, and the first other error."""
    by_name = {n: n for n in file_names}
    by_stem: dict[str, list[str]] = {}
    for n in file_names:
        by_stem.setdefault(Path(n).stem, []).append(n)
    by_file: dict[str, tuple[int, list[str]]] = {}
    unknown: list[str] = []
    for number, cells in table.rows:
        cell = cells[col]
        found = _curves_named_by(cell, by_name, by_stem)
        if not found:
            unknown.append(cell)
            continue
        if len(found) > 1:
            return (
                by_file,
                unknown,
                ReaderError(
                    f"{table.path} line {number}: {cell!r} is ambiguous: it can name "
                    f"{', '.join(found)}; write the curve file's full name"
                ),
            )
        if found[0] in by_file:
            earlier, earlier_cells = by_file[found[0]]
            what = (
                f"{cell} is listed twice"
                if earlier_cells[col] == cell
                else f"{cell} and {earlier_cells[col]} (line {earlier}) both name {found[0]}"
            )
            return by_file, unknown, ReaderError(f"{table.path} line {number}: {what}")
        by_file[found[0]] = (number, cells)
    return by_file, unknown, None


def _cell_number(cell: str, decimal_comma: bool) -> tuple[float, str] | None:
    """Return (value, unit) of a cell such as ``12.5``, ``12.5 GPa``, ``300K``, ``12,5``; else None.

    A decimal comma is read only when ``decimal_comma`` (a ';' or tab separated file).
    """
    try:
        return float(cell), ""
    except ValueError:
        pass
    match = _CELL_NUMBER.fullmatch(cell) if len(cell) <= _MAX_CELL_CHARS else None
    if match is None:
        return None
    number, unit = match.group(1), match.group(2) or ""
    if "," in number:
        if not decimal_comma:
            return None
        number = number.replace(",", ".")
    try:
        value = float(number)
    except ValueError:
        return None
    return value, _known_unit(unit) or unit


def _parse_column(table: _CsvTable, col: int, ordered: list[tuple[int, list[str]]]) -> _CsvColumn:
    """Read one column as numbers with at most one unit, or say which cell is not one."""
    decimal_comma = table.delimiter in (";", "\t")
    header_unit = _split_name_unit(table.header[col])[1]
    values: list[float | None] = []
    unit: str | None = None
    unit_line = 0
    problem: tuple[int, str] | None = None
    has_digits = False
    for number, cells in ordered:
        cell = cells[col]
        if not cell:
            values.append(None)
            continue
        has_digits = has_digits or any("0" <= ch <= "9" for ch in cell[:_MAX_CELL_CHARS])
        if problem is not None:
            continue
        parsed = _cell_number(cell, decimal_comma)
        if parsed is None:
            problem = (number, f"{cell[:40]!r} is not a number")
            if "," in cell and not decimal_comma and _cell_number(cell, True) is not None:
                problem = (number, f"{cell!r} has a decimal comma, read only in ';' or tab "
                                   "separated files")  # fmt: skip
            continue
        value, cell_unit = parsed
        if unit is None:
            unit, unit_line = cell_unit, number
            if header_unit and cell_unit and cell_unit != header_unit:
                problem = (number, f"{cell!r} is in {cell_unit}, but the header says {header_unit}")
        elif cell_unit != unit:
            problem = (
                number,
                f"{cell!r} is in {cell_unit or 'no unit'}, but line {unit_line} is in "
                f"{unit or 'no unit'}; write one unit for the whole column",
            )
        values.append(value)
    numeric = unit is not None and problem is None
    return _CsvColumn(values if numeric else None, unit or "", problem, has_digits)


def _read_metadata_csv(
    csv_path: Path, file_names: list[str], variable: str | None
) -> tuple[np.ndarray | None, str, str, dict[str, Any]]:
    """Return (variable values, name, unit, entries for stack.metadata) from a folder's metadata.csv."""
    table = _read_csv_table(csv_path)
    header = table.header
    candidates = _file_column_candidates(header)
    if not candidates:
        raise ReaderError(
            f"{csv_path}: no 'file' column (nor 'filename', 'image' or 'name') naming the curve "
            f"files (columns: {', '.join(header)})"
        )
    attempts = [(col, *_match_file_column(table, col, file_names)) for col in candidates]
    # the first column that names every curve file and nothing else, else the first that names
    # no unknown file, else the most likely one (for its error message)
    file_col, by_file, unknown, error = min(
        attempts,
        key=lambda a: (bool(a[2]) or a[3] is not None, len(a[1]) < len(file_names)),
    )
    if error is not None:
        raise error
    which = "" if _name_key(header[file_col]) == "file" else f" (column {header[file_col]!r})"
    if unknown:
        raise ReaderError(
            f"{csv_path}: names files that are not in the folder{which}: "
            f"{', '.join(unknown[:20])}{' ...' if len(unknown) > 20 else ''}"
        )
    missing = [n for n in file_names if n not in by_file]
    if missing:
        raise ReaderError(
            f"{csv_path}: does not list these curve files{which}: {', '.join(missing[:20])}"
            f"{' ...' if len(missing) > 20 else ''}"
        )
    ordered = [by_file[n] for n in file_names]

    data_columns = [c for c in range(len(header)) if c != file_col]
    parsed = {c: _parse_column(table, c, ordered) for c in data_columns}
    columns: dict[str, list[Any]] = {
        header[c]: parsed[c].values
        if parsed[c].values is not None
        else [cells[c] for _, cells in ordered]
        for c in data_columns
    }
    numeric = [c for c in data_columns if parsed[c].values is not None]

    if variable == INDEX_VARIABLE:
        chosen = None
    elif variable is None:
        chosen = _default_variable_column(csv_path, header, data_columns, parsed)
    else:
        matches = [
            c for c in data_columns if variable in (header[c], _split_name_unit(header[c])[0])
        ]
        if not matches:
            raise ReaderError(
                f"{csv_path}: no column {variable!r} (numeric columns: "
                f"{', '.join(header[c] for c in numeric) or 'none'}); or pass {_INDEX_HINT}"
            )
        chosen = matches[0]
        if chosen not in numeric:
            line, why = parsed[chosen].problem or (0, "it is empty")
            raise ReaderError(
                f"{csv_path}: column {header[chosen]!r} is not numeric"
                + (f" (line {line}: {why})" if line else f" ({why})")
                + f"; pass another column, or {_INDEX_HINT}"
            )
    if chosen is None:
        return None, INDEX_VARIABLE, "", _csv_metadata(columns, parsed, header, table)
    values = []
    for (number, cells), value in zip(ordered, parsed[chosen].values or [], strict=True):
        if value is None or not math.isfinite(value):
            raise ReaderError(
                f"{csv_path} line {number}: no finite value of {header[chosen]!r} "
                f"(got {cells[chosen]!r}); correct it, or pass {_INDEX_HINT}"
            )
        values.append(value)
    name, unit = _split_name_unit(header[chosen])
    return (
        np.asarray(values, dtype=np.float64),
        name,
        unit or parsed[chosen].unit,
        _csv_metadata(columns, parsed, header, table),
    )


def _default_variable_column(
    csv_path: Path, header: list[str], data_columns: list[int], parsed: Mapping[int, _CsvColumn]
) -> int | None:
    """The column that is the external variable when ``variable=`` names none.

    A column named like a pressure wins; else the first numeric column that does not count
    acquisitions (``frame``, ``index``, ``image number``, ``#``...); else the first numeric one.
    A pressure column holding numbers that cannot be read is an error, never skipped.
    """
    numeric = [c for c in data_columns if parsed[c].values is not None]
    pressure = [c for c in data_columns if _is_pressure_name(header[c])]
    chosen = next((c for c in pressure if c in numeric), None)
    if chosen is not None:
        return chosen
    for c in pressure:
        if parsed[c].has_digits and parsed[c].problem is not None:
            line, why = parsed[c].problem
            raise ReaderError(
                f"{csv_path} line {line}: column {header[c]!r} is named like a pressure but is "
                f"not numeric: {why}; correct it, pass variable= naming another column, "
                f"or {_INDEX_HINT}"
            )
    chosen = next((c for c in numeric if not _is_counter_name(header[c])), None)
    if chosen is None and numeric:
        chosen = numeric[0]
    if pressure:
        warnings.warn(
            f"{csv_path}: column {header[pressure[0]]!r} holds no numbers, so the external "
            f"variable is {repr(header[chosen]) if chosen is not None else 'the index'}",
            UserWarning,
            stacklevel=5,  # the caller of load_stack
        )
    return chosen


def _csv_metadata(
    columns: dict[str, list[Any]],
    parsed: Mapping[int, _CsvColumn],
    header: list[str],
    table: _CsvTable,
) -> dict[str, Any]:
    """The stack.metadata entries of a metadata.csv: its columns, units found in cells, encoding."""
    entries: dict[str, Any] = {"metadata_csv": columns}
    units = {header[c]: p.unit for c, p in parsed.items() if p.values is not None and p.unit}
    if units:
        entries["metadata_csv_units"] = units
    if not table.encoding.startswith("utf-8"):
        entries["metadata_csv_encoding"] = table.encoding
    return entries


def _metadata_csv_value(csv_path: Path, file_name: str, variable_name: str) -> float | None:
    """The value of ``variable_name`` for one curve file in a metadata.csv, or None.

    For live folders, whose metadata.csv may list files that are not there yet and may be
    rewritten while it is read: every problem gives None (the caller falls back).
    """
    try:
        table = _read_csv_table(csv_path)
    except ReaderError:
        return None
    columns = [
        c for c, h in enumerate(table.header) if variable_name in (h, _split_name_unit(h)[0])
    ]
    by_name, by_stem = {file_name: file_name}, {Path(file_name).stem: [file_name]}
    for file_col in _file_column_candidates(table.header):
        rows = [
            (number, cells)
            for number, cells in table.rows
            if _curves_named_by(cells[file_col], by_name, by_stem) == [file_name]
        ]
        data_columns = [c for c in columns if c != file_col]
        if len(rows) == 1 and data_columns:
            column = _parse_column(table, data_columns[0], table.rows)
            row = table.rows.index(rows[0])
            value = column.values[row] if column.values is not None else None
            return value if value is not None and math.isfinite(value) else None
    return None


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


# --- HDF5 / NeXus / Dioptas ------------------------------------------------------------------------
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


def _strings(dataset: h5py.Dataset) -> list[str]:
    return [_attr_text(v) or "" for v in np.asarray(dataset[()]).ravel()]


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
        f"; {empty} of {n_points} bins hold it in every curve (stack.metadata['empty_bins'])"
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


# --- npz -----------------------------------------------------------------------------------------
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
    sources = [_attr_text(s) or "" for s in arrays["names"].ravel()] if "names" in arrays else None
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


# --- writers ---------------------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def _dataset_name(name: str, taken: set[str]) -> str:
    clean = re.sub(r"[^A-Za-z0-9_]", "_", name.strip()) or "variable"
    if clean[0].isdigit():
        clean = "_" + clean
    while clean in taken:
        clean += "_variable"
    return clean


def save_nexus(stack: SpectraStack, path: str | os.PathLike[str]) -> Path:
    """Write ``stack`` as a NeXus HDF5 file (NXentry/NXdata), atomically, and return its path."""
    from . import __version__

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


def _save_xy_folder(stack: SpectraStack, folder: Path) -> Path:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(
            f"{folder}: already exists and is not an empty folder; choose a new folder"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.tmp")
    temporary.mkdir()
    try:
        stem = re.sub(r"[^\w.-]", "_", stack.name) or "curve"
        column = _TEXT_AXIS_TOKENS[(stack.axis_kind, stack.axis_unit)]
        # no free text (such as the series name) in the header: the reader looks there for
        # the axis kind and the wavelength, and a name like "q_wavelength1" would fool it
        header = []
        if stack.wavelength is not None:
            header.append(f"Wavelength: {stack.wavelength:.17g} A")  # Å: exact round trip
        header.append(f"{column} I")
        names = []
        for start, block in stack.iter_chunks(1024):
            for offset, curve in enumerate(block):
                name = f"{stem}_{start + offset}.xy"
                names.append(name)
                np.savetxt(
                    temporary / name,
                    np.column_stack([stack.axis, curve.astype(np.float64)]),
                    fmt=["%.17g", "%.9g"],
                    header="\n".join(header),
                )
        with open(temporary / METADATA_CSV, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file", stack.variable_label])
            writer.writerows(
                [name, f"{value:.17g}"] for name, value in zip(names, stack.variable, strict=True)
            )
        if folder.exists():
            folder.rmdir()
        os.replace(temporary, folder)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return folder


# --- labels CSV ------------------------------------------------------------------------------------
def read_labels_csv(path: str | os.PathLike[str]) -> dict[str, dict[int, str]]:
    """Return the labels of a ``dataset,index,label`` CSV as ``{dataset: {index: label}}``."""
    p = Path(path).expanduser()
    try:
        text = decode_text(p.read_bytes())[0]
    except FileNotFoundError as exc:
        raise ReaderError(f"{p}: no such labels file") from exc
    except OSError as exc:
        raise ReaderError(f"{p}: cannot read the labels file ({exc})") from exc
    table = list(csv.reader(text.splitlines()))
    if not table:
        raise ReaderError(
            f"{p}: the labels file is empty; it needs columns {','.join(LABEL_COLUMNS)}"
        )
    header = [h.strip().lower() for h in table[0]]
    missing = [c for c in LABEL_COLUMNS if c not in header]
    if missing:
        raise ReaderError(
            f"{p}: missing column(s) {', '.join(missing)}; a labels file has columns "
            f"{','.join(LABEL_COLUMNS)} (found: {','.join(header)})"
        )
    col = {c: header.index(c) for c in LABEL_COLUMNS}
    labels: dict[str, dict[int, str]] = {}
    first_seen: dict[tuple[str, int], int] = {}
    for number, row in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise ReaderError(
                f"{p} line {number}: {len(row)} cells, but the header has {len(header)}"
            )
        dataset, index_text, label = (row[col[c]].strip() for c in LABEL_COLUMNS)
        if not dataset:
            raise ReaderError(f"{p} line {number}: empty dataset name")
        try:
            index = int(index_text)
        except ValueError:
            raise ReaderError(
                f"{p} line {number}: index {index_text!r} is not an integer"
            ) from None
        if index < 0:
            raise ReaderError(
                f"{p} line {number}: index {index} is negative; indices are 0-based rows"
            )
        if not label:
            raise ReaderError(f"{p} line {number}: empty label for {dataset}[{index}]")
        previous = labels.setdefault(dataset, {}).get(index)
        if previous is not None and previous != label:
            raise ReaderError(
                f"{p} line {number}: {dataset}[{index}] is labelled {label!r} here but "
                f"{previous!r} on line {first_seen[(dataset, index)]}"
            )
        labels[dataset][index] = label
        first_seen.setdefault((dataset, index), number)
    return labels


def write_labels_csv(
    path: str | os.PathLike[str],
    rows: Mapping[str, Mapping[int, str]] | Iterable[tuple[str, int, str]],
) -> Path:
    """Write labels (``{dataset: {index: label}}`` or ``(dataset, index, label)`` rows) as CSV; return the path."""
    if isinstance(rows, Mapping):
        items = [
            (dataset, index, label)
            for dataset, by_index in rows.items()
            for index, label in sorted(by_index.items())
        ]
    else:
        items = list(rows)
    checked = []
    for dataset, index, label in items:
        if not str(dataset).strip():
            raise ValueError(f"empty dataset name in label row {(dataset, index, label)}")
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or index < 0:
            raise ValueError(f"index {index!r} of {dataset} is not a 0-based integer row")
        if not str(label).strip():
            raise ValueError(f"empty label for {dataset}[{index}]")
        checked.append((str(dataset), int(index), str(label).strip()))

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(LABEL_COLUMNS)
            writer.writerows(checked)

    return atomic_write(Path(path).expanduser(), write)


def write_predictions_csv(
    path: str | os.PathLike[str],
    results: Iterable[tuple[SpectraStack, Sequence[str], np.ndarray]],
    classes: Sequence[str],
) -> Path:
    """Write per-curve predictions as CSV ``dataset,index,<variable>,label,p_<class>...``; return the path.

    ``results`` holds ``(stack, predicted labels, probabilities)`` per series. The external
    variable column is named after the series' variable (``variable`` when they differ).
    """
    results = list(results)
    names = {stack.variable_name for stack, _, _ in results}
    variable_column = names.pop() if len(names) == 1 else "variable"
    header = ["dataset", "index", variable_column, "label", *(f"p_{c}" for c in classes)]

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for stack, predicted, proba in results:
                proba = np.asarray(proba)
                for i in range(stack.n_curves):
                    writer.writerow(
                        [stack.name, i, f"{stack.variable[i]:.6g}", predicted[i]]
                        + [f"{p:.6f}" for p in proba[i]]
                    )

    return atomic_write(Path(path).expanduser(), write)
