"""The active-learning benchmark's simulated user: starting labels, by-eye order, cache."""

import numpy as np

from benchmarks.active_learning import CachedEncoder, far_order, start_labels
from napari_xrdphase.synth import simulate_series

TRUTH = {
    "A": np.array(["before"] * 5 + ["during"] * 3 + ["after"] * 6),
    "B": np.array(["before"] * 4 + ["after"] * 4),  # not all phases: never the starting series
    "C": np.array(["before"] * 3 + ["during"] * 4 + ["after"] * 3),
}


def test_start_labels_take_one_curve_per_phase_in_one_full_series_per_material():
    labels = start_labels(TRUTH, {"Fe": ("A", "B"), "FeO": ("C",)}, seed=3)
    assert set(labels) == {"A", "C"}
    for name, rows in labels.items():
        assert sorted(rows.values()) == ["after", "before", "during"]
        assert all(TRUTH[name][r] == c for r, c in rows.items())
    assert labels == start_labels(TRUTH, {"Fe": ("A", "B"), "FeO": ("C",)}, seed=3)


def test_far_order_starts_with_the_curves_farthest_from_another_phase():
    order = far_order(TRUTH, seed=0)
    assert len(order) == len(set(order)) == sum(y.size for y in TRUTH.values())
    first = dict.fromkeys((n, str(TRUTH[n][r])) for n, r in order[:8])
    assert len(first) == 8  # one per (series, phase) before any second curve
    assert ("A", 0) in order[:8] and ("A", 13) in order[:8]  # the ends of the ramp


class _Counting:
    calls = 0

    def embed(self, data):
        self.calls += 1
        return np.asarray(data.intensities)[:, :4]


def test_cached_encoder_embeds_the_same_curves_once():
    stack = simulate_series("Fe", 2, 1, 2, n_points=200, seed=0).stack
    encoder = CachedEncoder(_Counting())
    first = encoder.embed(stack)
    assert np.array_equal(encoder.embed(stack), first) and encoder.calls == 1
    encoder.embed(stack.subset([0, 1]))
    assert encoder.calls == 2
