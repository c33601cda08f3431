"""UMAP maps, spectral clusters and scores on small synthetic features with known groups."""

import numpy as np
import pytest

from napari_xrdphase.explore import (
    clustering_scores,
    embed_umap,
    raw_features,
    spectral_clusters,
    standardize_features,
)
from napari_xrdphase.stack import SpectraStack


def three_blobs(n_per_blob=20, dims=16, spread=0.3, seed=0):
    """Return (features, truth): three well separated Gaussian blobs in acquisition order."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(3, dims))
    features = np.concatenate([c + spread * rng.normal(size=(n_per_blob, dims)) for c in centres])
    truth = np.repeat(["before", "during", "after"], n_per_blob)
    return features.astype(np.float32), truth


@pytest.mark.parametrize("affinity", ["nearest_neighbors", "rbf"])
@pytest.mark.parametrize("assign_labels", ["kmeans", "discretize"])
def test_spectral_clusters_find_separated_blobs_numbered_in_order(affinity, assign_labels):
    features, truth = three_blobs()
    clusters = spectral_clusters(features, 3, affinity=affinity, assign_labels=assign_labels)
    np.testing.assert_array_equal(clusters, np.repeat([0, 1, 2], 20))
    scores = clustering_scores(features, clusters, truth)
    assert scores["silhouette"] > 0.8
    assert scores["nmi"] == pytest.approx(1.0)
    assert scores["ari"] == pytest.approx(1.0)


def test_spectral_clusters_are_the_same_for_the_same_seed():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(50, 8))  # no structure: the solver's randomness shows
    first = spectral_clusters(features, 4, seed=7)
    np.testing.assert_array_equal(first, spectral_clusters(features, 4, seed=7))


def test_scores_of_a_random_clustering_are_low():
    features, truth = three_blobs()
    random_clusters = np.random.default_rng(1).integers(0, 3, size=truth.size)
    scores = clustering_scores(features, random_clusters, truth)
    assert scores["silhouette"] < 0.1
    assert scores["nmi"] < 0.2
    assert abs(scores["ari"]) < 0.1


def test_scores_without_truth_hold_only_silhouette_and_skip_unknown_labels():
    features, truth = three_blobs()
    clusters = np.repeat([0, 1, 2], 20)
    assert set(clustering_scores(features, clusters)) == {"silhouette"}
    partial = truth.astype(object)
    partial[::2] = None
    assert clustering_scores(features, clusters, partial)["nmi"] == pytest.approx(1.0)
    assert np.isnan(clustering_scores(features, np.zeros(60, int))["silhouette"])


def test_umap_keeps_blobs_apart_and_is_deterministic_by_seed():
    features, _ = three_blobs()
    coordinates = embed_umap(features, n_neighbors=10, seed=0)
    assert coordinates.shape == (60, 2)
    np.testing.assert_array_equal(coordinates, embed_umap(features, n_neighbors=10, seed=0))
    # each blob stays together in the map: clustering the map recovers the blobs
    map_scores = clustering_scores(coordinates, np.repeat([0, 1, 2], 20))
    assert map_scores["silhouette"] > 0.7


def test_umap_falls_back_to_pca_with_a_warning_for_few_curves():
    features, _ = three_blobs(n_per_blob=3)
    with pytest.warns(UserWarning, match="principal components"):
        coordinates = embed_umap(features)
    assert coordinates.shape == (9, 2)
    centred = features - features.mean(axis=0)
    # the first coordinate carries the largest variance: that of the first principal component
    top = np.linalg.svd(centred, compute_uv=False)[0]
    assert np.linalg.norm(coordinates[:, 0]) == pytest.approx(top, rel=1e-4)


def test_standardize_drops_constant_columns():
    features, _ = three_blobs()
    features[:, 3] = 2.0
    scaled = standardize_features(features)
    assert scaled.shape == (60, 15)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, rtol=1e-6)


def test_raw_features_are_prepared_curves():
    axis = np.linspace(5.0, 20.0, 300)
    curves = np.stack([10 + 100 * np.exp(-((axis - 8 - i) ** 2)) for i in range(5)])
    stack = SpectraStack(intensities=curves, axis=axis, name="blobs")
    features = raw_features(stack, input_length=128)
    assert features.shape == (5, 128)
    assert features.min() == 0.0
    np.testing.assert_allclose(features.max(axis=1), 1.0, atol=1e-3)


def test_bad_arguments_raise_readable_errors():
    features, _ = three_blobs()
    with pytest.raises(ValueError, match="n_clusters"):
        spectral_clusters(features, 1)
    with pytest.raises(ValueError, match="affinity"):
        spectral_clusters(features, 3, affinity="cosine")
    with pytest.raises(ValueError, match="one per curve"):
        clustering_scores(features, [0, 1])
    with pytest.raises(ValueError, match="2D"):
        embed_umap(features[0])
