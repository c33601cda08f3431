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
                fh.write(
                    prediction_rows_text(
                        str(stack.name), 0, stack.sources, stack.variable, predicted, proba
                    )
                )

    return atomic_write(Path(path).expanduser(), write)


# characters that make the csv module quote a cell (QUOTE_MINIMAL with the default dialect)
_QUOTED = (",", '"', "\r", "\n")


def prediction_rows_text(
    dataset: str,
    first: int,
    sources: Sequence[str],
    variable: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    proba: np.ndarray,
) -> str:
    """Return rows ``first``, ``first + 1``... as ``csv.writer`` writes their ``prediction_row``s.

    Built column by column with the same format specifications and joined once: a per-row
    ``csv.writer`` cost more than classifying a curve. Rows with a cell the csv module would
    quote take the per-row route, so the bytes never differ.
    """
    proba = np.asarray(proba)
    n = len(sources)
    if n == 0:
        return ""
    labels = [str(label) for label in np.asarray(labels)[:n].tolist()]
    values = np.asarray(variable, dtype=np.float64)[:n]
    text_cells = "".join([str(dataset), *sources, *set(labels)])
    if any(char in text_cells for char in _QUOTED) or proba.ndim != 2 or proba.shape[0] != n:
        out = io.StringIO()
        csv.writer(out).writerows(
            prediction_row(dataset, first + i, sources[i], values[i], labels[i], proba[i],
                           proba.shape[-1])
            for i in range(n)
        )  # fmt: skip
        return out.getvalue()
    cells = list(map("{:.6g}".format, values.tolist()))
    for i in np.flatnonzero(~np.isfinite(values)).tolist():
        cells[i] = ""
    leading = [f"{dataset},{first + i},{source}" for i, source in enumerate(sources)]
    columns = [leading, cells, labels, [""] * n]
    columns += [list(map("{:.6f}".format, c.tolist())) for c in proba.astype(np.float64).T]
    return "\r\n".join(map(",".join, zip(*columns, strict=True))) + "\r\n"
