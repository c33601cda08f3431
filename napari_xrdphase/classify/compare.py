"""Which encoder classifies the labelled curves better? ``compare_encoders``.

Each encoder gets the product's classifier (``fit_classifier``, same labels, seed and settings),
whose cross-validation (stratified folds of the labelled curves, every strained copy of a held-out
curve held out with it) gives an accuracy and a per-curve loss on labelled curves it did not fit.
Nothing is chosen for the user: the comparison is printed, and the user picks ``--model`` or
leaves it out.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["compare_encoders", "describe_comparison"]


def compare_encoders(
    encoders: Mapping[str, Any],
    stacks: Sequence[Any],
    labels: Mapping[str, Mapping[int, str]],
    **fit_kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """Return {name: {"accuracy", "loss", "n_labels", "n_held_out"}} of each encoder's classifier.

    ``fit_kwargs`` go to ``fit_classifier`` (``seed``, ``strain``, ...); accuracy and loss are
    the cross-validated ones of its summary (None with too few labels to hold any out).
    """
    from .fitting import fit_classifier

    if not encoders:
        raise ValueError("no encoders to compare")
    out = {}
    for name, encoder in encoders.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            summary = fit_classifier(encoder, stacks, labels, **fit_kwargs).summary
        out[name] = {
            "accuracy": summary.val_accuracy,
            "loss": summary.val_loss,
            "n_labels": summary.n_train,
            "n_held_out": summary.n_val,
        }
    return out


def describe_comparison(comparison: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Return one line per encoder (cross-validated accuracy and loss), then which did better."""
    lines = []
    for name, score in comparison.items():
        if score["accuracy"] is None:
            lines.append(f"{name}: too few labels to cross-validate")
            continue
        lines.append(
            f"{name}: cross-validated accuracy {100 * score['accuracy']:.1f} %, loss "
            f"{score['loss']:.3f} ({score['n_held_out']} labelled curves held out in turn)"
        )
    scored = {n: s for n, s in comparison.items() if s["accuracy"] is not None}
    if len(scored) > 1:
        # the loss breaks ties in accuracy (few labels make accuracy coarse)
        best = max(scored, key=lambda n: (scored[n]["accuracy"], -scored[n]["loss"]))
        lines.append(f"better on your labelled curves: {best}")
    return lines
