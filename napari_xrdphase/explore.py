"""Look at a series without labels: a 2D UMAP map of its curves, spectral clusters, and scores.

Everything here is pure computation on an (N × D) feature array — the encoder's embeddings of
a series, or the prepared raw curves for comparison (:func:`raw_features`). numpy, scikit-learn
and umap-learn are imported inside the functions, so importing this module costs nothing.

Every function is deterministic for a given ``seed`` (UMAP then runs single-threaded).
Cluster numbers are renumbered in order of first appearance along the series, so cluster 0 is
the one the first curve belongs to, and a compression series reads 0, 1, 2 from low to high
pressure whatever the solver's internal numbering.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .stack import SpectraStack

__all__ = [
    "AFFINITIES",
    "ASSIGN_LABELS",
    "UMAP_MIN_CURVES",
    "clustering_scores",
    "embed_umap",
    "raw_features",
    "spectral_clusters",
    "standardize_features",
]

AFFINITIES = ("nearest_neighbors", "rbf")
ASSIGN_LABELS = ("kmeans", "discretize")
# below this many curves UMAP's neighbour graph is meaningless; PCA is used instead
UMAP_MIN_CURVES = 10
# neighbours of the nearest_neighbors affinity (scikit-learn's default), capped at N - 1
SPECTRAL_NEIGHBOURS = 10


def _as_features(features: Any) -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"features must be 2D (curves × features), got shape {array.shape}")
    if array.shape[0] < 2:
        raise ValueError(f"need at least 2 curves to compare, got {array.shape[0]}")
    if array.shape[1] < 1:
        raise ValueError("features have no columns")
    if not np.all(np.isfinite(array)):
        bad = np.flatnonzero(~np.isfinite(array).all(axis=1))[:10].tolist()
        raise ValueError(f"features of curves {bad} contain NaN or inf")
    return array


def standardize_features(features: Any) -> np.ndarray:
    """Return features with every column scaled to mean 0, std 1; constant columns are dropped.

    ConvSC embeddings end in a ReLU: non-negative, with a large common mean and some features
    that never fire. Standardised, every informative feature counts the same (as in the
    linear probe, ``classify.py``). If every column is constant, one column of zeros is returned.
    """
    array = _as_features(features)
    std = array.std(axis=0)
    keep = std > 1e-12 * max(1.0, float(np.abs(array).max()))
    if not keep.any():
        return np.zeros((array.shape[0], 1))
    kept = array[:, keep]
    return (kept - kept.mean(axis=0)) / std[keep]


def raw_features(stack: SpectraStack, input_length: int = 1024) -> np.ndarray:
    """Return the stack's curves prepared as encoder input ((N, input_length), [0, 1] each)."""
    from .preprocess import prepare_stack

    return prepare_stack(stack, int(input_length))


def _pca_2d(array: np.ndarray) -> np.ndarray:
    centred = array - array.mean(axis=0)
    # SVD signs are fixed so the map does not flip between runs or platforms
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(2, s.size)
    out = np.zeros((array.shape[0], 2))
    scores = u[:, :k] * s[:k]
    signs = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(k)])
    signs[signs == 0] = 1.0
    out[:, :k] = scores * signs
    return out


def embed_umap(
    features: Any, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0
) -> np.ndarray:
    """Return (N, 2) float32 UMAP coordinates of the feature rows (PCA for fewer than 10 rows)."""
    array = _as_features(features)
    n = array.shape[0]
    if int(n_neighbors) < 2:
        raise ValueError(f"n_neighbors must be ≥ 2, got {n_neighbors}")
    if not 0.0 <= float(min_dist) <= 1.0:
        raise ValueError(f"min_dist must be between 0 and 1, got {min_dist}")
    if n < UMAP_MIN_CURVES:
        warnings.warn(
            f"UMAP needs at least {UMAP_MIN_CURVES} curves for a meaningful neighbour graph; "
            f"showing the first two principal components of the {n} curves instead",
            UserWarning,
            stacklevel=2,
        )
        return _pca_2d(array).astype(np.float32)
    import umap

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(int(n_neighbors), n - 1),
        min_dist=float(min_dist),
        random_state=int(seed),
        n_jobs=1,  # a seed makes UMAP single-threaded anyway; saying so avoids its warning
        # small series: the spectral initialisation fails on disconnected graphs with a warning
        init="spectral" if n > 2 * int(n_neighbors) else "random",
    )
    with warnings.catch_warnings():
        # umap/pynndescent warn about numba and graph connectivity in ways a user cannot act on
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        coordinates = reducer.fit_transform(array)
    return np.asarray(coordinates, dtype=np.float32)


