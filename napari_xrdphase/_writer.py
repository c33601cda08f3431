"""napari writer contribution: an Image layer of a diffraction series → NeXus HDF5."""

from __future__ import annotations

from typing import Any

from ._layer_data import stack_from_layer
from .io import save_stack


class _LayerView:
    """Just enough of a napari layer for ``stack_from_layer`` from (data, attributes)."""

    def __init__(self, data: Any, attributes: dict[str, Any]) -> None:
        self.data = data
        self.name = attributes.get("name", "series")
        self.metadata = attributes.get("metadata", {})
        self.scale = attributes.get("scale", (1.0, 1.0))
        self.translate = attributes.get("translate", (0.0, 0.0))


def write_nexus(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Write one Image layer as a NeXus NXdata HDF5 file; return the written path."""
    stack = stack_from_layer(_LayerView(data, attributes))
    save_stack(stack, path, format="nexus")
    return [path]
