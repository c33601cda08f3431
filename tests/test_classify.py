import warnings

import h5py
import numpy as np
import pytest
from _toy import AXIS, ProjectionEncoder, peak, phase_series

from napari_xrdphase.classify import (
    PROBE_STRAIN,
    PROBE_STRAIN_STEPS,
    PROBE_WHITENING_STRAIN,
    Classifier,
    ClassifierError,
    LabelError,
    fit_classifier,
    order_classes,
    probe_strains,
)
from napari_xrdphase.stack import SpectraStack

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def every_nth_label(truth, name, step=4, offset=0):
    return {name: {i: str(truth[i]) for i in range(offset, len(truth), step)}}


def held_out_accuracy(classifier, stack, truth, labels):
    held_out = np.setdiff1d(np.arange(stack.n_curves), list(labels[stack.name]))
    return float(np.mean(classifier.predict(stack)[held_out] == truth[held_out]))


# --- learning ------------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_classifier_learns_separable_phases_on_held_out_curves(solver):
    stack, truth = phase_series(n=80)
    labels = every_nth_label(truth, stack.name, step=3)
    classifier = fit_classifier(ProjectionEncoder(), [stack], labels, solver=solver)
    assert classifier.classes == ("before", "during", "after")
    assert held_out_accuracy(classifier, stack, truth, labels) >= 0.95
    probabilities = classifier.predict_proba(stack)
    assert probabilities.shape == (80, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert classifier.summary.val_accuracy >= 0.9
    assert classifier.summary.labels_per_class == {
        c: int(np.sum(np.array(list(labels[stack.name].values())) == c))
        for c in ("before", "during", "after")
    }


def test_labels_from_several_series_train_one_classifier():
    first, truth_first = phase_series("first", n=40, seed=1)
    second, truth_second = phase_series("second", n=40, start=0.3, end=0.5, seed=2)
    labels = {
        **every_nth_label(truth_first, "first", step=4),
        **every_nth_label(truth_second, "second", step=4, offset=1),
    }
    classifier = fit_classifier(ProjectionEncoder(), [first, second], labels)
    assert held_out_accuracy(classifier, first, truth_first, labels) >= 0.9
    assert held_out_accuracy(classifier, second, truth_second, labels) >= 0.9


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_same_seed_gives_identical_classifier_and_another_seed_another_split(solver):
    stack, truth = phase_series()
    labels = every_nth_label(truth, stack.name, step=2)
    first = fit_classifier(ProjectionEncoder(), [stack], labels, seed=3, solver=solver)
    again = fit_classifier(ProjectionEncoder(), [stack], labels, seed=3, solver=solver)
    other = fit_classifier(ProjectionEncoder(), [stack], labels, seed=4, solver=solver)
    np.testing.assert_array_equal(first.weight, again.weight)
    np.testing.assert_array_equal(first.predict_proba(stack), again.predict_proba(stack))
    if solver == "sgd":  # trained on another part of the labels
        assert not np.allclose(first.weight, other.weight)
    else:  # the seed only changes the cross-validation folds; the final fit sees every label
        np.testing.assert_array_equal(first.mean, other.mean)


def test_lbfgs_final_fit_uses_every_label_and_folds_never_hold_out_a_whole_class():
    from napari_xrdphase.classify.fitting import _stratified_folds

    codes = np.array([0] * 9 + [1] * 2 + [2] * 1 + [3] * 5)
    for seed in range(5):
        folds = _stratified_folds(codes, 4, seed)
        held = np.concatenate(folds)
        assert held.size == np.unique(held).size  # each curve held out at most once
        assert 11 not in held  # a single labelled curve always trains
        for fold in folds:
            for code in (0, 1, 3):
                assert np.sum(codes[np.setdiff1d(np.arange(codes.size), fold)] == code) >= 1
    stack, truth = phase_series()
    labels = every_nth_label(truth, stack.name, step=3)
    classifier = fit_classifier(ProjectionEncoder(), [stack], labels, whitening_strain=0)
    assert classifier.summary.n_train == len(labels[stack.name])
    embedded = ProjectionEncoder().embed(stack)[sorted(labels[stack.name])]
    np.testing.assert_allclose(classifier.mean, embedded.astype(np.float64).mean(axis=0), rtol=1e-6)


def imbalanced_mixtures(n_majority, n_minority, seed):
    """Curves mixing two peaks; class A mostly the 20° peak, B the 30° peak, overlapping."""
    rng = np.random.default_rng(seed)
    fraction = np.concatenate(
        [rng.normal(0.38, 0.12, n_majority), rng.normal(0.62, 0.12, n_minority)]
    )
    curves = (1 - fraction)[:, None] * peak(20) + fraction[:, None] * peak(30)
    curves += 0.01 * rng.standard_normal(curves.shape)
    truth = np.array(["A"] * n_majority + ["B"] * n_minority)
    return curves, truth


def test_class_balancing_raises_minority_recall_on_imbalanced_labels():
    labelled_curves, labelled_truth = imbalanced_mixtures(60, 6, seed=0)
    test_curves, test_truth = imbalanced_mixtures(300, 300, seed=1)
    stack = SpectraStack(np.concatenate([labelled_curves, test_curves]), AXIS, name="mix")
    labels = {"mix": {i: str(c) for i, c in enumerate(labelled_truth)}}
    unlabelled_rows = np.arange(labelled_truth.size, stack.n_curves)
    recall = {}
    for balanced in (True, False):
        classifier = fit_classifier(
            ProjectionEncoder(), [stack], labels, class_balanced=balanced, val_fraction=0.3
        )
        predicted = classifier.predict(stack)[unlabelled_rows]
        recall[balanced] = float(np.mean(predicted[test_truth == "B"] == "B"))
    assert recall[True] > recall[False] + 0.1


# --- validation only -----------------------------------------------------------------------
def test_only_labelled_curves_and_the_whitening_sample_are_embedded_during_training():
    stack, _ = phase_series(n=50)
    labels = {stack.name: {3: "before", 9: "before", 12: "before", 40: "after", 45: "after"}}
    encoder = ProjectionEncoder()
    fit_classifier(encoder, [stack], labels, whitening_strain=0)
    seen = [source for call in encoder.seen_sources for source in call]
    # each labelled curve once as it is and once per strained copy
    labelled = [stack.sources[i] for i in labels[stack.name] for _ in range(1 + PROBE_STRAIN_STEPS)]
    assert sorted(seen) == sorted(labelled)
    whitened = ProjectionEncoder()
    classifier = fit_classifier(whitened, [stack], labels)
    seen = [source for call in whitened.seen_sources for source in call]
    # and every curve of this small series as it is and under ±WHITENING_STEP, labels unused
    assert sorted(seen) == sorted(labelled + list(stack.sources) * 3)
    assert classifier.summary.n_whitening_curves == 50


def test_sgd_stops_patience_epochs_after_the_best_validation_epoch_and_restores_it():
    stack, truth = phase_series(n=80, noise=0.1)
    labels = every_nth_label(truth, stack.name, step=3)
    done = []
    stopped = fit_classifier(
        ProjectionEncoder(),
        [stack],
        labels,
        solver="sgd",
        patience=5,
        progress=lambda d, t: done.append(d),
    )
    best, epochs = stopped.summary.best_epoch, stopped.summary.epochs
    assert epochs == best + 5 < 1000
    assert done == list(range(1, epochs + 1))
    # training exactly up to the best epoch reproduces the restored weights
    up_to_best = fit_classifier(
        ProjectionEncoder(), [stack], labels, solver="sgd", patience=1000, max_epochs=best
    )
    np.testing.assert_allclose(up_to_best.weight, stopped.weight, rtol=0, atol=1e-12)


def test_single_example_of_a_class_stays_in_training_with_a_warning():
    stack, _ = phase_series(n=40)
    labels = {stack.name: {0: "before", 2: "before", 4: "before", 6: "before", 39: "after"}}
    with pytest.warns(UserWarning, match="'after' has a single labelled curve"):
        classifier = fit_classifier(ProjectionEncoder(), [stack], labels)
    # cross-validated L-BFGS: each 'before' is held out in one of the 4 folds, all 5 train
    assert classifier.summary.n_train == 5 and classifier.summary.n_val == 4
    assert any("single labelled curve" in note for note in classifier.summary.notes)
    assert classifier.predict(stack)[-1] == "after"


def test_a_single_labelled_curve_in_a_series_is_embedded_alone():
    first, _ = phase_series("first", n=20)
    second, _ = phase_series("second", n=20)
    labels = {
        "first": {0: "before", 1: "before", 19: "after", 18: "after"},
        "second": {19: "after"},
    }
    encoder = ProjectionEncoder()
    classifier = fit_classifier(encoder, [first, second], labels)
    assert classifier.summary.labels_per_class == {"before": 2, "after": 3}


# --- label errors --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({}, "no labelled curves"),
        ({"run1": {}}, "no labelled curves"),
        ({"run1": {0: "before", 5: "before"}}, "all labelled curves are 'before'"),
        ({"run9": {0: "before"}, "run1": {30: "after"}}, r"\['run9'\].*known datasets: \['run1'\]"),
        (
            {"run1": {0: "before", 60: "after"}},
            "run1: labelled index 60 is out of range; the series has 60 curves",
        ),
        ({"run1": {-1: "before", 50: "after"}}, "run1: labelled index -1 is out of range"),
        ({"run1": {0: "before", 50: " "}}, "run1: curve 50 has an empty label"),
        ({"run1": {0: "before", 50: None}}, "run1: curve 50 has an empty label"),
        ({"run1": {"zero": "before", 50: "after"}}, "row index 'zero' is not an integer"),
        ({"run1": ["before", "after"]}, "labels of 'run1' must map row indices"),
        (
            {"run1": {0: "before", 40: "after", 50: "After"}},
            "the labels 'After' and 'after' differ only in case",
        ),
        ({"run1": {0: "hcp  Fe", 50: "hcp Fe", 9: "bcc"}}, "'hcp  Fe' and 'hcp Fe' differ only"),
    ],
)
def test_unusable_labels_raise_label_error_saying_why(labels, message):
    stack, _ = phase_series("run1", n=60)
    with pytest.raises(LabelError, match=message):
        fit_classifier(ProjectionEncoder(), [stack], labels)


