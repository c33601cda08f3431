"""The Data, Labels and Classify docks driven in a real napari viewer (run under Xvfb)."""

import csv
import hashlib
import types

import numpy as np
import pytest
from _answers import Answers
from _waits import HANG_MS

from napari_xrdphase._files import OutputError
from napari_xrdphase._widgets._classify_dock import ClassifyDock
from napari_xrdphase._widgets._data_dock import DataDock
from napari_xrdphase._widgets._encoder_dock import EncoderDock
from napari_xrdphase._widgets._labels_dock import LabelsDock
from napari_xrdphase._widgets._session import get_session
from napari_xrdphase.encoder import Encoder
from napari_xrdphase.io import read_labels_csv, save_stack, write_labels_csv

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def infos(monkeypatch):
    """Messages of the info notifications the docks show."""
    from napari.utils import notifications

    shown = []
    monkeypatch.setattr(notifications, "show_info", shown.append)
    return shown


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def click(dock, layer, row, x, modifiers=()):
    """Press and release the left button on (row, x) of ``layer``, as napari's canvas would."""
    y = layer.translate[0] + row * layer.scale[0]
    event = types.SimpleNamespace(
        button=1, position=(y, x), type="mouse_press", modifiers=modifiers
    )
    callback = dock._on_click(dock.viewer, event)
    next(callback)
    event.type = "mouse_release"
    with pytest.raises(StopIteration):
        next(callback)


def test_data_dock_opens_a_file_and_plots_the_curve_under_the_cursor(viewer, series, tmp_path):
    path = save_stack(series.stack, tmp_path / "Fe36.npz", format="npz")
    dock = DataDock(viewer)
    assert dock.info.value == "no series open"
    dock.open_path(path)
    session = get_session(viewer)
    assert [layer.name for layer in session.series_layers] == ["Fe36"]
    assert dock.series.value == "Fe36" and "36 curves × 800 points" in dock.info.value
    layer = session.current_layer
    y = layer.translate[0] + 17 * layer.scale[0]
    dock._on_mouse_move(viewer, types.SimpleNamespace(position=(y, 10.0)))
    title = dock.plot.axes.get_title()
    assert title.startswith("curve 17: pressure = ")
    assert f"{series.stack.variable[17]:.4g} GPa" in title
    line = dock.plot.axes.lines[0]
    np.testing.assert_allclose(line.get_ydata(), series.stack.intensities[17], rtol=1e-5)
    assert dock.row.value == 17


def test_data_dock_changes_contrast_and_axis_and_reports_bad_files(
    viewer, series, tmp_path, errors
):
    dock = DataDock(viewer)
    session = get_session(viewer)
    layer = session.add_stack(series.stack)
    dock.display.value = "log"
    assert layer.metadata["xrdphase"]["display"] == "log" and layer.gamma == 1.0
    dock.axis.value = "q"
    assert session.shown_stack(layer).axis_kind == "q"
    assert dock.plot.axes.get_xlabel() == "q (1/A)"
    (tmp_path / "notes.npz").write_bytes(b"not a zip")
    dock.open_path(tmp_path / "notes.npz")
    assert len(errors) == 1 and errors[0].startswith("Open notes.npz:")
    assert len(session.series_layers) == 1


def test_number_keys_choose_the_class_and_clicks_label_rows(viewer, series, qtbot):
    session = get_session(viewer)
    layer = session.add_stack(series.stack)
    dock = LabelsDock(viewer)
    viewer.layers.selection.active = layer
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, "3")
    assert session.current_class == "after"
    assert dock.current_class.value == "after"
    click(dock, layer, 30, 10.0)
    dock.choose_class(1)
    click(dock, layer, 2, 10.0)
    click(dock, layer, 5, 10.0)
    assert session.labels == {"Fe36": {2: "before", 5: "before", 30: "after"}}
    click(dock, layer, 5, 10.0, modifiers=("Alt",))
    assert session.labels == {"Fe36": {2: "before", 30: "after"}}
    assert "before: 1" in dock.counts.value and "(total 2)" in dock.counts.value
    click(dock, layer, 2, 100.0)  # right of the image: nothing happens
    assert len(session.labels["Fe36"]) == 2


