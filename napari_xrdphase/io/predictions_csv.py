"""The predictions CSV (``dataset,index,<variable>,label,p_<class>...``) writer."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .._files import atomic_write
from ..stack import (
    SpectraStack,
)


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