class ConstantEncoder:
    def embed(self, stack_or_array, batch_size=4096, device=None):
        return np.zeros((stack_or_array.n_curves, 8), dtype=np.float32)


def test_an_encoder_giving_identical_embeddings_is_reported():
    stack, truth = phase_series(n=40)
    with pytest.warns(UserWarning, match="same embedding for every labelled curve"):
        fit_classifier(ConstantEncoder(), [stack], every_nth_label(truth, stack.name, 2))


def test_two_series_with_the_same_name_make_labels_ambiguous():
    first, _ = phase_series("run1", n=20)
    second, _ = phase_series("run1", n=20, seed=1)
    with pytest.raises(LabelError, match="2 series are named 'run1'"):
        fit_classifier(ProjectionEncoder(), [first, second], {"run1": {0: "before", 19: "after"}})


def test_numpy_integer_indices_and_padded_labels_are_accepted():
    stack, _ = phase_series("run1", n=20)
    labels = {"run1": {np.int64(0): "before ", np.int32(1): "before", 18: "after", 19: " after"}}
    classifier = fit_classifier(ProjectionEncoder(), [stack], labels)
    assert classifier.classes == ("before", "after")


def test_class_order_is_before_during_after_for_the_standard_labels_else_sorted():
    assert order_classes({"after", "before", "during"}) == ("before", "during", "after")
    assert order_classes(["after", "before"]) == ("before", "after")
    assert order_classes({"hcp", "bcc", "before"}) == ("bcc", "before", "hcp")


