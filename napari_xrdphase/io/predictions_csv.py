"""The predictions CSV written by ``xrdphase classify``, ``xrdphase watch`` and the napari export.

Columns, in order (docs/formats.md, "Predictions CSV")::

    dataset, index, source, <variable>, label, skipped, p_<class>..., [<own variable>...], novelty

``index`` is the curve's 0-based position in its series, ``source`` the file (and frame) it
came from, ``<variable>`` the external variable (empty when missing), ``label`` the predicted
phase, ``skipped`` why a curve could not be read (live mode; then label and probabilities are
empty), one probability column per class, and ``novelty`` — how unlike every labelled curve
the curve is (``classify/novelty.py``; last, so that readers of the probability columns are
undisturbed; written by ``classify`` and the napari export, empty for a classifier file from
before novelty, absent from live-mode files). Column names never repeat, compared without
case: a variable named like another column gets ``_variable`` appended (``index`` →
``index_variable``), and a class column that would repeat an earlier one gets ``_2``, ``_3``...

Where a fitted pressure replaced a series' own external variable (``--pressure-from``:
``stack.metadata["own_variable"]``), that variable follows the probabilities in a column named
after it (with ``_variable`` appended while the name is taken); a series numbered by its index
adds none.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .._files import atomic_write
from ..stack import SpectraStack
from ._common import INDEX_VARIABLE

# the columns before the variable, and those between it and the probabilities
LEADING_COLUMNS = ("dataset", "index", "source")
LABEL_COLUMN = "label"
SKIPPED_COLUMN = "skipped"
NOVELTY_COLUMN = "novelty"
VARIABLE_SUFFIX = "_variable"
MIXED_VARIABLES = "variable"  # the variable column of series whose variables differ
OWN_VARIABLE_KEY = "own_variable"  # metadata: the variable a fitted one replaced (name, values)


def own_variable_names(stacks: Iterable[SpectraStack]) -> list[str]:
    """Return the names of the series' own variables that a fitted one replaced, index left out."""
    names: list[str] = []
    for stack in stacks:
        own = stack.metadata.get(OWN_VARIABLE_KEY) or {}
        name = str(own.get("name") or "").strip()
        if name and name != INDEX_VARIABLE and name not in names:
            names.append(name)
    return names


def own_variable_values(stack: SpectraStack, names: Sequence[str]) -> list[np.ndarray]:
    """Return per name in ``names`` the series' own variable per curve (NaN where it has not that one)."""
    own = stack.metadata.get(OWN_VARIABLE_KEY) or {}
    values = np.asarray(own.get("values", []), dtype=np.float64)
    nan = np.full(stack.n_curves, np.nan)
    return [
        values if str(own.get("name") or "").strip() == name and values.size == stack.n_curves
        else nan
        for name in names
    ]  # fmt: skip


def predictions_header(
    variable_name: str, classes: Sequence[str], extra: Sequence[str] = (), novelty: bool = False
) -> list[str]:
    """Return the predictions CSV header for a variable and classes, every name unique (without case).

    ``extra`` names the own-variable columns that follow the probabilities; ``novelty``: end
    with the ``novelty`` column.
    """
    fixed = [*LEADING_COLUMNS, LABEL_COLUMN, SKIPPED_COLUMN, *([NOVELTY_COLUMN] * novelty)]
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
    taken.add(variable.casefold())
    extra_columns = []
    for name in extra:
        column = str(name).strip()
        while column.casefold() in taken:
            column += VARIABLE_SUFFIX
        taken.add(column.casefold())
        extra_columns.append(column)
    return [
        *LEADING_COLUMNS, variable, LABEL_COLUMN, SKIPPED_COLUMN, *probability_columns,
        *extra_columns, *([NOVELTY_COLUMN] * novelty),
    ]  # fmt: skip


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
    extra: Sequence[float] = (),
) -> list[str]:
    """One CSV row: the variable with 6 significant digits (empty when missing), probabilities with 6 decimals.

    ``extra`` holds the own-variable values that follow the probabilities (6 digits, NaN empty).
    """
    cells = [str(dataset), str(int(index)), str(source), _number(value)]
    cells += [str(label), " ".join(str(skipped).split())]
    if probabilities is None:
        cells += [""] * n_classes
    else:
        cells += [f"{p:.6f}" for p in probabilities]
    return cells + [_number(v) for v in extra]