def test_labels_dock_edits_classes_and_files(viewer, series, tmp_path, errors):
    session = get_session(viewer)
    session.add_stack(series.stack)
    answers = Answers(False)  # the user says no when asked
    dock = LabelsDock(viewer, confirm=answers)
    dock.class_name.value = "mixed"
    dock.add_class()
    assert session.classes[-1] == "mixed" and session.current_class == "mixed"
    session.label(4, "mixed")
    dock.remove_class()
    assert errors and "labelled 'mixed'" in errors[-1]
    dock.class_name.value = "coexisting"
    dock.rename_class()
    assert session.labels["Fe36"] == {4: "coexisting"}
    dock.export_labels(tmp_path / "labels.csv")
    assert read_labels_csv(tmp_path / "labels.csv") == {"Fe36": {4: "coexisting"}}
    session.label(6, "before")  # not exported: clearing asks first
    dock.clear_labels()
    assert answers.questions == ["Remove the labels of Fe36 (2 curves, not exported)?"]
    assert session.labels["Fe36"] == {4: "coexisting", 6: "before"}
    dock.import_labels(tmp_path / "missing.csv")
    assert "no such labels file" in errors[-1]


def test_classify_dock_runs_in_a_worker_and_exports(viewer, series, qtbot, tmp_path, errors):
    session = get_session(viewer)
    session.add_stack(series.stack, ground_truth=series.labels)
    session.set_encoder(Encoder.random(1), "random (test)")
    dock = ClassifyDock(viewer)
    assert dock.encoder_info.value == "random (test)"
    dock.classify()  # no labels yet: a notification, no exception
    assert errors == ["Classify: no labelled curves; label at least one curve of each phase"]
    session.label([1, 2, 3], "before")
    dock.classify()
    assert "at least two classes" in errors[-1]
    session.apply_ground_truth([1, 5, 9, 13, 16, 20, 25, 30, 34])
    worker = dock.start_classification()
    with qtbot.waitSignal(worker.finished, timeout=HANG_MS):
        pass
    qtbot.waitUntil(lambda: dock.worker is None, timeout=HANG_MS)
    assert len(errors) == 2
    assert "Fe36 phase" in [layer.name for layer in viewer.layers]
    assert "→" in dock.summary.value and "linear classifier" in dock.summary.value
    assert "phases in order of rising pressure: before → during → after" in dock.summary.value
    assert "each labelled curve also learnt under 2 strains in ±1 %" in dock.summary.value
    predicted, _ = session.predictions["Fe36"]
    ranks = [("before", "during", "after").index(c) for c in predicted]
    assert ranks == sorted(ranks)  # a compression series: the phases never step back
    assert all(predicted[row] == label for row, label in session.labels["Fe36"].items())
    dock.ordered.value = False
    dock.classify()
    assert session.classifier.phase_order is None
    assert "each curve classified on its own" in dock.summary.value
    predicted, proba = session.predictions["Fe36"]
    np.testing.assert_array_equal(
        predicted, np.asarray(session.classifier.classes)[proba.argmax(1)]
    )
    dock.export_predictions(tmp_path / "pred.csv")
    with open(tmp_path / "pred.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == [
        "dataset", "index", "source", "pressure", "label", "skipped",
        "p_before", "p_during", "p_after", "novelty",
    ]  # fmt: skip
    dock.export_boundaries(tmp_path / "b.csv")
    assert (tmp_path / "b.csv").read_text().startswith("dataset,from_label,to_label,value")


def test_export_before_classifying_is_a_notification(viewer, series, tmp_path, errors):
    get_session(viewer).add_stack(series.stack)
    dock = ClassifyDock(viewer)
    dock.export_predictions(tmp_path / "pred.csv")
    assert errors == ["Export predictions: nothing to export yet: classify first"]
    assert not (tmp_path / "pred.csv").exists()


def test_data_dock_wavelength_lets_a_series_without_one_join_the_q_grid(viewer, series, errors):
    from napari_xrdphase.preprocess import common_window

    dock = DataDock(viewer)
    session = get_session(viewer)
    bare = series.stack.replace(wavelength=None, name="bare")
    layer = session.add_stack(bare)
    assert not dock.wavelength.native.isHidden()
    with pytest.raises(ValueError, match=r"bare: .* no wavelength"):
        Encoder.builtin().embed(session.compute_stack(layer))
    dock.wavelength.value = 0.4133
    source = session.compute_stack(layer)
    assert source.wavelength == pytest.approx(0.4133)
    assert not dock.wavelength.native.isHidden()  # stays, for a correction
    assert common_window([source])["axis_kind"] == "q"
    Encoder.builtin().embed(source)  # now on the built-in encoder's q grid
    dock.axis.value = "q"
    assert session.shown_stack(layer).axis_kind == "q" and not errors