# --- prediction on stacks ------------------------------------------------------------------
def test_chunked_and_lazy_prediction_equals_whole_stack_prediction(tmp_path):
    stack, truth = phase_series(n=21)
    classifier = fit_classifier(ProjectionEncoder(), [stack], every_nth_label(truth, stack.name, 2))
    whole = classifier.predict_proba(stack)
    # chunks of 4 leave a last chunk of a single curve
    np.testing.assert_allclose(classifier.predict_proba(stack, chunk_size=4), whole, atol=1e-12)
    with h5py.File(tmp_path / "series.h5", "w") as file:
        file["intensities"] = stack.curves()
    with h5py.File(tmp_path / "series.h5", "r") as file:
        lazy = stack.replace(intensities=file["intensities"])
        assert lazy.is_lazy
        np.testing.assert_allclose(classifier.predict_proba(lazy, chunk_size=8), whole, atol=1e-12)
    embeddings = ProjectionEncoder().embed(stack)
    np.testing.assert_allclose(classifier.predict_proba(embeddings), whole, atol=1e-12)
    assert list(classifier.predict(stack)) == [classifier.classes[i] for i in whole.argmax(axis=1)]


def test_embeddings_of_the_wrong_length_are_rejected():
    stack, truth = phase_series(n=20)
    classifier = fit_classifier(ProjectionEncoder(), [stack], every_nth_label(truth, stack.name, 2))
    with pytest.raises(ClassifierError, match=r"expected embeddings of shape \(curves, 24\)"):
        classifier.predict_proba(stack.curves())


