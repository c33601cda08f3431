"""Novelty: how unlike every labelled curve a curve is (built-in encoder, short series)."""

import csv
import warnings

import numpy as np
import pytest

from napari_xrdphase.classify import Classifier, fit_classifier
from napari_xrdphase.classify.novelty import novelty_scale, novelty_scores
from napari_xrdphase.encoder import Encoder
from napari_xrdphase.io import write_predictions_csv
from napari_xrdphase.results import classify_series
from napari_xrdphase.synth import simulate_series


@pytest.fixture(scope="module")
def fitted():
    fe = simulate_series("Fe", 10, 4, 12, n_points=1500, seed=1, name="Fe")
    feo = simulate_series("FeO", 10, 6, 12, n_points=1500, seed=3, name="FeO")
    truth = np.asarray(fe.labels)
    labels = {"Fe": {int(np.flatnonzero(truth == c)[2]): str(c) for c in np.unique(truth)}}
    encoder = Encoder.builtin()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classifier = fit_classifier(encoder, [fe.stack, feo.stack], labels, seed=0)
    return classifier, fe.stack, feo.stack, labels


def test_a_series_unlike_the_labelled_one_is_novel_and_the_labelled_one_is_not(fitted):
    classifier, fe, feo, labels = fitted
    on_fe, on_feo = classifier.novelty(fe), classifier.novelty(feo)
    assert np.median(on_fe) < 1.0 < np.median(on_feo)
    assert np.mean(on_feo > 1) > 0.5 > np.mean(on_fe > 1)
    for row in labels["Fe"]:
        assert on_fe[row] == pytest.approx(0.0, abs=1e-6)


def test_the_series_summary_warns_when_many_curves_are_novel(fitted):
    classifier, fe, feo, labels = fitted
    lines = {}
    for stack in (fe, feo):
        result = classify_series(
            classifier, stack, classifier.predict_proba(stack), labels.get(stack.name),
            novelty=classifier.novelty(stack),
        )  # fmt: skip
        lines[stack.name] = result.describe()
    assert not any("unlike any labelled curve" in line for line in lines["Fe"])
    warning = [line for line in lines["FeO"] if "unlike any labelled curve" in line]
    assert len(warning) == 1 and warning[0].startswith("  warning: FeO: ")
    assert "label one or two of them" in warning[0]


def test_novelty_survives_the_classifier_file_and_older_files_load_without(fitted, tmp_path):
    classifier, fe, _, _ = fitted
    loaded = Classifier.load(classifier.save(tmp_path / "c.safetensors"), classifier.encoder)
    assert loaded.novelty_scale == pytest.approx(classifier.novelty_scale)
    np.testing.assert_allclose(loaded.novelty(fe), classifier.novelty(fe), atol=1e-6)
    old = Classifier(
        classifier.encoder, classifier.classes, classifier.weight, classifier.bias,
        classifier.mean, classifier.scale, classifier.summary,
    )  # fmt: skip
    reloaded = Classifier.load(old.save(tmp_path / "old.safetensors"), classifier.encoder)
    assert not reloaded.has_novelty and reloaded.novelty(fe) is None


def test_the_predictions_csv_ends_with_the_novelty_column(fitted, tmp_path):
    classifier, fe, _, _ = fitted
    proba = classifier.predict_proba(fe)
    labels = classifier.predict(fe)
    novelty = classifier.novelty(fe)
    path = write_predictions_csv(
        tmp_path / "p.csv", [(fe, labels, proba)], classifier.classes, novelty={"Fe": novelty}
    )
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[-1] == "novelty"
    assert [float(r["novelty"]) for r in rows] == pytest.approx(novelty, abs=1e-4)


def test_the_scale_is_the_median_leave_one_out_nearest_distance():
    reference = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [10.0, 0.0]])
    # nearest others: 1, 1, 2, 7 → median 1.5
    assert novelty_scale(reference) == pytest.approx(1.5)
    scores = novelty_scores(np.array([[0.0, 0.0], [0.0, 3.0]]), reference, 1.5)
    np.testing.assert_allclose(scores, [0.0, 2.0])