def _number(value: float | None) -> str:
    missing = value is None or not math.isfinite(value)
    return "" if missing else f"{value:.6g}"


def write_predictions_csv(
    path: str | os.PathLike[str],
    results: Iterable[tuple[SpectraStack, Sequence[str], np.ndarray]],
    classes: Sequence[str],
    novelty: Mapping[str, np.ndarray | None] | None = None,
) -> Path:
    """Write per-curve predictions as the predictions CSV (see the module docstring); return the path.

    ``results`` holds ``(stack, predicted labels, probabilities)`` per series; row ``i`` of a
    series gets ``index`` i and ``source`` ``stack.sources[i]``. The external variable column is
    named after the series' variable (``variable`` when they differ); a series whose variable
    replaced its own (``metadata["own_variable"]``) keeps that one in a column after the
    probabilities. ``novelty`` {series: novelty per curve, or None when unknown} adds the
    ``novelty`` column.
    """
    results = list(results)
    extra = own_variable_names(s for s, _, _ in results)
    header = predictions_header(
        variable_column_name(s for s, _, _ in results), classes, extra, novelty is not None
    )

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(header)
            for stack, predicted, proba in results:
                scores = None
                if novelty is not None:
                    given = novelty.get(stack.name)
                    scores = np.full(stack.n_curves, np.nan) if given is None else given
                fh.write(
                    prediction_rows_text(
                        str(stack.name), 0, stack.sources, stack.variable, predicted, proba,
                        extra=own_variable_values(stack, extra), novelty=scores,
                    )
                )  # fmt: skip

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
    extra: Sequence[np.ndarray] = (),
    novelty: np.ndarray | None = None,
) -> str:
    """Return rows ``first``, ``first + 1``... as ``csv.writer`` writes their ``prediction_row``s.

    ``extra``: own-variable values per extra column; ``novelty`` (NaN: unknown) adds the
    ``novelty`` cell. Built column by column with the same format specifications and joined
    once: a per-row ``csv.writer`` cost more than classifying a curve. Rows with a cell the
    csv module would quote take the per-row route, so the bytes never differ.
    """
    proba = np.asarray(proba)
    n = len(sources)
    if n == 0:
        return ""
    labels = [str(label) for label in np.asarray(labels)[:n].tolist()]
    values = np.asarray(variable, dtype=np.float64)[:n]
    scores = None if novelty is None else np.asarray(novelty, dtype=np.float64)[:n]
    text_cells = "".join([str(dataset), *sources, *set(labels)])
    if any(char in text_cells for char in _QUOTED) or proba.ndim != 2 or proba.shape[0] != n:
        out = io.StringIO()
        writer = csv.writer(out)
        for i in range(n):
            row = prediction_row(
                dataset, first + i, sources[i], values[i], labels[i], proba[i], proba.shape[-1],
                extra=[v[i] for v in extra],
            )  # fmt: skip
            if scores is not None:
                row.append(_novelty_cell(scores[i]))
            writer.writerow(row)
        return out.getvalue()
    leading = [f"{dataset},{first + i},{source}" for i, source in enumerate(sources)]
    columns = [leading, _number_column(values), labels, [""] * n]
    columns += [list(map("{:.6f}".format, c.tolist())) for c in proba.astype(np.float64).T]
    columns += [_number_column(np.asarray(v, dtype=np.float64)[:n]) for v in extra]
    if scores is not None:
        columns.append([_novelty_cell(v) for v in scores.tolist()])
    return "\r\n".join(map(",".join, zip(*columns, strict=True))) + "\r\n"


def _number_column(values: np.ndarray) -> list[str]:
    cells = list(map("{:.6g}".format, values.tolist()))
    for i in np.flatnonzero(~np.isfinite(values)).tolist():
        cells[i] = ""
    return cells


def _novelty_cell(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else ""