def _first_appearance_order(labels: np.ndarray) -> np.ndarray:
    _, first = np.unique(labels, return_index=True)
    order = labels[np.sort(first)]
    mapping = {int(old): new for new, old in enumerate(order)}
    return np.array([mapping[int(v)] for v in labels], dtype=np.int64)


def spectral_clusters(
    features: Any,
    n_clusters: int,
    affinity: str = "nearest_neighbors",
    assign_labels: str = "kmeans",
    seed: int = 0,
) -> np.ndarray:
    """Return (N,) int cluster numbers from spectral clustering, numbered by first appearance.

    ``affinity="nearest_neighbors"`` links each curve to its 10 nearest neighbours (robust to
    the feature scale); ``"rbf"`` uses exp(−γ‖x − y‖²) with γ = 1 / (D · var(features)), the
    "scale" rule of scikit-learn's SVC, so it suits features of any magnitude.
    ``assign_labels`` is how the spectral embedding is cut: ``"kmeans"`` or ``"discretize"``
    (no random restarts, less sensitive to the seed).
    """
    array = _as_features(features)
    n = array.shape[0]
    if affinity not in AFFINITIES:
        raise ValueError(f"affinity must be one of {AFFINITIES}, not {affinity!r}")
    if assign_labels not in ASSIGN_LABELS:
        raise ValueError(f"assign_labels must be one of {ASSIGN_LABELS}, not {assign_labels!r}")
    if int(n_clusters) != n_clusters or not 2 <= n_clusters <= n - 1:
        raise ValueError(f"n_clusters must be a whole number from 2 to {n - 1}, got {n_clusters}")
    from sklearn.cluster import SpectralClustering

    variance = float(array.var())
    gamma = 1.0 / (array.shape[1] * variance) if variance > 0 else 1.0
    model = SpectralClustering(
        n_clusters=int(n_clusters),
        affinity=affinity,
        assign_labels=assign_labels,
        n_neighbors=min(SPECTRAL_NEIGHBOURS, n - 1),
        gamma=gamma,
        random_state=int(seed),
    )
    with warnings.catch_warnings():
        # "Graph is not fully connected": clustering still works, a user cannot act on it
        warnings.simplefilter("ignore", category=UserWarning)
        labels = model.fit_predict(array)
    return _first_appearance_order(np.asarray(labels))


def clustering_scores(features: Any, clusters: Any, truth: Any = None) -> dict[str, float]:
    """Return {"silhouette", and with ``truth`` "nmi" and "ari"} for a clustering of the rows.

    ``silhouette`` (−1 … 1) says how well separated the clusters are in the features (NaN
    with one cluster, or one cluster per curve). ``nmi`` (normalised mutual information, 0 … 1)
    and ``ari`` (adjusted Rand index, ≈0 for chance … 1) compare the clusters with the true
    labels, ignoring how either is numbered. Rows whose truth is None or "" are left out of
    nmi and ari.
    """
    from sklearn.metrics import (
        adjusted_rand_score,
        normalized_mutual_info_score,
        silhouette_score,
    )

    array = _as_features(features)
    clusters = np.asarray(clusters)
    if clusters.shape != (array.shape[0],):
        raise ValueError(
            f"{clusters.size} cluster numbers for {array.shape[0]} curves; give one per curve"
        )
    n_groups = np.unique(clusters).size
    scores: dict[str, float] = {
        "silhouette": float(silhouette_score(array, clusters))
        if 2 <= n_groups <= array.shape[0] - 1
        else float("nan")
    }
    if truth is not None:
        truth = np.asarray([("" if t is None else str(t)) for t in truth], dtype=object)
        if truth.shape != clusters.shape:
            raise ValueError(f"{truth.size} true labels for {clusters.size} curves")
        known = truth != ""
        if known.sum() >= 2:
            scores["nmi"] = float(normalized_mutual_info_score(truth[known], clusters[known]))
            scores["ari"] = float(adjusted_rand_score(truth[known], clusters[known]))
        else:
            scores["nmi"] = scores["ari"] = float("nan")
    return scores
