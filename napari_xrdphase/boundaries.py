"""Phase boundaries along the external variable, from per-curve predicted labels.

Only numpy: this module runs in napari's thread and in the command line without torch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOUNDARY_COLUMNS = (
    "from_label",
    "to_label",
    "value",
    "low",
    "high",
    "index_before",
    "index_after",
)


@dataclass(frozen=True)
class Boundary:
    """A transition from one phase to the next, located in the external variable.

    ``low``/``high`` bound the transition: the external variable between the last curve that
    is settled in ``from_label`` (row ``index_before``) and the first curve settled in
    ``to_label`` (row ``index_after``), widened over any curves in between whose predictions
    flip back and forth, and over neighbours that still give the other phase some probability
    (``find_boundaries``). ``value`` is the midpoint between the settled curves, before that
    last widening, so it sits where the predicted phase changes.
    """

    from_label: str
    to_label: str
    value: float
    low: float
    high: float
    index_before: int
    index_after: int
    unit: str = ""
    # the fractional row where the predicted phase changes (midway between the settled curves)
    row: float = math.nan

    @property
    def uncertainty(self) -> float:
        """How far the interval reaches from ``value`` (the larger side), in the variable's unit."""
        return max(self.value - self.low, self.high - self.value)

    def __str__(self) -> str:
        value, uncertainty = _format_value_and_uncertainty(self.value, self.uncertainty)
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.from_label} → {self.to_label} at {value} ± {uncertainty}{unit}"


# a ramp turns (compression ↔ decompression) only where the variable has come back by this
# fraction of its range, so that the scatter of pressure readings does not cut it into legs
RAMP_TURN_FRACTION = 0.05


def ramp_directions(variable: np.ndarray, turn_fraction: float = RAMP_TURN_FRACTION) -> np.ndarray:
    """Return, per row, +1 or -1: whether the ramp rises or falls on the step to that row.

    The series is cut into legs at its turning points, where the variable has come back by
    more than ``turn_fraction`` of its range (smaller wiggles stay inside a leg); every step
    of a leg gets the leg's direction, and row 0 that of the first leg. A constant variable
    gives 0 everywhere.
    """
    values = np.asarray(variable, dtype=np.float64).ravel()
    n = values.size
    span = float(np.ptp(values)) if n else 0.0
    if n < 2 or not span > 0:
        return np.zeros(n, dtype=np.int64)
    tolerance = turn_fraction * span
    values = values.tolist()  # the scan below reads one value at a time: Python floats
    turns, direction, extreme = [], 0, 0
    for row in range(1, n):
        if direction == 0:
            if abs(values[row] - values[0]) > tolerance:
                direction, extreme = (1 if values[row] > values[0] else -1), row
        elif (values[row] - values[extreme]) * direction > 0:
            extreme = row
        elif (values[extreme] - values[row]) * direction > tolerance:
            turns.append(extreme)
            direction, extreme = -direction, row
    edges = [0, *turns, n - 1]
    directions = np.empty(n, dtype=np.int64)
    for start, stop in itertools.pairwise(edges):
        directions[start + 1 : stop + 1] = 1 if values[stop] >= values[start] else -1
    directions[0] = directions[1]
    return directions


def phase_labels(
    variable: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    phase_order: Sequence[str] | None = None,
    labels: dict[int, str] | None = None,
) -> np.ndarray:
    """Return the phase of every curve of a series (numpy array of str).

    Without ``phase_order``: the most probable class of each curve. With it (the classes in
    the order they occur as the variable rises, e.g. ``("before", "during", "after")`` for a
    pressure ramp): the most probable labelling (least total −log p) in which, on every leg
    of the ramp (``ramp_directions``), the phase never steps back, i.e. one transition at a
    time, in that order on compression and in reverse on decompression, with any hysteresis
    between the legs. ``labels`` ({row: class}) fixes those curves, as labelled. A series
    whose variable is constant, or whose ``labels`` contradict the order along a leg, gets
    the most probable class per curve (``ordered_phase_labels`` says why).
    """
    return ordered_phase_labels(variable, probabilities, classes, phase_order, labels)[0]


