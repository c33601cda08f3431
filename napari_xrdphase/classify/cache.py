"""Embeddings computed once per series and encoder, for refits that follow each new label.

``FeatureCache(encoder)`` keeps, for each series (the ``SpectraStack`` object itself: a series
replaced by a grown one is a new entry):

- the embeddings of all its curves (``embeddings``), which prediction and novelty read and from
  which the labelled curves' own embeddings are taken;
- the embeddings of its labelled curves under each probe strain (``strained``), computed for
  newly labelled curves only;
- the strain whitening of a set of series (``whitening``), which does not depend on the labels.

``fit_classifier(..., cache=cache)`` then embeds nothing but the strained copies of curves
labelled since the last fit, so a refit after one more label costs the L-BFGS fit and a
prediction from cached embeddings. The encoder's embedding of a curve does not depend on the
other curves of its batch, so cached and fresh embeddings agree (to float32 rounding).
Only numpy; the encoder needs torch. Thread-safe (one lock).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..stack import SpectraStack, StackError
from .classifier import ClassifierError, Embedder, _checked_embeddings


class FeatureCache:
    """The embeddings of an encoder, computed once per series (see the module docstring)."""

    def __init__(self, encoder: Embedder) -> None:
        if not callable(getattr(encoder, "embed", None)):
            raise TypeError(f"encoder must have an embed method, got {type(encoder).__name__}")
        self.encoder = encoder
        self._lock = threading.RLock()
        self._full: dict[int, tuple[SpectraStack, np.ndarray]] = {}
        self._strained: dict[tuple[int, float], dict[int, np.ndarray]] = {}
        self._whitening: dict[tuple, tuple[Any, str]] = {}

    def __repr__(self) -> str:
        return f"FeatureCache({len(self._full)} series, encoder={type(self.encoder).__name__})"

    def _key(self, stack: SpectraStack) -> int:
        key = id(stack)
        held = self._full.get(key)
        if held is not None and held[0] is not stack:  # an id reused by a new object
            self._forget(key)
        return key

    def _forget(self, key: int) -> None:
        self._full.pop(key, None)
        for strained in [k for k in self._strained if k[0] == key]:
            del self._strained[strained]
        for whitening in [k for k in self._whitening if key in k[0]]:
            del self._whitening[whitening]

    def keep_only(self, stacks: Sequence[SpectraStack]) -> None:
        """Forget every series but ``stacks`` (those closed, or replaced by a grown copy)."""
        keep = {id(s) for s in stacks}
        with self._lock:
            for key in [k for k in self._full if k not in keep]:
                self._forget(key)

    def embeddings(self, stack: SpectraStack) -> np.ndarray:
        """Return the embeddings of every curve of ``stack`` (computed on the first call)."""
        with self._lock:
            key = self._key(stack)
            if key not in self._full:
                found = _checked_embeddings(self.encoder.embed(stack), stack.n_curves, stack.name)
                self._full[key] = (stack, np.asarray(found))
            return self._full[key][1]

    def rows(self, stack: SpectraStack, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Return the embeddings of ``rows`` of ``stack``."""
        return self.embeddings(stack)[np.asarray(rows, dtype=np.int64)]

    def strained(
        self, stack: SpectraStack, rows: Sequence[int] | np.ndarray, strain: float
    ) -> np.ndarray:
        """Return the embeddings of ``rows`` under a uniform ``strain`` (new rows embedded)."""
        rows = np.asarray(rows, dtype=np.int64)
        with self._lock:
            self.embeddings(stack)  # registers the series (and drops a stale id)
            known = self._strained.setdefault((id(stack), float(strain)), {})
            missing = sorted({int(r) for r in rows} - set(known))
            if missing:
                for row, vector in zip(
                    missing, _embed_strained(self.encoder, stack, missing, strain), strict=True
                ):
                    known[row] = vector
            if rows.size == 0:
                return np.empty((0, self.embeddings(stack).shape[1]))
            return np.stack([known[int(r)] for r in rows])

    def whitening(self, stacks: Sequence[SpectraStack], whitening_strain: float) -> tuple[Any, str]:
        """Return ``whitening._strain_whitening(encoder, stacks, whitening_strain)``, computed once."""
        from .whitening import _strain_whitening

        with self._lock:
            for stack in stacks:
                self.embeddings(stack)
            key = (tuple(id(s) for s in stacks), float(whitening_strain))
            if key not in self._whitening:
                self._whitening[key] = _strain_whitening(self.encoder, stacks, whitening_strain)
            return self._whitening[key]


def _embed_strained(
    encoder: Embedder, stack: SpectraStack, rows: list[int], strain: float
) -> np.ndarray:
    """Return the embeddings of ``rows`` of ``stack`` with their d-spacings scaled by 1 + strain."""
    subset, keep = _rows_subset(stack, rows)
    return _embed_strained_subset(encoder, subset, keep, strain, stack.name)


def _rows_subset(stack: SpectraStack, rows: Any) -> tuple[SpectraStack, slice | list[int]]:
    """Return ``rows`` of ``stack`` as a stack, and which of its curves are those rows.

    A SpectraStack holds at least 2 curves: one row comes with a neighbour, dropped again.
    """
    rows = [int(r) for r in np.asarray(rows).ravel()]
    if len(rows) != 1:
        return stack.subset(rows), slice(None)
    row = rows[0]
    partner = row + 1 if row + 1 < stack.n_curves else row - 1
    pair = sorted((row, partner))
    return stack.subset(pair), [pair.index(row)]


def _embed_strained_subset(
    encoder: Embedder, subset: SpectraStack, keep: slice | list[int], strain: float, name: str
) -> np.ndarray:
    """Return the embeddings of ``subset[keep]`` with their d-spacings scaled by 1 + ``strain``."""
    with warnings.catch_warnings():
        # a window-coverage warning was given for the curves themselves
        warnings.filterwarnings("ignore", message=".*cover only", category=UserWarning)
        try:
            strained = subset.strained(float(strain))
        except StackError as exc:
            raise ClassifierError(
                f"{exc}; fit the classifier with strain=0 (no strained copies)"
            ) from exc
        embeddings = encoder.embed(strained)
    return _checked_embeddings(embeddings, subset.n_curves, name)[keep]
