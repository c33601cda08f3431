"""Folders of text curves (``.xy``, ``.xye``, ``.chi`` Fit2D, ``.dat``): the reader and the ``.xy`` folder writer."""

from __future__ import annotations

import csv
import os
import re
import shutil
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._files import decode_text
from ..stack import (
    SpectraStack,
    StackError,
)
from ._common import INDEX_VARIABLE, METADATA_CSV, TEXT_SUFFIXES, WAVELENGTH_RTOL, ReaderError
from .metadata_csv import _read_metadata_csv
from .units import _axis_from_header, _axis_text, _wavelength_from_header

# a data row written with decimal commas: 2 or 3 numbers apart by spaces, tabs or ";", the first
# with one comma between digits ("10,5\t1234"); a comma-separated row never looks like this
_DECIMAL_COMMA_ROW = re.compile(
    r"[-+]?\d+,\d+(?:[eE][-+]?\d+)?(?:[ \t]*;[ \t]*|[ \t]+)[-+]?\d+(?:,\d+)?(?:[eE][-+]?\d+)?"
    r"(?:(?:[ \t]*;[ \t]*|[ \t]+)[-+]?\d+(?:,\d+)?(?:[eE][-+]?\d+)?)?"
)

_COMMENTS = ("#", "!")

_TOKEN_SPLIT = re.compile(r"[\s,;]+")

_CHI_POINT_COUNT = re.compile(r"[0-9]{1,15}")  # ASCII only: "²".isdigit() is True

_HEADER_SCAN_CHARS = 1024  # real header lines are short

# (axis kind, unit) <-> the pyFAI/Dioptas column name used in text headers
_TEXT_AXIS_TOKENS = {
    ("2theta", "deg"): "2th_deg",
    ("2theta", "rad"): "2th_rad",
    ("q", "1/A"): "q_A^-1",
    ("q", "1/nm"): "q_nm^-1",
    ("d", "A"): "d_A",
    ("d", "nm"): "d_nm",
}

_MIN_POINTS = 8  # SpectraStack's lower limit


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


def _read_text_curve(path: Path, data: bytes | None = None) -> _TextCurve:
    """Read one curve file; ``data`` is its content when the caller has read it already."""
    if data is None:
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
