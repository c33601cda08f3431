"""How well an encoder separates a user's curves, without labels: ``separation_score``.

The score asks whether curves that an embedding puts close together were recorded in the same
state of the sample. With two or more series, each curve's ``k`` nearest neighbours are looked
for among the curves of the *other* series (embeddings standardised per output, Euclidean
distance), and its external variable (pressure) is compared with theirs: the mean absolute
difference over all curves, ``d_knn``, against the same mean over every other-series curve
(what neighbours drawn at random would give), ``d_random``. The score is
``1 − d_knn / d_random``: 0 for an embedding that knows nothing of the state, 1 when every curve's
neighbours share its pressure exactly. Looking only at other series makes it blind to what
makes a series easy to recognise (its wavelength, background, marker lines) and rewards what
the phase label depends on; with one series the neighbours are its curves more than
``max(2, N / 20)`` acquisition steps away, so the near-identical next curve does not count.

Pure numpy, no torch: pretraining (its stopping rule and its report against the built-in
encoder) and the benchmarks call it on the embeddings of a fixed, evenly spaced subset of the
training curves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["SEPARATION_CURVES", "SEPARATION_K", "evenly_spaced", "separation_score"]

# neighbours per curve; embeddings of at most SEPARATION_CURVES curves (evenly spaced)
SEPARATION_K = 5
SEPARATION_CURVES = 512


def evenly_spaced(n: int, at_most: int = SEPARATION_CURVES) -> np.ndarray:
    """Return the indices of at most ``at_most`` curves spread evenly over ``n``."""
    return np.unique(np.linspace(0, n - 1, min(int(n), int(at_most))).round().astype(int))


def separation_score(
    embeddings: np.ndarray,
    variable: Sequence[float],
    series: Sequence[int],
    k: int = SEPARATION_K,
) -> float:
    """Return the k-NN separation score (≤ 1; 0 = no better than random) of ``embeddings``.

    ``variable`` is each curve's external variable, ``series`` the index of its series
    (acquisition order within a series is the row order). NaN when it cannot be measured:
    fewer than 3 curves, or a variable that does not vary across the candidate neighbours.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    v = np.asarray(variable, dtype=np.float64)
    s = np.asarray(series)
    n = x.shape[0]
    if n < 3 or v.shape != (n,) or s.shape != (n,) or not np.all(np.isfinite(x)):
        return float("nan")
    x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)
    squared = np.sum(x * x, axis=1)
    distance = squared[:, None] + squared[None, :] - 2 * x @ x.T
    if len(np.unique(s)) > 1:
        allowed = s[:, None] != s[None, :]
    else:
        position = np.arange(n)
        gap = max(2, n // 20)
        allowed = np.abs(position[:, None] - position[None, :]) > gap
    knn_error, random_error = [], []
    differences = np.abs(v[:, None] - v[None, :])
    for i in range(n):
        candidates = np.flatnonzero(allowed[i])
        if candidates.size == 0:
            continue
        nearest = candidates[np.argsort(distance[i, candidates], kind="stable")[: int(k)]]
        knn_error.append(differences[i, nearest].mean())
        random_error.append(differences[i, candidates].mean())
    if not random_error or not np.mean(random_error) > 0:
        return float("nan")
    return float(1.0 - np.mean(knn_error) / np.mean(random_error))
