"""napari writer contribution: an Image layer of a diffraction series → NeXus HDF5."""

from __future__ import annotations

from typing import Any

from ._files import OutputError, check_output_path
from ._layer_data import LIVE_PATH_KEY, METADATA_KEY, SOURCE_PATH_KEY, stack_from_layer
from .io import save_stack


class _LayerView:
    """Just enough of a napari layer for ``stack_from_layer`` from (data, attributes)."""

    def __init__(self, data: Any, attributes: dict[str, Any]) -> None:
        self.data = data
        self.name = attributes.get("name", "series")
        self.metadata = attributes.get("metadata", {})
        self.scale = attributes.get("scale", (1.0, 1.0))
        self.translate = attributes.get("translate", (0.0, 0.0))


def layer_inputs(attributes: dict[str, Any]) -> list[str]:
    """Return the files or folders the layer's series was read from (or is watched in)."""
    meta = (attributes.get("metadata") or {}).get(METADATA_KEY) or {}
    return [str(meta[key]) for key in (SOURCE_PATH_KEY, LIVE_PATH_KEY) if meta.get(key)]


def write_nexus(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Write one Image layer as a NeXus NXdata HDF5 file; return the written path.

    The file or folder the series was read from is never written over (``PermissionError``:
    napari takes a ValueError from a writer for "cannot write this" and drops its message); any
    other existing file is replaced, as napari's Save dialog has asked about it already.
    """
    try:
        check_output_path(path, inputs=layer_inputs(attributes), overwrite=True)
    except OutputError as exc:
        raise PermissionError(str(exc)) from None
    stack = stack_from_layer(_LayerView(data, attributes))
    save_stack(stack, path, format="nexus")
    return [path]