# --- files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_saved_classifier_loads_with_identical_probabilities(tmp_path, solver):
    stack, truth = phase_series(n=40)
    encoder = ProjectionEncoder()
    classifier = fit_classifier(
        encoder, [stack], every_nth_label(truth, stack.name, 3), solver=solver
    )
    path = classifier.save(tmp_path / "probe.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe.safetensors"]  # no temp file left
    loaded = Classifier.load(path, encoder)
    assert loaded.classes == classifier.classes
    assert loaded.summary == classifier.summary
    np.testing.assert_array_equal(loaded.predict_proba(stack), classifier.predict_proba(stack))


def test_loading_with_an_encoder_of_another_configuration_warns(tmp_path):
    stack, truth = phase_series(n=40)
    classifier = fit_classifier(
        ProjectionEncoder(seed=0), [stack], every_nth_label(truth, stack.name, 3)
    )
    path = classifier.save(tmp_path / "probe.safetensors")
    with pytest.warns(UserWarning, match="another configuration"):
        Classifier.load(path, ProjectionEncoder(seed=1))


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: b"not a classifier at all",
        lambda data: b"",
        lambda data: data[:9] + b"#" + data[10:],  # broken JSON header
        lambda data: data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:],  # a flipped weight byte
    ],
)
def test_corrupt_classifier_file_is_rejected_with_a_clear_error(tmp_path, damage):
    stack, truth = phase_series(n=40)
    encoder = ProjectionEncoder()
    path = fit_classifier(encoder, [stack], every_nth_label(truth, stack.name, 3)).save(
        tmp_path / "probe.safetensors"
    )
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ClassifierError, match=r"probe\.safetensors"):
        Classifier.load(path, encoder)


def test_safetensors_file_of_something_else_is_rejected(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"weight": np.zeros((2, 3))}, str(path))
    with pytest.raises(ClassifierError, match="not a napari-xrdphase classifier file"):
        Classifier.load(path, ProjectionEncoder())


def test_missing_classifier_file_names_the_path(tmp_path):
    with pytest.raises(
        ClassifierError, match=r"cannot read classifier file .*missing\.safetensors"
    ):
        Classifier.load(tmp_path / "missing.safetensors", ProjectionEncoder())


# --- phase order ---------------------------------------------------------------------------
RENAMED = {"before": "bcc", "during": "mixed", "after": "hcp"}  # sorted: bcc, hcp, mixed


def renamed_labels(truth, name, step=6):
    return {name: {i: RENAMED[str(truth[i])] for i in range(0, len(truth), step)}}


def test_phase_order_is_the_classes_by_the_pressure_of_their_labelled_curves():
    stack, truth = phase_series(n=60, noise=0.15, seed=3)
    labels = renamed_labels(truth, stack.name)
    classifier = fit_classifier(ProjectionEncoder(), [stack], labels)
    assert classifier.classes == ("bcc", "hcp", "mixed")
    assert classifier.phase_order == ("bcc", "mixed", "hcp")
    ranks = [
        classifier.phase_order.index(c)
        for c in classifier.predict(stack, labels=labels[stack.name])
    ]
    assert ranks == sorted(ranks)
    assert (
        classifier.describe_phase_order("pressure")
    ) == "phases in order of rising pressure: bcc → mixed → hcp"
    unordered = fit_classifier(ProjectionEncoder(), [stack], labels, ordered=False)
    assert unordered.phase_order is None
    proba = unordered.predict_proba(stack)
    np.testing.assert_array_equal(
        unordered.predict(stack), np.asarray(unordered.classes)[proba.argmax(1)]
    )


