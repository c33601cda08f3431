"""Which curves to label next: the ones whose labels would help the classifier most.

``suggest_curves(encoder, stacks, labels, n)`` returns ``Suggestion`` rows, best first, never a
labelled curve, the same for the same ``seed``:

- **with labels of at least two classes**, the classifier is fitted as ``classify`` fits it and
  each unlabelled curve gets a worth ``(uncertainty + novelty') · density^½``:
  uncertainty ``(1 - p_max) / (1 - 1/classes)`` (0 sure … 1 a coin toss), novelty' the
  curve's novelty (``classify/novelty.py``) capped at 2 and halved (0 … 1), density the curve's
  representativeness: the mean of ``exp(-d²/2h²)`` over its ``DENSITY_NEIGHBOURS`` nearest
  curves in feature space (h: the median distance to them over all curves), divided by the
  largest. Curves are then taken greedily, best worth first; each pick multiplies the worth of
  the others by ``1 - max(exp(-d²/2h²), exp(-Δ²/2w²))``, d their feature distance to it and
  Δ their distance along the same series (rank of the external variable over the series
  length; w = ``VARIABLE_WIDTH``), so that the picks do not sit next to each other;
- **with no labels** (or one class only), each series gets its share of the ``n`` curves
  (one each first, the rest by size), and within a series k-means (scikit-learn, k-means++
  seeded by ``seed``) on its standardised features proposes the curve nearest each cluster
  centre — one per group of similar curves (usually one per phase); the order alternates
  between series, biggest clusters first. Labelled curves' clusters are skipped.

Only numpy and scikit-learn here; the classifier needs torch through the encoder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .stack import SpectraStack, StackError

DENSITY_NEIGHBOURS = 10
VARIABLE_WIDTH = 0.05  # picks in the same series repel over ~5 % of its length
NOVELTY_CAP = 2.0


@dataclass(frozen=True)
class Suggestion:
    """A curve worth labelling: where it is and what the classifier makes of it now."""

    dataset: str
    index: int
    variable: float
    predicted: str = ""  # "" with no classifier yet (no labels)
    confidence: float = math.nan
    novelty: float = math.nan


def suggest_curves(
    encoder: Any,
    stacks: Sequence[SpectraStack],
    labels: Mapping[str, Mapping[int, str]] | None = None,
    n: int = 5,
    *,
    seed: int = 0,
    classifier: Any = None,
    embeddings: Mapping[str, np.ndarray] | None = None,
    ignore_phases: Any = None,
    **fit_options: Any,
) -> list[Suggestion]:
    """Return the ``n`` unlabelled curves whose labels would help most, best first.

    ``labels`` {series: {row: class}} (None or empty: no labels yet); ``classifier``: one
    already fitted on these labels (else ``fit_classifier(encoder, stacks, labels, seed=seed,
    **fit_options)`` when the labels hold two classes or more); ``embeddings`` {series:
    curves × features}: the encoder's embeddings when already computed. ``ignore_phases``
    (names such as ``["Pt", "Ne"]``, 'Pt,Ne' or a ``PhaseMask``): the lines of these markers
    and media, at each curve's pressure, are fitted and subtracted before the curves are
    embedded, as ``fit_classifier`` does; None: what the encoder was pretrained with, ``[]``:
    nothing.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise StackError(f"the number of curves to suggest must be a whole number ≥ 1, got {n}")
    stacks = list(stacks)
    if not stacks:
        raise StackError("no series to suggest curves from")
    names = [s.name for s in stacks]
    labels = {k: dict(v) for k, v in (labels or {}).items() if k in names and v}
    if embeddings is None or any(s.name not in embeddings for s in stacks):
        from .phases.masking import masked_stacks

        stacks, mask = masked_stacks(stacks, ignore_phases, encoder)
        ignore_phases = () if mask is not None else ignore_phases  # masked once, here
    emb = {}
    for stack in stacks:
        given = None if embeddings is None else embeddings.get(stack.name)
        emb[stack.name] = np.asarray(encoder.embed(stack) if given is None else given, float)
    classes = {str(c) for rows in labels.values() for c in rows.values()}
    if classifier is None and len(classes) >= 2:
        from .classify import fit_classifier

        classifier = fit_classifier(
            encoder, stacks, labels, seed=seed, ignore_phases=ignore_phases, **fit_options
        )
    if classifier is None:
        return _spread(stacks, emb, labels, int(n), seed)
    return _greedy(stacks, emb, labels, int(n), classifier)


