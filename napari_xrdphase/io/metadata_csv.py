"""``metadata.csv`` beside a folder of curves: the file column and the external variable."""

from __future__ import annotations

import csv
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._files import decode_text
from ._common import _INDEX_HINT, _VARIABLE_UNITS, INDEX_VARIABLE, ReaderError
from .units import _known_unit, _split_name_unit

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


def _read_csv_table(csv_path: Path, data: bytes | None = None) -> _CsvTable:
    """Read a CSV as spreadsheets and other programs write it; see docs/formats.md.

    ``data`` is the file's content when the caller has read it already.
    """
    if data is None:
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
        cells = [cell.strip() for cell in row]
        if cells == header:  # a writer that rewrote the file without truncating it, or appended
            raise ReaderError(f"{csv_path} line {number}: repeats the header line")
        rows.append((number, cells))
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


def _match_file_rows(
    table: _CsvTable, file_names: list[str], *, partial: bool = False
) -> tuple[int, dict[str, tuple[int, list[str]]]]:
    """The file-name column and the row naming each curve file; a ReaderError for anything wrong.

    ``partial`` (live mode, a folder still filling up) lets rows name files that are not there
    yet and files go unlisted; every other check is batch mode's.
    """
    csv_path, header = table.path, table.header
    candidates = _file_column_candidates(header)
    if not candidates:
        raise ReaderError(
            f"{csv_path}: no 'file' column (nor 'filename', 'image' or 'name') naming the curve "
            f"files (columns: {', '.join(header)})"
        )
    attempts = [(col, *_match_file_column(table, col, file_names)) for col in candidates]
    if partial:  # the column that names the most curve files without an error
        file_col, by_file, unknown, error = min(
            attempts, key=lambda a: (a[3] is not None, -len(a[1]))
        )
    else:
        # the first column that names every curve file and nothing else, else the first that
        # names no unknown file, else the most likely one (for its error message)
        file_col, by_file, unknown, error = min(
            attempts,
            key=lambda a: (bool(a[2]) or a[3] is not None, len(a[1]) < len(file_names)),
        )
    if error is not None:
        raise error
    if partial:
        return file_col, by_file
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
    return file_col, by_file


def _named_column(
    table: _CsvTable, data_columns: list[int], parsed: Mapping[int, _CsvColumn], variable: str
) -> int:
    """The column ``variable=`` names (with or without its unit); a ReaderError unless numeric."""
    csv_path, header = table.path, table.header
    numeric = [c for c in data_columns if parsed[c].values is not None]
    matches = [c for c in data_columns if variable in (header[c], _split_name_unit(header[c])[0])]
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
    return chosen


def _finite_value(
    table: _CsvTable, column: int, number: int, cells: list[str], value: float | None
) -> float:
    if value is None or not math.isfinite(value):
        raise ReaderError(
            f"{table.path} line {number}: no finite value of {table.header[column]!r} "
            f"(got {cells[column]!r}); correct it, or pass {_INDEX_HINT}"
        )
    return value


def _read_metadata_csv(
    csv_path: Path, file_names: list[str], variable: str | None
) -> tuple[np.ndarray | None, str, str, dict[str, Any]]:
    """Return (variable values, name, unit, entries for stack.metadata) from a folder's metadata.csv."""
    table = _read_csv_table(csv_path)
    header = table.header
    file_col, by_file = _match_file_rows(table, file_names)
    ordered = [by_file[n] for n in file_names]

    data_columns = [c for c in range(len(header)) if c != file_col]
    parsed = {c: _parse_column(table, c, ordered) for c in data_columns}
    columns: dict[str, list[Any]] = {
        header[c]: parsed[c].values
        if parsed[c].values is not None
        else [cells[c] for _, cells in ordered]
        for c in data_columns
    }

    if variable == INDEX_VARIABLE:
        chosen = None
    elif variable is None:
        chosen = _default_variable_column(csv_path, header, data_columns, parsed)
    else:
        chosen = _named_column(table, data_columns, parsed, variable)
    if chosen is None:
        return None, INDEX_VARIABLE, "", _csv_metadata(columns, parsed, header, table)
    values = [
        _finite_value(table, chosen, number, cells, value)
        for (number, cells), value in zip(ordered, parsed[chosen].values or [], strict=True)
    ]
    name, unit = _split_name_unit(header[chosen])
    return (
        np.asarray(values, dtype=np.float64),
        name,
        unit or parsed[chosen].unit,
        _csv_metadata(columns, parsed, header, table),
    )


def _read_metadata_csv_partial(
    csv_path: Path, file_names: list[str], variable: str, data: bytes | None = None
) -> dict[str, float]:
    """The value of ``variable`` for each curve file a growing folder's metadata.csv lists so far.

    Live mode's reading of the file: every check of batch mode (``_read_metadata_csv``), with a
    ReaderError naming the line, except that rows may name curve files that have not arrived yet
    and curve files may not be listed yet (they are left out of the result). Every cell of the
    column is checked, also in rows of files still to come, so that a repeated header line or
    text in the column is an error at once. ``data`` is the file's content, when read already.
    """
    table = _read_csv_table(csv_path, data)
    file_col, by_file = _match_file_rows(table, file_names, partial=True)
    data_columns = [c for c in range(len(table.header)) if c != file_col]
    parsed = {c: _parse_column(table, c, table.rows) for c in data_columns}
    chosen = _named_column(table, data_columns, parsed, variable)
    by_line = dict(zip((n for n, _ in table.rows), parsed[chosen].values or [], strict=True))
    return {
        name: _finite_value(table, chosen, number, cells, by_line[number])
        for name, (number, cells) in by_file.items()
    }


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