def ordered_phase_labels(
    variable: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    phase_order: Sequence[str] | None = None,
    labels: dict[int, str] | None = None,
    variable_name: str = "the external variable",
) -> tuple[np.ndarray, str]:
    """Return ``phase_labels`` and why the phase order was not applied ("" when it was or none was given)."""
    probs = np.asarray(probabilities, dtype=np.float64)
    names = [str(c) for c in classes]
    if probs.ndim != 2 or probs.shape[1] != len(names):
        raise ValueError(f"probabilities have shape {probs.shape}; expected (curves, {len(names)})")
    argmax = np.asarray(names)[probs.argmax(axis=1)] if probs.shape[0] else np.array([], str)
    if phase_order is None or probs.shape[0] < 2:
        return argmax, ""
    rank = _phase_ranks(phase_order, names)
    directions = ramp_directions(variable)
    if directions.size != probs.shape[0]:
        raise ValueError(f"{directions.size} values of the variable for {probs.shape[0]} curves")
    on_own = "so each curve is labelled with its most probable phase"
    if not directions.any():
        return argmax, f"{variable_name} does not change along the series, {on_own}"
    cost = -np.log(np.clip(probs, 1e-12, 1.0))
    pinned = {int(row): names.index(str(label)) for row, label in (labels or {}).items()}
    contradiction = order_contradiction(pinned, rank, directions)
    if contradiction is not None:
        (a, b) = contradiction
        return argmax, (
            f"its labelled curves contradict the phase order {' → '.join(map(str, phase_order))} "
            f"({names[pinned[b]]!r} at curve {b} comes after {names[pinned[a]]!r} at curve {a} "
            f"on one leg of the ramp), {on_own}"
        )
    for row, code in pinned.items():
        cost[row] = np.inf
        cost[row, code] = 0.0
    path = _segment(cost, 0.0, rank, directions)  # no penalty: the most probable path
    if not np.isfinite(cost[np.arange(path.size), path].sum()):
        return argmax, f"no labelling keeps the phase order and the labelled curves, {on_own}"
    return np.asarray(names)[path], ""