def test_exports_never_write_over_an_input_of_the_session(viewer, series, tmp_path, errors, infos):
    session = get_session(viewer)
    data = save_stack(series.stack, tmp_path / "Fe36.npz", format="npz")
    truth = tmp_path / "truth.csv"
    write_labels_csv(truth, {"Fe36": {r: series.labels[r] for r in (1, 6, 10, 13, 16, 20, 28, 34)}})
    model = Encoder.random(1).save(tmp_path / "model.safetensors")
    answers = Answers(True, True, True, True)  # would say yes: must not even be asked
    labels_dock = LabelsDock(viewer, confirm=answers)
    classify_dock = ClassifyDock(viewer, confirm=answers)
    encoder_dock = EncoderDock(viewer, confirm=answers)
    DataDock(viewer).open_path(data)
    labels_dock.import_labels(truth)
    assert encoder_dock.load_encoder(model)
    classify_dock.classify()
    assert not errors and "Fe36 phase" in [layer.name for layer in viewer.layers]
    inputs = [data, truth, model]
    before = [digest(path) for path in inputs]
    exports = [
        labels_dock.export_labels,
        classify_dock.export_predictions,
        classify_dock.export_boundaries,
        encoder_dock.save_encoder,
    ]
    for path in inputs:
        for export in exports:
            shown = len(errors)
            assert export(path) is None
            assert len(errors) == shown + 1  # one notification, naming the file
            assert f"{path} is one of the inputs (a series, the labels or the model)" in errors[-1]
    assert answers.questions == [] and not infos
    assert [digest(path) for path in inputs] == before
    for path in inputs:  # the console API refuses them too, even when told to overwrite
        with pytest.raises(OutputError, match="is one of the inputs"):
            session.export_predictions(path, overwrite=True)
    assert [digest(path) for path in inputs] == before
    # anything else is written, and asked about when it exists
    out = tmp_path / "pred.csv"
    assert classify_dock.export_predictions(out) == out and answers.questions == []
    assert infos == [f"wrote {out}"]
    assert classify_dock.export_predictions(out) == out  # answered yes
    assert answers.questions == [f"{out} exists. Replace it?"]


def test_an_existing_export_is_kept_unless_replacing_it_is_confirmed(
    viewer, series, tmp_path, errors, infos
):
    session = get_session(viewer)
    session.add_stack(series.stack)
    session.label([2, 30], "before")
    answers = Answers(False, True)
    dock = LabelsDock(viewer, confirm=answers)
    out = tmp_path / "labels.csv"
    out.write_text("dataset,index,label\nother,1,precious\n")
    kept = digest(out)
    assert dock.export_labels(out) is None  # the user says no
    assert answers.questions == [f"{out} exists. Replace it?"]
    assert digest(out) == kept and not errors and infos == [f"kept {out}: nothing written"]
    assert not session.labels_saved
    with pytest.raises(OutputError, match=r"exists and is kept; pass overwrite=True"):
        session.export_labels(out)
    assert digest(out) == kept
    assert dock.export_labels(out) == out  # the user says yes
    assert len(answers.questions) == 2 and infos[-1] == f"wrote {out}"
    assert read_labels_csv(out) == {"Fe36": {2: "before", 30: "before"}}
    assert session.labels_saved
    session.label(5, "after")
    assert session.export_labels(out, overwrite=True) == out  # the console API, when told to
    assert read_labels_csv(out)["Fe36"] == {2: "before", 5: "after", 30: "before"}
    encoder_out = tmp_path / "encoder.safetensors"
    encoder_out.write_bytes(b"not mine to lose")
    encoder_dock = EncoderDock(viewer, confirm=Answers(False))
    assert encoder_dock.save_encoder(encoder_out) is None
    assert encoder_out.read_bytes() == b"not mine to lose" and not errors