def _greedy(stacks, emb, labels, n, classifier) -> list[Suggestion]:
    from .results import classify_series

    names = np.array([class_ for class_ in classifier.classes])
    rows, features, worth, where, predicted, confidence, novelty = [], [], [], [], [], [], []
    for s, stack in enumerate(stacks):
        e = emb[stack.name]
        proba = classifier.predict_proba(e)
        nov = classifier.novelty(e)
        if nov is None:
            nov = np.zeros(stack.n_curves)
        pinned = labels.get(stack.name, {})
        labels_now = classify_series(classifier, stack, proba, pinned).labels
        uncertainty = (1.0 - proba.max(axis=1)) / max(1.0 - 1.0 / names.size, 1e-9)
        worth.append(uncertainty + np.minimum(nov, NOVELTY_CAP) / NOVELTY_CAP)
        features.append(classifier.features(e))
        rank = np.argsort(np.argsort(stack.variable, kind="stable"), kind="stable")
        where.append(np.column_stack([np.full(stack.n_curves, s), rank / max(stack.n_curves, 1)]))
        rows.append(np.arange(stack.n_curves))
        predicted.append(labels_now)
        confidence.append(proba.max(axis=1))
        novelty.append(nov)
        free = np.ones(stack.n_curves, dtype=bool)
        free[[r for r in pinned if 0 <= r < stack.n_curves]] = False
        worth[-1] = np.where(free, worth[-1], -np.inf)
    x = np.concatenate(features)
    worth_all = np.concatenate(worth)
    position = np.concatenate(where)
    width = _neighbour_width(x)
    density = _density(x, width)
    score = np.where(np.isfinite(worth_all), worth_all * np.sqrt(density), -np.inf)
    series_of = position[:, 0].astype(int)
    row_of = np.concatenate(rows)
    picks = []
    for _ in range(min(n, int(np.isfinite(score).sum()))):
        k = int(np.argmax(score))  # ties: the first curve (stable, hence seed-free)
        if not np.isfinite(score[k]):
            break
        picks.append(k)
        d2 = ((x - x[k]) ** 2).sum(axis=1)
        near = np.exp(-d2 / (2 * width**2))
        same = series_of == series_of[k]
        along = np.where(
            same, np.exp(-((position[:, 1] - position[k, 1]) ** 2) / (2 * VARIABLE_WIDTH**2)), 0
        )
        score = np.where(np.isfinite(score), score * (1.0 - np.maximum(near, along)), score)
        score[k] = -np.inf
    out = []
    for k in picks:
        s, r = int(series_of[k]), int(row_of[k])
        stack = stacks[s]
        value = float(stack.variable[r])
        sure, new = float(confidence[s][r]), float(novelty[s][r])
        out.append(Suggestion(stack.name, r, value, str(predicted[s][r]), sure, new))
    return out


def _neighbour_width(x: np.ndarray) -> float:
    """The median distance from a curve to its ``DENSITY_NEIGHBOURS`` nearest others."""
    d = _knn_distances(x)
    width = float(np.median(d)) if d.size else 1.0
    return width if width > 0 else 1.0


def _knn_distances(x: np.ndarray) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    k = min(DENSITY_NEIGHBOURS, x.shape[0] - 1)
    if k < 1:
        return np.zeros((x.shape[0], 0))
    distance, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    return distance[:, 1:]


def _density(x: np.ndarray, width: float) -> np.ndarray:
    """Each curve's representativeness in (0, 1]: Gaussian-weighted count of close neighbours."""
    d = _knn_distances(x)
    if d.shape[1] == 0:
        return np.ones(x.shape[0])
    density = np.exp(-(d**2) / (2 * width**2)).mean(axis=1)
    top = density.max()
    return density / top if top > 0 else np.ones(x.shape[0])


def _spread(stacks, emb, labels, n, seed) -> list[Suggestion]:
    """No classifier yet: per series, the curves nearest k-means centres, series alternating."""
    from sklearn.cluster import KMeans

    share = _shares([s.n_curves - len(labels.get(s.name, {})) for s in stacks], n)
    per_series = []
    for stack, k in zip(stacks, share, strict=True):
        taken = {r for r in labels.get(stack.name, {}) if 0 <= r < stack.n_curves}
        if k == 0:
            per_series.append([])
            continue
        e = emb[stack.name]
        x = (e - e.mean(axis=0)) / np.maximum(e.std(axis=0), 1e-12)
        clusters = min(stack.n_curves, k + len(taken))
        model = KMeans(n_clusters=clusters, n_init=4, random_state=int(seed)).fit(x)
        sizes = np.bincount(model.labels_, minlength=clusters)
        owned = {int(model.labels_[r]) for r in taken}
        chosen = []
        for c in np.argsort(-sizes, kind="stable"):
            if int(c) in owned:
                continue
            members = np.flatnonzero(model.labels_ == c)
            members = np.array([m for m in members if m not in taken and m not in chosen])
            if members.size == 0:
                continue
            d = ((x[members] - model.cluster_centers_[c]) ** 2).sum(axis=1)
            chosen.append(int(members[np.argmin(d)]))
            if len(chosen) == k:
                break
        per_series.append([(stack, r) for r in chosen])
    out = []
    for depth in range(max((len(p) for p in per_series), default=0)):
        for picks in per_series:
            if depth < len(picks):
                stack, r = picks[depth]
                out.append(Suggestion(stack.name, r, float(stack.variable[r])))
    return out[:n]


def _shares(sizes: Sequence[int], n: int) -> list[int]:
    """Split ``n`` picks over series: one each (largest first) while they last, the rest by size."""
    sizes = np.maximum(np.asarray(sizes, dtype=int), 0)
    share = np.zeros(sizes.size, dtype=int)
    order = np.argsort(-sizes, kind="stable")
    for i in order[: min(n, int((sizes > 0).sum()))]:
        share[i] = 1
    rest = n - share.sum()
    if rest > 0 and sizes.sum() > share.sum():
        room = sizes - share
        wanted = rest * room / room.sum()
        extra = np.floor(wanted).astype(int)
        for i in np.argsort(-(wanted - extra), kind="stable")[: rest - extra.sum()]:
            extra[i] += 1
        share += np.minimum(extra, room)
    return share.tolist()
