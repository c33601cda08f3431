"""napari-xrdphase: phase transitions in series of 1D X-ray powder diffraction curves.

The public API is importable without Qt or napari; torch loads only when a model is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> submodule that defines it; imported on first access so that
# `import napari_xrdphase` (and napari's start-up) stays fast
_LAZY = {
    "SpectraStack": "stack",
    "StackError": "stack",
    "convert_axis": "stack",
    "load_stack": "io",
    "save_nexus": "io",
    "save_stack": "io",
    "can_read": "io",
    "read_labels_csv": "io",
    "write_labels_csv": "io",
    "ReaderError": "io",
    "simulate_series": "synth",
    "paper_suite": "synth",
    "Encoder": "encoder",
    "ModelError": "encoder",
    "pretrain": "training",
    "METHODS": "ssl",
    "fit_classifier": "classify",
    "Classifier": "classify",
    "LabelError": "classify",
    "find_boundaries": "boundaries",
    "Boundary": "boundaries",
    "fit_pressure": "pressure",
    "with_fitted_pressure": "pressure",
    "PressureFit": "pressure",
    "PressureError": "pressure",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
