"""The paper's evaluation protocol used by the benchmarks."""

import numpy as np

from benchmarks.protocol import LABELLED_SERIES, sample_labels, unlabelled_rows, weighted_scores


def make_truth():
    rng = np.random.default_rng(0)
    truth = {}
    for i, n in enumerate([60, 120, 100, 140, 144, 160, 120, 212, 460], start=1):
        k = [n // 4, n // 6, n - n // 4 - n // 6]
        if i == 1:
            k = [17, 0, 43]
        truth[f"D{i}"] = np.array(["before"] * k[0] + ["during"] * k[1] + ["after"] * k[2])
    return truth, rng


def test_sample_labels_draws_42_curves_from_the_labelled_series_with_every_class():
    truth, _ = make_truth()
    labels = sample_labels(truth, 42, seed=3)
    assert sum(len(v) for v in labels.values()) == 42
    assert set(labels) == set(LABELLED_SERIES)
    for name, rows in labels.items():
        assert set(rows.values()) == set(np.unique(truth[name]))
        assert all(truth[name][i] == label for i, label in rows.items())
    assert sample_labels(truth, 42, seed=3) == labels
    assert sample_labels(truth, 42, seed=4) != labels


def test_scores_are_computed_on_unlabelled_curves_only():
    truth, _ = make_truth()
    labels = sample_labels(truth, 42, seed=0)
    rows = unlabelled_rows(truth, labels)
    assert sum(len(r) for r in rows.values()) == sum(len(y) for y in truth.values()) - 42
    perfect = weighted_scores(truth, truth, rows)
    assert perfect["groups"]["Fe"] == {"precision": 1.0, "recall": 1.0}
    wrong = {k: np.where(v == "after", "before", v) for k, v in truth.items()}
    scores = weighted_scores(truth, wrong, rows)
    assert scores["groups"]["FeO"]["recall"] < 0.5
