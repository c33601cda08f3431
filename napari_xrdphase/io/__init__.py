"""Read and write series of diffraction curves: text folders, HDF5/NeXus, Dioptas batch files, .npz.

Every reader returns a :class:`~napari_xrdphase.stack.SpectraStack`; every problem a user can
cause raises :class:`ReaderError` naming the file and what is wrong. See ``docs/formats.md``.
One module per format family:

- ``dispatch``: ``load_stack`` / ``save_stack`` pick the format;
- ``text_folder``: folders of ``.xy``/``.xye``/``.chi``/``.dat`` curves, with ``metadata_csv``;
- ``hdf5``: HDF5/NeXus (and ``dioptas`` for Dioptas batch files);
- ``npz``: NumPy archives;
- ``labels_csv`` and ``predictions_csv``: the CSV files of labels and results;
- ``units``: axis kinds, units and wavelengths as headers state them.
"""

from ._common import (
    HDF5_SUFFIXES,
    INDEX_VARIABLE,
    LABEL_COLUMNS,
    METADATA_CSV,
    NPZ_SUFFIXES,
    TEXT_SUFFIXES,
    ReaderError,
)
from .dispatch import can_read, load_stack, save_stack
from .hdf5 import save_nexus
from .labels_csv import read_labels_csv, write_labels_csv
from .predictions_csv import write_predictions_csv

__all__ = [
    "HDF5_SUFFIXES",
    "INDEX_VARIABLE",
    "LABEL_COLUMNS",
    "METADATA_CSV",
    "NPZ_SUFFIXES",
    "TEXT_SUFFIXES",
    "ReaderError",
    "can_read",
    "load_stack",
    "read_labels_csv",
    "save_nexus",
    "save_stack",
    "write_labels_csv",
    "write_predictions_csv",
]
