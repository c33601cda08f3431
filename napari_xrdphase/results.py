"""One classified series: its labels, boundaries and the text that describes them.

The single source of what the predictions CSV, the printed summary and the napari docks say,
so that they always tell the same story. Only numpy: no torch, Qt or napari.
"""

from __future__ import annotations

import dataclasses
import math
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
    # how unlike every labelled curve each curve is (classify/novelty.py); None: not known
    novelty: np.ndarray | None = None

    def novelty_warning(self) -> str:
        """Return the warning when many curves are unlike any labelled curve, else ""."""
        return novelty_warning(self.name, self.novelty)

    def describe(self) -> list[str]:
        """Return the summary lines of this series (a name line, then indented lines)."""
        return describe_series(
            self.name, self.labels, self.boundaries, self.note, novelty=self.novelty
        )


def novelty_warning(name: str, novelty: np.ndarray | None) -> str:
    """Return "<name>: 41 % of curves are unlike any labelled curve; ..." or "" (few or unknown).

    A curve is novel above ``NOVELTY_THRESHOLD``; the warning comes when at least
    ``NOVEL_SHARE_WARNING`` of the series' curves are.
    """
    from .classify.novelty import NOVEL_SHARE_WARNING, NOVELTY_THRESHOLD, novel_share

    if novelty is None or np.asarray(novelty).size == 0:
        return ""
    share = novel_share(novelty, NOVELTY_THRESHOLD)
    if share < NOVEL_SHARE_WARNING:
        return ""
    return (
        f"{name}: {100 * share:.0f} % of curves are unlike any labelled curve (novelty > "
        f"{NOVELTY_THRESHOLD:g}); label one or two of them (xrdphase suggest proposes which)"
    )


def classify_series(
    classifier: Any,
    stack: Any,
    probabilities: np.ndarray,
    labels: Mapping[int, str] | None = None,
    missing: np.ndarray | None = None,
    novelty: np.ndarray | None = None,
) -> SeriesResult:
    """Return the labels and boundaries of ``stack`` from its class ``probabilities``.

    The labels keep ``classifier.phase_order`` unless this series' labelled curves (``labels``,
    {row: class}) contradict it or its variable is constant; the boundaries are then found
    without the order too, so that they are changes of the very labels returned. ``missing``
    marks curves whose external variable is unknown (live mode): they get their most probable
    class and are left out of the phase order and the boundaries, whose ``index_before`` /
    ``index_after`` stay rows of ``stack``. ``novelty`` (``Classifier.novelty``) is kept with
    the result and adds a warning line when many curves are novel.
    """
    proba = np.asarray(probabilities)
    names = np.asarray([str(c) for c in classifier.classes])
    predicted = names[proba.argmax(axis=1)] if proba.shape[0] else np.array([], dtype=str)
    known = np.ones(proba.shape[0], dtype=bool)
    if missing is not None:
        known = ~np.asarray(missing, dtype=bool)
    rows = np.flatnonzero(known)
    if rows.size < 2:
        return SeriesResult(stack.name, predicted, proba, [], "", novelty)
    position = {int(r): k for k, r in enumerate(rows)}
    pinned = {position[int(r)]: str(c) for r, c in (labels or {}).items() if int(r) in position}
    variable = np.asarray(stack.variable, dtype=np.float64)[rows]
    ordered, note = ordered_phase_labels(
        variable, proba[rows], names, classifier.phase_order, pinned,
        variable_name=stack.variable_name,
    )  # fmt: skip
    predicted[rows] = ordered
    found = find_boundaries(
        variable, ordered, proba[rows], names,
        phase_order=None if note else classifier.phase_order, unit=stack.variable_unit,
    )  # fmt: skip
    if rows.size < proba.shape[0]:
        found = [_on_rows(boundary, rows) for boundary in found]
    return SeriesResult(stack.name, predicted, proba, found, note, novelty)


def _on_rows(boundary: Boundary, rows: np.ndarray) -> Boundary:
    """A boundary found among ``rows`` of a series, with its row numbers those of the series."""
    row = boundary.row
    if math.isfinite(row):
        row = float(np.interp(row, np.arange(rows.size), rows))
    return dataclasses.replace(
        boundary, index_before=int(rows[boundary.index_before]),
        index_after=int(rows[boundary.index_after]), row=row,
    )  # fmt: skip


def describe_series(
    name: str,
    labels: Sequence[str] | np.ndarray,
    boundaries: Sequence[Boundary],
    note: str = "",
    indices: Sequence[int] | np.ndarray | None = None,
    novelty: np.ndarray | None = None,
) -> list[str]:
    """Return summary lines that agree with ``labels`` (the predictions CSV's label column).

    ``indices``: each row's curve number where rows and curves differ (live mode, where a
    skipped curve keeps its number but has no row); ``novelty``: each curve's novelty, which
    adds a ``warning:`` line when many curves are unlike any labelled one.
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
    warning = novelty_warning(name, novelty)
    if warning:
        lines.append(f"  warning: {warning}")
    return lines