def test_decompression_series_share_the_order_and_run_it_backwards():
    up, truth = phase_series(n=60, seed=1)
    down = up.replace(
        intensities=up.curves()[::-1], variable=up.variable[::-1], name="down", sources=None
    )
    labels = {**renamed_labels(truth, up.name), "down": {5: "hcp", 30: "mixed", 55: "bcc"}}
    classifier = fit_classifier(ProjectionEncoder(), [up, down], labels)
    assert classifier.phase_order == ("bcc", "mixed", "hcp")
    ranks = [classifier.phase_order.index(c) for c in classifier.predict(down)]
    assert ranks == sorted(ranks, reverse=True)


def test_series_with_different_external_variables_are_not_put_in_order():
    stack, truth = phase_series(n=40)
    other = stack.replace(name="by_index", variable=None, variable_name="index", variable_unit="")
    labels = {**every_nth_label(truth, stack.name, 4), "by_index": {0: "before", 39: "after"}}
    with pytest.warns(UserWarning, match="different external variables"):
        classifier = fit_classifier(ProjectionEncoder(), [stack, other], labels)
    assert classifier.phase_order is None
    assert "each curve classified on its own" in classifier.describe_phase_order()
    # the same quantity under another name (a "P" column in GPa) is the same variable
    renamed = stack.replace(name="P_named", variable_name="P")
    labels = {**every_nth_label(truth, stack.name, 4), "P_named": {0: "before", 39: "after"}}
    assert fit_classifier(ProjectionEncoder(), [stack, renamed], labels).phase_order == (
        "before", "during", "after",
    )  # fmt: skip


def test_phase_order_survives_saving_and_older_files_without_one_load_unordered(tmp_path):
    from safetensors.numpy import load as load_tensors
    from safetensors.numpy import save as save_tensors

    from napari_xrdphase.classify.classifier_file import _safetensors_metadata

    stack, truth = phase_series(n=40)
    encoder = ProjectionEncoder()
    classifier = fit_classifier(encoder, [stack], every_nth_label(truth, stack.name, 3))
    path = classifier.save(tmp_path / "probe.safetensors")
    assert Classifier.load(path, encoder).phase_order == ("before", "during", "after")

    data = path.read_bytes()
    metadata = _safetensors_metadata(data)
    del metadata["phase_order"]
    old = tmp_path / "old.safetensors"
    old.write_bytes(save_tensors(load_tensors(data), metadata=metadata))
    assert Classifier.load(old, encoder).phase_order is None

    metadata["phase_order"] = '["before", "after", "liquid"]'
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(save_tensors(load_tensors(data), metadata=metadata))
    with pytest.raises(ClassifierError, match=r"bad\.safetensors.*not an ordering of the classes"):
        Classifier.load(bad, encoder)


# --- strained copies of the labelled curves ------------------------------------------------
class AxisRecorder(ProjectionEncoder):
    """ProjectionEncoder that also records the scattering axis of every stack it embeds."""

    def __init__(self):
        super().__init__()
        self.axes = []

    def embed(self, stack_or_array, batch_size=4096, device=None):
        self.axes.append(np.array(stack_or_array.axis))
        return super().embed(stack_or_array, batch_size, device)


def test_probe_strains_are_symmetric_evenly_spaced_and_never_zero():
    np.testing.assert_allclose(probe_strains(0.01, 2), [-0.01, 0.01])
    np.testing.assert_allclose(probe_strains(0.03, 4), [-0.03, -0.015, 0.015, 0.03])
    np.testing.assert_allclose(probe_strains(0.03, 3), [-0.015, 0.015, 0.03])
    assert probe_strains(0.0, 8).size == 0 and probe_strains(0.02, 0).size == 0
    for strain, n in [(-0.01, 2), (0.6, 2), (float("nan"), 2), (0.01, -1), (0.01, 1.5)]:
        with pytest.raises((ValueError, TypeError)):
            probe_strains(strain, n)


