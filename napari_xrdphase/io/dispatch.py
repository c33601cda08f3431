"""Open and save a series whatever its format: ``load_stack``, ``can_read``, ``save_stack``."""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from ..stack import (
    SpectraStack,
)
from ._common import HDF5_SUFFIXES, NPZ_SUFFIXES, TEXT_SUFFIXES, ReaderError
from .hdf5 import _read_hdf5, save_nexus
from .npz import _read_npz, _save_npz
from .text_folder import _is_text_curve, _read_text_folder, _save_xy_folder

_ZIP_SIGNATURE = b"PK\x03\x04"

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


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
