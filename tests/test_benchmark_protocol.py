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


def test_product_labels_keep_the_phase_order_and_the_labelled_curves():
    from benchmarks.protocol import product_labels
    from napari_xrdphase.stack import SpectraStack
    from napari_xrdphase.synth import SimulatedSeries

    n = 10
    stack = SpectraStack(
        np.random.default_rng(0).random((n, 20)), np.linspace(5, 25, 20),
        variable=np.linspace(0, 20, n), variable_name="pressure", variable_unit="GPa", name="s",
    )  # fmt: skip
    truth = np.array(["before"] * 5 + ["after"] * 5)
    suite = [SimulatedSeries(stack, truth)]
    p_after = np.array([0.1, 0.2, 0.7, 0.2, 0.3, 0.8, 0.9, 0.4, 0.9, 0.6])  # flips at 2 and 7
    proba = {"s": np.column_stack([p_after, 1 - p_after])}  # columns: after, before
    labels = {"s": {0: "before", 9: "after"}}
    ordered = product_labels(suite, labels, ["after", "before"], proba)
    np.testing.assert_array_equal(ordered["s"], truth)  # one change, where the cost is least
    unordered = product_labels(suite, labels, ["after", "before"], proba, ordered=False)
    np.testing.assert_array_equal(unordered["s"], np.where(p_after > 0.5, "after", "before"))
    pinned = product_labels(suite, {"s": {0: "before", 5: "before", 9: "after"}}, ["after",
                            "before"], proba)  # fmt: skip
    assert pinned["s"][5] == "before" and list(pinned["s"][6:]) == ["after"] * 4


def test_far_labels_take_the_curves_of_each_phase_farthest_from_the_others():
    from benchmarks.protocol import far_labels

    truth = {"up": np.array(["before"] * 6 + ["during"] * 5 + ["after"] * 6)}
    labels = far_labels(truth, ["up"], per_class=2)["up"]
    assert labels == {0: "before", 1: "before", 7: "during", 8: "during", 15: "after", 16: "after"}
    down = {"down": truth["up"][::-1].copy(), "one": np.array(["before"] * 4)}
    assert far_labels(down, ["down", "one"], per_class=1) == {
        "down": {0: "after", 8: "during", 16: "before"},
        "one": {0: "before"},
    }
