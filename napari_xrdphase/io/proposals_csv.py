"""The CSVs of ``xrdphase suggest`` (curves to label next) and ``xrdphase segment`` (phases
proposed without labels); docs/formats.md, "Suggestions CSV" and "Segments CSV".

Suggestions: ``dataset,index,<variable>,predicted,confidence,novelty``, best first;
``predicted``, ``confidence`` and ``novelty`` are empty while there are no labels.
Segments: ``dataset,index,<variable>,segment``, one row per curve, ``segment`` S1, S2, ...
The variable column is named after the series' variable (``variable`` when they differ, with
``_variable`` appended when it would repeat another column's name).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .._files import atomic_write
from ..stack import SpectraStack
from .predictions_csv import VARIABLE_SUFFIX, variable_column_name

SUGGESTION_COLUMNS = ("predicted", "confidence", "novelty")
SEGMENT_COLUMN = "segment"


def _header(variable: str, tail: Sequence[str]) -> list[str]:
    taken = {c.casefold() for c in ("dataset", "index", *tail)}
    while variable.casefold() in taken:
        variable += VARIABLE_SUFFIX
    return ["dataset", "index", variable, *tail]


def _number(value: float, digits: str) -> str:
    return "" if value is None or not math.isfinite(value) else format(value, digits)


def write_suggestions_csv(
    path: str | os.PathLike[str], suggestions: Iterable, stacks: Sequence[SpectraStack]
) -> Path:
    """Write ``suggest_curves``' rows (best first) as the suggestions CSV; return the path."""
    suggestions = list(suggestions)
    header = _header(variable_column_name(stacks), SUGGESTION_COLUMNS)

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for s in suggestions:
                writer.writerow([
                    s.dataset, s.index, _number(s.variable, ".6g"), s.predicted,
                    _number(s.confidence, ".4f"), _number(s.novelty, ".4f"),
                ])  # fmt: skip

    return atomic_write(Path(path).expanduser(), write)


def write_segments_csv(
    path: str | os.PathLike[str], segments: Iterable, stacks: Sequence[SpectraStack]
) -> Path:
    """Write ``propose_phases``' per-series segments as the segments CSV; return the path."""
    by_name = {s.name: s for s in stacks}
    segments = list(segments)
    header = _header(variable_column_name(stacks), (SEGMENT_COLUMN,))

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for series in segments:
                stack = by_name[series.name]
                for i, label in enumerate(series.labels):
                    value = float(stack.variable[i])
                    writer.writerow([series.name, i, _number(value, ".6g"), str(label)])

    return atomic_write(Path(path).expanduser(), write)
