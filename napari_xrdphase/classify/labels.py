"""Checking labels and ordering their classes."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence

import numpy as np

from ..boundaries import order_contradiction, ramp_directions
from ..stack import SpectraStack
from .classifier import LabelError

STANDARD_CLASS_ORDER = ("before", "during", "after")


def order_classes(names: Sequence[str] | set[str]) -> tuple[str, ...]:
    """Return class names in display order: before, during, after when all are among those; else sorted."""
    unique = set(names)
    if unique <= set(STANDARD_CLASS_ORDER):
        return tuple(c for c in STANDARD_CLASS_ORDER if c in unique)
    return tuple(sorted(unique))


def check_labels(
    stacks: Sequence[SpectraStack], labels: Mapping[str, Mapping[int, str]]
) -> list[tuple[SpectraStack, np.ndarray, list[str]]]:
    """Return (stack, sorted rows, labels) per labelled stack, or raise ``LabelError``."""
    if not isinstance(labels, Mapping):
        raise LabelError(
            f"labels must map dataset names to {{row: label}}, got {type(labels).__name__}"
        )
    known = [s.name for s in stacks]
    unknown = [name for name in labels if name not in known]
    if unknown:
        raise LabelError(
            f"labels name datasets {unknown} that are not among the series; known datasets: {known}"
        )
    out = []
    for stack in stacks:
        if stack.name not in labels:
            continue
        if known.count(stack.name) > 1:
            raise LabelError(
                f"{known.count(stack.name)} series are named {stack.name!r}, so its labels are "
                "ambiguous; give each series its own name"
            )
        per_row = labels[stack.name]
        if not isinstance(per_row, Mapping):
            raise LabelError(
                f"labels of {stack.name!r} must map row indices to label strings, "
                f"got {type(per_row).__name__}"
            )
        rows, names = [], []
        for index, label in per_row.items():
            try:
                row = operator.index(index)
            except TypeError:
                raise LabelError(f"{stack.name}: row index {index!r} is not an integer") from None
            if not 0 <= row < stack.n_curves:
                raise LabelError(
                    f"{stack.name}: labelled index {row} is out of range; the series has "
                    f"{stack.n_curves} curves (indices 0–{stack.n_curves - 1})"
                )
            if not isinstance(label, str) or not label.strip():
                raise LabelError(f"{stack.name}: curve {row} has an empty label ({label!r})")
            rows.append(row)
            names.append(label.strip())
        if not rows:
            continue
        order = np.argsort(rows, kind="stable")
        out.append((stack, np.asarray(rows, dtype=np.int64)[order], [names[i] for i in order]))
    if not out:
        raise LabelError("no labelled curves; label at least one curve of each phase")
    classes = {name for _, _, names in out for name in names}
    by_spelling: dict[str, list[str]] = {}
    for name in sorted(classes):
        by_spelling.setdefault(" ".join(name.casefold().split()), []).append(name)
    same = next((names for names in by_spelling.values() if len(names) > 1), None)
    if same:
        raise LabelError(
            f"the labels {' and '.join(map(repr, same))} differ only in case or spacing, so they "
            "would be separate classes; spell each phase the same way on every curve"
        )
    if len(classes) < 2:
        raise LabelError(
            f"all labelled curves are {classes.pop()!r}; a classifier needs at least two "
            "classes: label curves of another phase too"
        )
    return out


def labelled_phase_order(
    labelled: Sequence[tuple[SpectraStack, np.ndarray, list[str]]],
) -> tuple[tuple[str, ...] | None, str]:
    """Return (classes by the median external variable of their labelled curves, why not).

    ``labelled`` as ``check_labels`` returns it. The order is None, with the reason, when
    the labelled series have different external variables (by unit; by name where there is
    none, so "P" and "pressure" in GPa agree) or two classes share a median.
    """
    kinds = {stack.variable_unit or stack.variable_name for stack, _, _ in labelled}
    variables = {(stack.variable_name, stack.variable_unit) for stack, _, _ in labelled}
    if len(kinds) > 1:
        listed = ", ".join(f"{name} [{unit}]" if unit else name for name, unit in sorted(variables))
        return None, (
            f"the labelled series have different external variables ({listed}), so the "
            "phases are not put in order along them; each curve is classified on its own"
        )
    values: dict[str, list[float]] = {}
    for stack, rows, names in labelled:
        for value, name in zip(
            np.asarray(stack.variable, dtype=np.float64)[rows], names, strict=True
        ):
            values.setdefault(name, []).append(float(value))
    medians = {name: float(np.median(v)) for name, v in values.items()}
    if len(set(medians.values())) < len(medians):
        return None, (
            "two classes have labelled curves at the same median "
            f"{min(variables)[0]} ({medians}), so the phases are not put in order; "
            "each curve is classified on its own"
        )
    order = tuple(sorted(medians, key=medians.__getitem__))
    rank = np.array([order.index(c) for c in order])
    contradicting = []
    for stack, rows, names in labelled:
        pinned = {int(row): order.index(name) for row, name in zip(rows, names, strict=True)}
        if order_contradiction(pinned, rank, ramp_directions(stack.variable)) is not None:
            contradicting.append(stack.name)
    if contradicting and len(contradicting) == len(labelled):
        return None, (
            "the labelled curves contradict any single phase order (a class is labelled on "
            "both sides of another along the ramp), so each curve is classified on its own"
        )
    if contradicting:
        return order, (
            f"the labels of {', '.join(contradicting)} contradict the phase order "
            f"{' → '.join(order)}; the curves of that series are classified each on its own"
        )
    return order, ""
