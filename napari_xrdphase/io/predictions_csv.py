"""The predictions CSV written by ``xrdphase classify``, ``xrdphase watch`` and the napari export.

Columns, in order (docs/formats.md, "Predictions CSV")::

    dataset, index, source, <variable>, label, skipped, p_<class>...

``index`` is the curve's 0-based position in its series, ``source`` the file (and frame) it
came from, ``<variable>`` the external variable (empty when missing), ``label`` the predicted
phase, ``skipped`` why a curve could not be read (live mode; then label and probabilities are
empty), and one probability column per class. Column names never repeat, compared without
case: a variable named like another column gets ``_variable`` appended (``index`` →
``index_variable``), and a class column that would repeat an earlier one gets ``_2``, ``_3``...
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .._files import atomic_write
from ..stack import SpectraStack

# the columns before the variable, and those between it and the probabilities
LEADING_COLUMNS = ("dataset", "index", "source")
LABEL_COLUMN = "label"
SKIPPED_COLUMN = "skipped"
VARIABLE_SUFFIX = "_variable"
MIXED_VARIABLES = "variable"  # the variable column of series whose variables differ


def predictions_header(variable_name: str, classes: Sequence[str]) -> list[str]:
    """Return the predictions CSV header for a variable and classes, every name unique (without case)."""
    fixed = [*LEADING_COLUMNS, LABEL_COLUMN, SKIPPED_COLUMN]
    taken = {c.casefold() for c in fixed}
    probability_columns = []
    for name in classes:
        column, repeat = f"p_{name}", 1
        while column.casefold() in taken:
            repeat += 1
            column = f"p_{name}_{repeat}"
        taken.add(column.casefold())
        probability_columns.append(column)
    variable = str(variable_name).strip() or MIXED_VARIABLES
    while variable.casefold() in taken:
        variable += VARIABLE_SUFFIX
    return [*LEADING_COLUMNS, variable, LABEL_COLUMN, SKIPPED_COLUMN, *probability_columns]


def variable_column_name(stacks: Iterable[SpectraStack]) -> str:
    """The variable the column is named after: the series' common one, else ``variable``."""
    names = {stack.variable_name for stack in stacks}
    return names.pop() if len(names) == 1 else MIXED_VARIABLES


def prediction_row(
    dataset: str,
    index: int,
    source: str,
    value: float | None,
    label: str,
    probabilities: Sequence[float] | np.ndarray | None,
    n_classes: int,
    skipped: str = "",
) -> list[str]:
    """One CSV row: the variable with 6 significant digits (empty when missing), probabilities with 6 decimals."""
    missing = value is None or not math.isfinite(value)
    cells = [str(dataset), str(int(index)), str(source), "" if missing else f"{value:.6g}"]
    cells += [str(label), " ".join(str(skipped).split())]
    if probabilities is None:
        return cells + [""] * n_classes
    return cells + [f"{p:.6f}" for p in probabilities]


def write_predictions_csv(
    path: str | os.PathLike[str],
    results: Iterable[tuple[SpectraStack, Sequence[str], np.ndarray]],
    classes: Sequence[str],
) -> Path:
    """Write per-curve predictions as the predictions CSV (see the module docstring); return the path.

    ``results`` holds ``(stack, predicted labels, probabilities)`` per series; row ``i`` of a
    series gets ``index`` i and ``source`` ``stack.sources[i]``. The external variable column is
    named after the series' variable (``variable`` when they differ).
    """
    results = list(results)
    header = predictions_header(variable_column_name(s for s, _, _ in results), classes)

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(header)
            for stack, predicted, proba in results:
                fh.write(_series_rows(stack, predicted, np.asarray(proba), len(classes)))

    return atomic_write(Path(path).expanduser(), write)


# characters that make the csv module quote a cell (QUOTE_MINIMAL with the default dialect)
_QUOTED = (",", '"', "\r", "\n")


def _series_rows(
    stack: SpectraStack, predicted: Sequence[str], proba: np.ndarray, n_classes: int
) -> str:
    """Return one series' rows as ``csv.writer`` writes ``prediction_row``s, built column-wise.

    The cells are formatted with the same format specifications, each column in one pass, and
    joined once: a per-row ``csv.writer`` cost more than the classification of a curve. Cells
    that the csv module would quote take the per-row route, so the bytes never differ.
    """
    n = stack.n_curves
    if n == 0:
        return ""
    labels = [str(label) for label in np.asarray(predicted)[:n].tolist()]
    text_cells = "".join([str(stack.name), *stack.sources[:n], *set(labels)])
    if any(char in text_cells for char in _QUOTED) or proba.shape != (n, n_classes):
        out = io.StringIO()
        writer = csv.writer(out)
        for i in range(n):
            writer.writerow(
                prediction_row(
                    stack.name, i, stack.sources[i], float(stack.variable[i]), str(predicted[i]),
                    proba[i], n_classes,
                )
            )  # fmt: skip
        return out.getvalue()
    values = np.asarray(stack.variable, dtype=np.float64)[:n]
    variable = list(map("{:.6g}".format, values.tolist()))
    for i in np.flatnonzero(~np.isfinite(values)).tolist():
        variable[i] = ""
    leading = [f"{stack.name},{i},{source}" for i, source in enumerate(stack.sources[:n])]
    columns = [leading, variable, labels, [""] * n]
    columns += [
        list(map("{:.6f}".format, column.tolist()))
        for column in np.asarray(proba, dtype=np.float64).T
    ]
    return "\r\n".join(map(",".join, zip(*columns, strict=True))) + "\r\n"
