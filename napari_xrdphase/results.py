"""One classified series: its labels, boundaries and the text that describes them.

The single source of what the predictions CSV, the printed summary and the napari docks say,
so that they always tell the same story. Only numpy: no torch, Qt or napari.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .boundaries import Boundary, find_boundaries, ordered_phase_labels


@dataclass
class SeriesResult:
    """The phases of one series' curves, its boundaries, and why the phase order was not kept."""

    name: str
    labels: np.ndarray
    probabilities: np.ndarray
    boundaries: list[Boundary] = field(default_factory=list)
    # why this series' curves were labelled each on its own although the classifier has an order
    note: str = ""

    def describe(self) -> list[str]:
        """Return the summary lines of this series (a name line, then indented lines)."""
        return describe_series(self.name, self.labels, self.boundaries, self.note)


def classify_series(
    classifier: Any,
    stack: Any,
    probabilities: np.ndarray,
    labels: Mapping[int, str] | None = None,
) -> SeriesResult:
    """Return the labels and boundaries of ``stack`` from its class ``probabilities``.

    The labels keep ``classifier.phase_order`` unless this series' labelled curves (``labels``,
    {row: class}) contradict it or its variable is constant; the boundaries are then found
    without the order too, so that they are changes of the very labels returned.
    """
    predicted, note = ordered_phase_labels(
        stack.variable, probabilities, classifier.classes, classifier.phase_order,
        None if labels is None else dict(labels), variable_name=stack.variable_name,
    )  # fmt: skip
    order = classifier.phase_order if not note else None
    found = find_boundaries(
        stack.variable, predicted, probabilities, classifier.classes,
        phase_order=order, unit=stack.variable_unit,
    )  # fmt: skip
    return SeriesResult(stack.name, predicted, np.asarray(probabilities), found, note)


def describe_series(
    name: str,
    labels: Sequence[str] | np.ndarray,
    boundaries: Sequence[Boundary],
    note: str = "",
    indices: Sequence[int] | np.ndarray | None = None,
) -> list[str]:
    """Return summary lines that agree with ``labels`` (the predictions CSV's label column).

    ``indices``: each row's curve number where rows and curves differ (live mode, where a
    skipped curve keeps its number but has no row).
    """
    number = (lambda row: row) if indices is None else (lambda row: int(indices[row]))
    counts = Counter(str(label) for label in np.asarray(labels).tolist())
    lines = [f"{name}:"]
    if note:
        lines.append(f"  note: {note}")
    for boundary in boundaries:
        before, after = number(boundary.index_before), number(boundary.index_after)
        lines.append(f"  {boundary}  (curves {before}–{after})")
    per_class = ", ".join(f"{label} {n}" for label, n in counts.items())
    if len(counts) == 1:
        lines.append(f"  no transition: every curve is {next(iter(counts))!r}")
    elif not boundaries:
        lines.append(
            "  no boundary: the phases alternate without a settled run of curves "
            f"(curves per phase: {per_class})"
        )
    else:
        lines.append(f"  curves per phase: {per_class}")
    return lines
