"""File helpers without Qt or napari.

Atomic writes (a reader never sees a half-written model, label or result file), and decoding
of text files written by other programs.
"""

from __future__ import annotations

import codecs
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write through ``write(temporary_path)`` next to ``path``, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and durably (fsync before the rename)."""

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    return atomic_write(path, write)


# (byte-order mark, codec) of the UTF-16/32 files Windows tools write (Excel's "Unicode Text");
# UTF-32 first: its little-endian mark starts with UTF-16's
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes) -> tuple[str, str]:
    """Return the text of a file written by another program, and the encoding it was read as.

    UTF-8, with or without the byte-order mark Windows tools put first (the mark is dropped, so
    it never hides a first data value); UTF-16/32 with a byte-order mark; else Windows-1252,
    what Excel's "CSV (Comma delimited)" writes on Western Windows (``°C``, ``µm``); else
    Latin-1, which decodes any bytes.
    """
    for bom, codec in _WIDE_BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace").lstrip("\ufeff"), codec
    encodings = ("utf-8", "cp1252")
    if data.startswith(codecs.BOM_UTF8):
        data, encodings = data[len(codecs.BOM_UTF8) :], ("utf-8-sig", "cp1252")
    for encoding in encodings:
        try:
            # "utf-8-sig" on the rest drops a doubled mark, as some converters write
            return data.decode("utf-8-sig" if encoding.startswith("utf") else encoding), encoding
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


class OutputError(ValueError):
    """Writing to this path would destroy something the user made."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    overwrite: bool = False,
    overwrite_hint: str = "give --overwrite to replace it",
) -> Path:
    """Return ``path`` (expanded) when writing it loses nothing the user made; else raise ``OutputError``.

    Refused: one of ``inputs`` (data files or folders, labels, model), a curve file or the
    ``metadata.csv`` inside an input folder, and any existing file unless ``overwrite``.
    """
    from .io import METADATA_CSV, TEXT_SUFFIXES

    out = Path(path).expanduser()
    resolved = out.resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).expanduser()
        if _same_file(out, source) or resolved == source.resolve():
            raise OutputError(
                f"{out} is one of the inputs (a series, the labels or the model); write to another file"
            )
        part_of_series = out.suffix.lower() in TEXT_SUFFIXES or out.name.lower() == METADATA_CSV
        if source.is_dir() and resolved.parent == source.resolve() and part_of_series:
            raise OutputError(
                f"{out} would become part of the input series {source}; write elsewhere"
            )
    if out.is_dir():
        raise OutputError(f"{out} is a folder; give a file name")
    if out.exists() and not overwrite:
        raise OutputError(f"{out} exists and is kept; {overwrite_hint}")
    return out
