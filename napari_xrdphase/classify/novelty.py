"""Novelty: how unlike every labelled curve a curve is, in the classifier's feature space.

A curve's novelty is its distance to the nearest labelled curve divided by a scale calibrated
on the labelled curves themselves: the median, over the labelled curves, of the distance from
each one to its nearest other labelled curve (leave-one-out nearest-neighbour distance).
Distances are Euclidean between standardised embeddings (the classifier's ``mean`` and
``scale``: those of the strain-whitening sample of the series, or of the labelled curves).

So a labelled curve scores 0, a curve as close to a labelled one as labelled curves are to
each other scores 1, and a curve of a series unlike every labelled one scores above 1.
``NOVELTY_THRESHOLD`` (1) marks a curve as novel; a series where at least
``NOVEL_SHARE_WARNING`` (40 %) of the curves are novel gets a warning (``results.py``).
Only numpy.
"""

from __future__ import annotations

import numpy as np

NOVELTY_THRESHOLD = 1.0
NOVEL_SHARE_WARNING = 0.4
# labelled curves closer than this to each other (in scale units of the typical feature) are
# the same curve twice; the calibration ignores such zero distances
_SAME_CURVE = 1e-9


def nearest_distances(features: np.ndarray, reference: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Return each row of ``features``' Euclidean distance to its nearest row of ``reference``."""
    features = np.asarray(features, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    ref_sq = (reference * reference).sum(axis=1)
    out = np.empty(features.shape[0])
    for start in range(0, features.shape[0], chunk):
        block = features[start : start + chunk]
        sq = (block * block).sum(axis=1)[:, None] + ref_sq[None, :] - 2.0 * block @ reference.T
        out[start : start + chunk] = np.sqrt(np.clip(sq.min(axis=1), 0.0, None))
    return out


def novelty_scale(reference: np.ndarray) -> float:
    """Return the median leave-one-out nearest-neighbour distance among the ``reference`` rows.

    With a single labelled curve (or all identical) there is no such distance: the scale is
    then the root-mean-square size of a standardised feature vector's spread, ``sqrt(features)``
    — the distance between two independent standardised curves.
    """
    reference = np.asarray(reference, dtype=np.float64)
    fallback = float(np.sqrt(reference.shape[1]))
    if reference.shape[0] < 2:
        return fallback
    diff = reference[:, None, :] - reference[None, :, :]
    distance = np.sqrt((diff * diff).sum(axis=2))
    np.fill_diagonal(distance, np.inf)
    distance[distance < _SAME_CURVE] = np.inf
    loo = distance.min(axis=1)
    loo = loo[np.isfinite(loo)]
    return float(np.median(loo)) if loo.size else fallback


def novelty_scores(features: np.ndarray, reference: np.ndarray, scale: float) -> np.ndarray:
    """Return the novelty of each row of ``features``: nearest-reference distance / ``scale``."""
    return nearest_distances(features, reference) / float(scale)


def novel_share(novelty: np.ndarray, threshold: float = NOVELTY_THRESHOLD) -> float:
    """Return the fraction of curves whose novelty exceeds ``threshold`` (0 for none)."""
    novelty = np.asarray(novelty, dtype=np.float64)
    return float(np.mean(novelty > threshold)) if novelty.size else 0.0