def test_every_labelled_curve_is_learnt_under_each_strain_with_its_label():
    stack, truth = phase_series(n=40)
    labels = every_nth_label(truth, stack.name, 4)
    encoder = AxisRecorder()
    classifier = fit_classifier(encoder, [stack], labels, whitening_strain=0)
    expected = [stack.axis] + [stack.strained(s).axis for s in probe_strains(PROBE_STRAIN, 2)]
    assert len(encoder.axes) == 1 + PROBE_STRAIN_STEPS
    for seen, axis in zip(encoder.axes, expected, strict=True):
        np.testing.assert_allclose(seen, axis)
    summary = classifier.summary
    assert (summary.strain, summary.n_strained) == (PROBE_STRAIN, PROBE_STRAIN_STEPS)
    assert summary.n_train == len(labels[stack.name])  # curves, not copies
    assert f"under {PROBE_STRAIN_STEPS} strains in ±1 %" in str(summary)

    plain = AxisRecorder()
    unstrained = fit_classifier(plain, [stack], labels, strain=0.0, whitening_strain=0)
    assert len(plain.axes) == 1 and unstrained.summary.n_strained == 0
    assert "strains" not in str(unstrained.summary)


def test_strain_settings_survive_saving_and_older_files_load_without_them(tmp_path):
    import json

    from safetensors.numpy import load as load_tensors
    from safetensors.numpy import save as save_tensors

    from napari_xrdphase.classify.classifier_file import _safetensors_metadata

    stack, truth = phase_series(n=40)
    encoder = ProjectionEncoder()
    path = fit_classifier(encoder, [stack], every_nth_label(truth, stack.name, 3)).save(
        tmp_path / "probe.safetensors"
    )
    assert Classifier.load(path, encoder).summary.n_strained == PROBE_STRAIN_STEPS
    data = path.read_bytes()
    metadata = _safetensors_metadata(data)
    summary = json.loads(metadata["summary"])
    del summary["strain"], summary["n_strained"]
    metadata["summary"] = json.dumps(summary)
    old = tmp_path / "old.safetensors"
    old.write_bytes(save_tensors(load_tensors(data), metadata=metadata))
    loaded = Classifier.load(old, encoder).summary
    assert (loaded.strain, loaded.n_strained) == (0.0, 0)


def test_strained_copies_let_a_compression_probe_read_a_decompression_series():
    """hcp Fe persists on decompression below the pressures of any labelled hcp curve."""
    synth = pytest.importorskip("napari_xrdphase.synth")
    encoder_module = pytest.importorskip("napari_xrdphase.encoder")
    suite = {s.stack.name: s for s in synth.paper_suite(seed=0, n_points=2000)}
    labels = {
        name: {i: str(suite[name].labels[i]) for i in range(0, suite[name].stack.n_curves, 10)}
        for name in ("D4", "D5")  # compression only
    }
    stacks = [suite[name].stack for name in ("D4", "D5", "D7")]
    encoder = encoder_module.Encoder.builtin()
    accuracy = {}
    for strain, whitening in [(0.0, 0.0), (PROBE_STRAIN, 0.0), (PROBE_STRAIN, None)]:
        kwargs = {} if whitening is None else {"whitening_strain": whitening}
        classifier = fit_classifier(encoder, stacks, labels, strain=strain, **kwargs)
        predicted = classifier.predict(suite["D7"].stack)
        accuracy[strain, whitening] = np.mean(predicted == suite["D7"].labels)
    assert accuracy[PROBE_STRAIN, 0.0] > accuracy[0.0, 0.0] + 0.15
    assert accuracy[PROBE_STRAIN, None] > accuracy[0.0, 0.0] + 0.15  # the default