def _phase_ranks(phase_order: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Return each class's position in ``phase_order`` (ValueError unless it orders the classes)."""
    order = [str(c) for c in phase_order]
    if sorted(order) != sorted(classes):
        raise ValueError(f"phase_order {order} is not an ordering of the classes {list(classes)}")
    return np.array([order.index(c) for c in classes])


def order_contradiction(
    pinned: dict[int, int], rank: np.ndarray, directions: np.ndarray
) -> tuple[int, int] | None:
    """Return the first two consecutive labelled rows (a, b) on one leg that step back in rank, or None."""
    rows = np.array(sorted(pinned), dtype=np.int64)
    if rows.size < 2:
        return None
    steps = np.asarray(directions, dtype=np.int64)
    # leg[i]: how many times the direction has changed up to row i; rows a+1..b lie on one
    # leg exactly when leg[a + 1] == leg[b]
    leg = np.concatenate([[0], np.cumsum(steps[1:] != steps[:-1])])
    a, b = rows[:-1], rows[1:]
    ranks = np.asarray(rank)[np.array([pinned[int(r)] for r in rows])]
    back = (leg[a + 1] == leg[b]) & ((ranks[1:] - ranks[:-1]) * steps[b] < 0)
    if not back.any():
        return None
    first = int(np.argmax(back))
    return int(a[first]), int(b[first])


def _format_value_and_uncertainty(value: float, uncertainty: float) -> tuple[str, str]:
    # the uncertainty gets one significant digit (two when it starts with 1 or 2) and the
    # value as many decimals, the usual way to quote a measurement
    if not (math.isfinite(uncertainty) and uncertainty > 0):
        return f"{value:.6g}", "0"
    exponent = math.floor(math.log10(uncertainty))
    leading = uncertainty / 10**exponent
    decimals = -exponent + (1 if leading < 3 else 0)
    if decimals <= 0:
        return f"{value:.0f}", f"{uncertainty:.0f}"
    return f"{value:.{decimals}f}", f"{uncertainty:.{decimals}f}"


def find_boundaries(
    variable: np.ndarray,
    predicted: Sequence[str] | np.ndarray,
    probabilities: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    *,
    min_run: int = 3,
    min_probability: float = 0.1,
    phase_order: Sequence[str] | None = None,
    unit: str = "",
) -> list[Boundary]:
    """Return the phase boundaries of a series, in acquisition (row) order.

    The algorithm, in three steps:

    1. **Per-curve cost.** For each curve ``i`` and class ``k``, the cost of calling that
       curve ``k``: without ``probabilities``, 0 when ``predicted[i] == k`` and 1 otherwise;
       with them, ``p_max(i) - p_k(i)`` (0 for the most probable class, close to 1 for a
       confident misfit, small where two classes are close), so uncertain curves are cheap to
       relabel. ``probabilities`` columns follow ``classes``.
    2. **Segmentation.** Dynamic programming (Viterbi) finds the piecewise-constant labelling
       of the rows with the least total cost plus ``penalty`` per change of label, with
       ``penalty = (min_run - 0.5) / 2``. A run of ``m`` curves inside a phase is kept as its
       own segment only when it is cheaper than relabelling it, i.e. when
       ``m > 2 * penalty = min_run - 0.5``: with the default ``min_run = 3`` one or two
       isolated misclassified curves never make boundaries, three consecutive curves do
       (at the first or last rows, which cost one change only, two curves suffice).
       Ties keep the current label.
    3. **Intervals.** For each change of segment ``A → B``, the transition lies between the
       last curve that ends a run of ``min_run`` consecutive ``A`` predictions (searching
       back from the change, within ``A``'s segment) and the first curve that starts such a
       run of ``B`` (searching forward, within ``B``'s segment). Predictions that flip back
       and forth near the change thus widen the interval, while a flip further away than
       ``min_run`` settled curves does not. Where a segment is too short or noisy to hold
       such a run, its last ``A`` (first ``B``) prediction is used, or its first (last) row.
       With ``probabilities``, the interval then grows over the neighbouring rows where the
       classifier still gives the other phase at least ``min_probability``: back from
       ``index_before`` while ``p_B ≥ min_probability``, forward from ``index_after`` while
       ``p_A ≥ min_probability``, but never beyond ``A``'s and ``B``'s segments (a classifier
       fitted on a handful of labels can give every class over 10 % on every curve, and the
       interval would then span the whole series). ``low``/``high`` are the smallest/largest value of
       ``variable`` over the rows from ``index_before`` to ``index_after``; ``value`` is the
       midpoint of the settled interval, before the probability widening, so the boundary
       sits where the phase changes and the widening only makes its ± larger.

    Why the probability widening: on an independent simulator's series (docs/benchmarks.md)
    the settled-curve interval alone was 0.3 GPa wide and held the true boundary in 9–14 % of
    cases, while the boundaries were off by about 1 GPa; with ``min_probability = 0.1`` it
    holds it in about half of them (median width 2–3.6 GPa). ``min_probability = 1`` turns
    the widening off.

    With ``phase_order`` (``Classifier.phase_order``), the segmentation keeps the phases in
    that order along each leg of the ramp, as ``phase_labels`` does for the curves; when
    ``predicted`` already follows that order (``phase_labels``' output), step 2 is skipped and
    the segments are ``predicted``'s own runs, so every boundary is a change of the labels a
    predictions file holds, however short the run.

    Rows are never sorted by ``variable``, so decompression runs (decreasing pressure) and
    non-monotonic ramps give their boundaries in the order they were crossed.
    """
    values = np.asarray(variable, dtype=np.float64).ravel()
    labels = np.asarray(predicted).ravel()
    n = values.size
    if labels.size != n:
        raise ValueError(f"{labels.size} predicted labels for {n} values of the variable")
    if not np.all(np.isfinite(values)):
        raise ValueError("the external variable contains NaN or inf")
    if int(min_run) < 1:
        raise ValueError(f"min_run must be at least 1, got {min_run}")
    if not 0 < min_probability <= 1:
        raise ValueError(f"min_probability must be in (0, 1], got {min_probability}")
    min_run = int(min_run)
    label_strings = [str(label) for label in labels.tolist()]

    if classes is None:
        if probabilities is not None:
            raise ValueError("pass the classes (the columns of probabilities) with probabilities")
        class_names = sorted(set(label_strings))
    else:
        class_names = [str(c) for c in classes]
        if len(set(class_names)) != len(class_names):
            raise ValueError(f"classes contain duplicates: {class_names}")
        unknown = sorted(set(label_strings) - set(class_names))
        if unknown:
            raise ValueError(f"predicted labels {unknown} are not among the classes {class_names}")
    if n < 2 or not class_names:
        return []
    class_index = {name: k for k, name in enumerate(class_names)}
    codes = np.array([class_index[s] for s in label_strings], dtype=np.int64)

    if probabilities is None:
        cost = np.ones((n, len(class_names)))
        cost[np.arange(n), codes] = 0.0
    else:
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.shape != (n, len(class_names)):
            raise ValueError(
                f"probabilities have shape {probs.shape}; expected ({n}, {len(class_names)}) "
                "(one row per curve, one column per class)"
            )
        if not np.all(np.isfinite(probs)):
            raise ValueError("probabilities contain NaN or inf")
        cost = probs.max(axis=1, keepdims=True) - probs

    rank = directions = None
    if phase_order is not None:
        ranks = _phase_ranks(phase_order, class_names)
        directions = ramp_directions(values)
        if directions.any():
            rank = ranks
    in_order = (
        rank is not None
        and order_contradiction(dict(enumerate(codes.tolist())), rank, directions) is None
    )
    # already in phase order (``phase_labels``): the boundaries are where the labels change
    segment_codes = codes if in_order else _segment(cost, (min_run - 0.5) / 2, rank, directions)
    change_rows = np.flatnonzero(segment_codes[1:] != segment_codes[:-1]) + 1
    starts = np.concatenate([[0], change_rows])
    ends = np.concatenate([change_rows - 1, [n - 1]])

    boundaries = []
    for j in range(len(starts) - 1):
        code_a, code_b = int(segment_codes[starts[j]]), int(segment_codes[starts[j + 1]])
        before = _settled_end(codes, code_a, int(starts[j]), int(ends[j]), min_run)
        after = _settled_start(codes, code_b, int(starts[j + 1]), int(ends[j + 1]), min_run)
        settled = values[before : after + 1]
        value = (float(settled.min()) + float(settled.max())) / 2
        row = (before + after) / 2
        if probabilities is not None:  # never past the two phases' own segments
            while before > starts[j] and probs[before - 1, code_b] >= min_probability:
                before -= 1
            while after < ends[j + 1] and probs[after + 1, code_a] >= min_probability:
                after += 1
        span = values[before : after + 1]
        low, high = float(span.min()), float(span.max())
        boundaries.append(
            Boundary(
                from_label=class_names[code_a],
                to_label=class_names[code_b],
                value=value,
                low=low,
                high=high,
                index_before=before,
                index_after=after,
                unit=unit,
                row=row,
            )
        )
    return boundaries


def _segment(
    cost: np.ndarray, penalty: float, rank: np.ndarray | None = None,
    directions: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """Return the class per row of the least-cost piecewise-constant labelling (Viterbi).

    With ``rank`` and ``directions`` (``ramp_directions``), a change of label may only move
    the rank the way the ramp goes on that step: on a rising step a class may follow any
    class of lower or equal rank, on a falling one any of higher or equal rank.
    """
    # plain Python floats: with a handful of classes, numpy's per-call overhead would cost
    # several times the arithmetic on each of the (up to millions of) rows
    n, n_classes = cost.shape
    rows = cost.tolist()
    classes = range(n_classes)
    by_rank = list(classes) if rank is None else [int(c) for c in np.argsort(rank, kind="stable")]
    steps = [0] * n if directions is None else np.asarray(directions).tolist()
    rising, falling = by_rank, by_rank[::-1]
    total = rows[0]
    # came_from[i][k]: the class of row i-1 on the best path that has class k at row i
    came_from: list[list[int]] = [list(classes)]
    best = [0] * n_classes
    for i in range(1, n):
        if rank is None:
            least = min(classes, key=total.__getitem__)  # the first on ties, as argmin
            best = [least] * n_classes
        else:
            # least total among the classes a change may come from: a running minimum over
            # the classes by rank (from the top on a falling step); the first wins ties
            scan = falling if steps[i] < 0 else rising
            least = scan[0]
            for c in scan:
                if total[c] < total[least]:
                    least = c
                best[c] = least
        row, came, new_total = rows[i], [0] * n_classes, [0.0] * n_classes
        for k in classes:
            switch = total[best[k]] + penalty
            # `<=` keeps the current label on ties, so noise never moves a boundary for free
            if total[k] <= switch:
                came[k], new_total[k] = k, total[k] + row[k]
            else:
                came[k], new_total[k] = best[k], switch + row[k]
        came_from.append(came)
        total = new_total
    path = np.empty(n, dtype=np.int64)
    state = min(classes, key=total.__getitem__)
    path[-1] = state
    for i in range(n - 1, 0, -1):
        state = came_from[i][state]
        path[i - 1] = state
    return path


def _settled_row(codes: np.ndarray, code: int, rows: range, min_run: int, fallback: int) -> int:
    """Return the last row, scanning ``rows`` in order, that completes ``min_run`` consecutive
    ``code`` predictions (else the last matching row, else ``fallback``)."""
    run, settled, last_match = 0, -1, -1
    for row in rows:
        if codes[row] == code:
            run += 1
            last_match = row
            if run >= min_run:
                settled = row
        else:
            run = 0
    if settled >= 0:
        return settled
    return last_match if last_match >= 0 else fallback


def _settled_end(codes: np.ndarray, code: int, start: int, end: int, min_run: int) -> int:
    """Return the last row of ``start..end`` ending ``min_run`` consecutive ``code`` predictions."""
    return _settled_row(codes, code, range(start, end + 1), min_run, start)


def _settled_start(codes: np.ndarray, code: int, start: int, end: int, min_run: int) -> int:
    """Return the first row of ``start..end`` starting ``min_run`` consecutive ``code`` predictions."""
    return _settled_row(codes, code, range(end, start - 1, -1), min_run, end)


def boundaries_table(boundaries: Sequence[Boundary]) -> list[dict]:
    """Return the boundaries as rows for a CSV file (``BOUNDARY_COLUMNS``)."""
    return [
        {
            "from_label": b.from_label,
            "to_label": b.to_label,
            "value": float(b.value),
            "low": float(b.low),
            "high": float(b.high),
            "index_before": int(b.index_before),
            "index_after": int(b.index_after),
        }
        for b in boundaries
    ]
