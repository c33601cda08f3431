"""Novelty, suggestions, live refits and proposed phases in a real napari viewer (Xvfb)."""

import csv

import numpy as np
import pytest
from _waits import HANG_MS

from napari_xrdphase import StackError
from napari_xrdphase._widgets._classify_dock import ClassifyDock
from napari_xrdphase._widgets._labels_dock import LabelsDock
from napari_xrdphase.results import describe_series, novelty_warning

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# rows of the 36-curve series: before 0–11, during 12–17, after 18–35
TRUTH_ROWS = [1, 5, 9, 13, 16, 20, 25, 30, 34]


def camera(session):
    viewer = session.viewer
    return viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera


def stars(session):
    """The rows marked as suggested, in rank order."""
    points = session.viewer.layers["Fe36 suggested"]
    return [int(r) for r in points.features["row"]]


def test_classify_adds_a_novelty_strip_and_the_summary_says_what_results_says(session, tmp_path):
    session.apply_ground_truth([1, 5, 9, 13, 16])  # no 'after' curve labelled
    session.classify()
    novelty = session.novelty["Fe36"]
    assert novelty.shape == (36,) and np.allclose(novelty[[1, 5, 9, 13, 16]], 0, atol=1e-6)
    strip = session.viewer.layers["Fe36 novelty"]
    np.testing.assert_allclose(strip.data[:, 0], novelty, rtol=1e-6)
    confidence = session.viewer.layers["Fe36 confidence"]
    assert strip.translate[1] > confidence.translate[1]  # right of the confidence strip
    titles = session.viewer.layers["Fe36 strip titles"]
    assert titles.features["text"].tolist() == ["phase", "confidence", "novelty"]
    predicted, _ = session.predictions["Fe36"]
    lines = describe_series(
        "Fe36", predicted, session.boundaries["Fe36"], session.series_notes["Fe36"],
        novelty=novelty,
    )  # fmt: skip
    assert "\n".join(lines) in session.summary()
    warning = novelty_warning("Fe36", novelty)
    assert (warning in session.summary()) if warning else ("warning:" not in session.summary())
    session.export_predictions(tmp_path / "pred.csv")
    with open(tmp_path / "pred.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["novelty"]) for r in rows] == pytest.approx(novelty.tolist(), abs=1e-4)


def test_suggest_marks_unlabelled_rows_and_labelling_one_removes_its_star(session):
    found = session.suggest(n=4, seed=0)  # no labels: k-means proposals
    assert len(found) == 4 and stars(session) == [s.index for s in found]
    points = session.viewer.layers["Fe36 suggested"]
    assert points.features["rank"].tolist() == [1, 2, 3, 4]
    labels_x = None
    session.label(found[0].index, "before")
    assert stars(session) == [s.index for s in found[1:]]
    assert session.viewer.layers["Fe36 suggested"].features["rank"].tolist() == [2, 3, 4]
    labels_x = session.labels_layer().data[0, 1]
    assert session.viewer.layers["Fe36 suggested"].data[0, 1] < labels_x  # left of the dots

    session.apply_ground_truth(TRUTH_ROWS)
    found = session.suggest(n=5, seed=0)  # with labels: uncertainty, novelty, density
    labelled = set(session.labels["Fe36"])
    assert found and not {s.index for s in found} & labelled
    assert set(stars(session)) == {s.index for s in found}
    assert all(s.predicted in ("before", "during", "after") for s in found)


def test_next_suggestion_centres_the_view_and_a_click_labels_it(session, qtbot):
    dock = LabelsDock(session.viewer)
    found = session.suggest(n=3, seed=0)
    shown = session.next_suggestion()
    assert shown == found[0]
    layer = session.current_layer
    assert camera(session).center[-2] == pytest.approx(
        layer.translate[0] + found[0].index * layer.scale[0]
    )
    dock.choose_class(3)  # number key 3: 'after'
    dock.label_at(layer, (camera(session).center[-2], layer.translate[1]))
    assert session.labels["Fe36"] == {found[0].index: "after"}
    assert found[0].index not in stars(session)
    assert session.next_suggestion() == found[1]
    session.label([found[1].index, found[2].index], "before")
    assert session.next_suggestion() is None
    assert len(session.viewer.layers["Fe36 suggested"].data) == 0


def test_live_mode_refits_on_a_label_and_a_label_against_the_prediction_moves_the_boundary(
    session, qtbot
):
    dock = ClassifyDock(session.viewer)
    session.apply_ground_truth(TRUTH_ROWS)
    dock.live.value = True  # turning it on fits at once
    qtbot.waitUntil(
        lambda: session.classifier is not None and dock.live_worker is None, timeout=HANG_MS
    )
    predicted, _ = session.predictions["Fe36"]
    assert predicted[22] == "after" and "novelty" in [
        t for t in session.viewer.layers["Fe36 strip titles"].features["text"]
    ]
    (old,) = [b for b in session.boundaries["Fe36"] if b.to_label == "after"]
    assert old.index_after <= 22
    first = session.classifier
    session.label(22, "during")  # against the prediction: the refit keeps it
    qtbot.waitUntil(
        lambda: session.classifier is not first and dock.live_worker is None, timeout=HANG_MS
    )
    predicted, _ = session.predictions["Fe36"]
    assert predicted[22] == "during"
    moved = [b for b in session.boundaries["Fe36"] if b.to_label == "after"]
    assert len(moved) == 1 and moved[0].index_after > 22 and moved[0].row > old.row
    assert "Fe36:" in dock.summary.value
    refitted = session.classifier
    session.current_class = "after"  # a number key: no label changed, no refit
    assert dock.live_worker is None and session.classifier is refitted


def test_a_label_during_a_live_refit_schedules_exactly_one_more(session, qtbot):
    dock = ClassifyDock(session.viewer)
    session.apply_ground_truth(TRUTH_ROWS)
    dock.live.value = True
    running = dock.live_worker
    assert running is not None
    session.label(3, "before")
    session.label(4, "before")  # two labels while it runs: one more refit, not two
    assert dock.live_worker is running and dock._live_pending
    qtbot.waitUntil(
        lambda: dock.live_worker is None and dock._fitted_labels == session.labels,
        timeout=HANG_MS,
    )
    assert session.classifier.summary.labels_per_class["before"] == 5


def test_propose_phases_fills_the_strip_and_segments_become_labels(session):
    dock = ClassifyDock(session.viewer)
    found = session.propose_phases(penalty_factor=1)  # a random encoder: a plain BIC penalty
    segments = found["Fe36"]
    names = session.segment_names()
    assert names[0] == "S1" and len(names) >= 2
    strip = session.viewer.layers["Fe36 phase"]
    assert strip.data[:, 0].tolist() == [names.index(v) + 1 for v in segments.labels]
    assert "Fe36 confidence" not in [layer.name for layer in session.viewer.layers]
    assert "proposed boundaries before curves" in dock.summary.value
    session.rename_segment("S1", "bcc")
    assert session.segment_names()[0] == "bcc" and "S1" not in session.segments["Fe36"].labels
    rest = session.segment_names()[1:]
    session.merge_segments(rest, "hcp")
    assert session.segment_names() == ["bcc", "hcp"]
    assert len(session.segments["Fe36"].breaks) == 1
    with pytest.raises(StackError, match="no segment 'S9'"):
        session.rename_segment("S9", "x")
    added = session.segments_to_labels()
    labels = session.labels["Fe36"]
    assert added == len(labels) == 6  # three per segment
    for row, cls in labels.items():
        assert session.segments["Fe36"].labels[row] == cls
    assert session.segments_to_labels(every=4) > 0
    session.classify()
    assert set(session.classifier.classes) == {"bcc", "hcp"}
    assert "Fe36 confidence" in [layer.name for layer in session.viewer.layers]