# --- the real encoder, once it exists ------------------------------------------------------
def test_classifier_trains_on_the_real_encoder():
    encoder_module = pytest.importorskip("napari_xrdphase.encoder")
    stack, truth = phase_series(n=40)
    encoder = encoder_module.Encoder.random(1)
    labels = every_nth_label(truth, stack.name, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        classifier = fit_classifier(encoder, [stack], labels)
    probabilities = classifier.predict_proba(stack)
    assert probabilities.shape == (40, len(classifier.classes))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert held_out_accuracy(classifier, stack, truth, labels) >= 0.9


def test_a_curve_that_cannot_be_strained_names_the_way_out():
    curves = np.ones((4, AXIS.size))
    curves[2:, 5] = 3.0
    stack = SpectraStack(curves, np.linspace(100.0, 179.0, AXIS.size), name="backscatter")
    labels = {"backscatter": {0: "before", 1: "before", 2: "after", 3: "after"}}
    with pytest.raises(ClassifierError, match=r"beyond 180°.*strain=0"):
        fit_classifier(ProjectionEncoder(), [stack], labels)
    with pytest.warns(UserWarning, match="no strain whitening from backscatter: a strain"):
        unstrained = fit_classifier(ProjectionEncoder(), [stack], labels, strain=0)
    assert unstrained.classes == ("before", "after")
    assert unstrained.summary.whitening_strain == 0.0


def test_strain_whitening_folds_into_one_linear_map_of_the_embedding():
    stack, truth = phase_series(n=60)
    labels = every_nth_label(truth, stack.name, step=4)
    encoder = ProjectionEncoder()
    classifier = fit_classifier(encoder, [stack], labels)
    summary = classifier.summary
    assert summary.whitening_strain == PROBE_WHITENING_STRAIN and summary.n_whitening_curves == 60
    assert "features whitened against a 3 % uniform strain (its effect measured on 60" in str(
        summary
    )
    # the stored weights reproduce the fit on whitened features: logits of the raw embeddings
    from napari_xrdphase.classify.whitening import _strain_whitening

    whitening, note = _strain_whitening(encoder, [stack], PROBE_WHITENING_STRAIN)
    assert note == "" and whitening.n_curves == 60
    np.testing.assert_allclose(classifier.mean, whitening.mean)
    # folding: a fit on standardised whitened features gives the same logits on raw embeddings
    rng = np.random.default_rng(0)
    embeddings = encoder.embed(stack).astype(np.float64)
    features = whitening.apply(embeddings)
    weight, bias = rng.normal(size=(3, features.shape[1])), rng.normal(size=3)
    mean, scale = features.mean(axis=0), features.std(axis=0) + 0.5
    folded = whitening.fold(weight, bias, mean, scale)
    np.testing.assert_allclose(
        (embeddings - folded[2]) / folded[3] @ folded[0].T + folded[1],
        (features - mean) / scale @ weight.T + bias,
        rtol=1e-9, atol=1e-9,
    )  # fmt: skip
    assert held_out_accuracy(classifier, stack, truth, labels) >= 0.9
    off = fit_classifier(encoder, [stack], labels, whitening_strain=0)
    assert off.summary.whitening_strain == 0 and "whitened" not in str(off.summary)
    with pytest.raises(ValueError, match="whitening_strain must be in"):
        fit_classifier(encoder, [stack], labels, whitening_strain=-0.01)


def test_the_whitening_sample_is_spread_over_the_series_by_size(monkeypatch):
    from napari_xrdphase.classify import whitening as classify

    big, _ = phase_series("big", n=300)
    small, _ = phase_series("small", n=20)
    rows = dict((stack.name, r) for stack, r in classify._whitening_rows([big, small]))
    assert rows["big"].size == 300 and rows["small"].size == 20  # under the cap: every curve
    monkeypatch.setattr(classify, "WHITENING_MAX_CURVES", 64)
    rows = dict((stack.name, r) for stack, r in classify._whitening_rows([big, small]))
    assert rows["big"].size == 60 and rows["small"].size == 4
    assert rows["big"][0] == 0 and rows["big"][-1] == 299 and np.all(np.diff(rows["big"]) > 0)


def test_strain_whitening_keeps_the_phase_of_curves_far_from_every_labelled_one():
    """Labels on the clearest curves only (ends of each phase): the others lie 1–3 % away."""
    synth = pytest.importorskip("napari_xrdphase.synth")
    encoder_module = pytest.importorskip("napari_xrdphase.encoder")
    from benchmarks.protocol import far_labels

    suite = {s.stack.name: s for s in synth.paper_suite(seed=0, n_points=2000)}
    labels = far_labels({n: suite[n].labels for n in ("D4", "D5")}, ("D4", "D5"))
    stacks = [suite[n].stack for n in ("D1", "D2", "D3", "D4", "D5")]
    encoder = encoder_module.Encoder.builtin()
    accuracy = {}
    for whitening in (0.0, PROBE_WHITENING_STRAIN):
        classifier = fit_classifier(encoder, stacks, labels, whitening_strain=whitening)
        accuracy[whitening] = np.mean(
            np.concatenate(
                [classifier.predict(suite[n].stack) == suite[n].labels for n in ["D1", "D2", "D3"]]
            )
        )
    assert accuracy[PROBE_WHITENING_STRAIN] > 0.95 and accuracy[0.0] < 0.85
