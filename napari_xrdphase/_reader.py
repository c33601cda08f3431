"""napari reader contribution: a folder of curves or an HDF5/NeXus/npz file → Image layer."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._layer_data import SOURCE_PATH_KEY, stack_to_layer_data
from .io import can_read, load_stack


def get_reader(path: str | list[str]) -> Callable[[Any], list] | None:
    """Return a reader for ``path`` when it is a diffraction series this plugin reads, else None."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths or not all(can_read(p) for p in paths):
        return None
    return read_series


def read_series(path: str | list[str]) -> list[tuple]:
    """Return one Image layer-data tuple per series in ``path`` (a path or a list of paths)."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    return [
        stack_to_layer_data(
            load_stack(p), extra={SOURCE_PATH_KEY: str(Path(p).expanduser().absolute())}
        )
        for p in paths
    ]
