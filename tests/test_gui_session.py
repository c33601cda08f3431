"""The console/session object `xrd` in a real napari viewer (run under Xvfb)."""

import csv

import numpy as np
import pytest

from napari_xrdphase import StackError
from napari_xrdphase._widgets._session import XRDSession, get_session
from napari_xrdphase.encoder import Encoder
from napari_xrdphase.io import read_labels_csv

# rows of the 36-curve series below: before 0–11, during 12–17, after 18–35
TRUTH_ROWS = [1, 5, 9, 13, 16, 20, 25, 30, 34]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def layer_names(session):
    return [layer.name for layer in session.viewer.layers]


def test_one_session_per_viewer_is_offered_to_the_console(make_napari_viewer, monkeypatch):
    viewer = make_napari_viewer()
    offered = {}
    # the Viewer model refuses instance attributes: record the call on the class
    monkeypatch.setattr(type(viewer), "update_console", lambda self, names: offered.update(names))
    session = get_session(viewer)
    assert get_session(viewer) is session
    assert offered == {"xrd": session}
    assert isinstance(session, XRDSession)
    assert get_session(make_napari_viewer()) is not session


def test_labelled_rows_become_points_at_those_rows_coloured_by_class(session):
    layer = session.current_layer
    session.label(3, "before")
    session.label([20, 21], "after")
    assert session.labels == {"Fe36": {3: "before", 20: "after", 21: "after"}}
    points = session.labels_layer()
    assert points.name == "Fe36 labels"
    rows = np.round((points.data[:, 0] - layer.translate[0]) / layer.scale[0]).astype(int)
    assert rows.tolist() == [3, 20, 21]
    assert points.features["label"].tolist() == ["before", "after", "after"]
    assert not np.allclose(points.face_color[0], points.face_color[1])  # before ≠ after
    session.unlabel(20)
    assert session.labels == {"Fe36": {3: "before", 21: "after"}}
    assert len(points.data) == 2
    assert session.label_counts() == {"before": 1, "during": 0, "after": 1}


def test_labelling_a_row_that_does_not_exist_says_which_rows_do(session):
    with pytest.raises(StackError, match="0–35"):
        session.label(36, "before")
    with pytest.raises(StackError, match="no series named"):
        session.label(1, "before", series="missing")


def test_a_point_added_by_hand_labels_its_row_with_the_current_class(session):
    layer = session.current_layer
    session.label(3, "before")
    session.current_class = "after"
    points = session.labels_layer()
    y = layer.translate[0] + 30 * layer.scale[0]
    points.add([[y, 7.0]])
    assert session.labels["Fe36"] == {3: "before", 30: "after"}


def test_classify_shows_phase_confidence_and_boundary_lines_and_rerun_replaces_them(session):
    layer = session.current_layer
    session.apply_ground_truth(TRUTH_ROWS)
    found = session.classify(seed=0)
    names = layer_names(session)
    for suffix in ("labels", "phase", "confidence", "boundaries"):
        assert f"Fe36 {suffix}" in names
    phase = session.viewer.layers["Fe36 phase"]
    predicted, proba = session.predictions["Fe36"]
    assert phase.data.shape == (36, 1)
    classes = list(session.classifier.classes)
    assert phase.data[:, 0].tolist() == [classes.index(p) + 1 for p in predicted]
    confidence = session.viewer.layers["Fe36 confidence"]
    np.testing.assert_allclose(confidence.data[:, 0], proba.max(axis=1), rtol=1e-6)
    shapes = session.viewer.layers["Fe36 boundaries"]
    assert found["Fe36"] and len(shapes.data) == len(found["Fe36"])
    for line, boundary in zip(shapes.data, found["Fe36"], strict=True):
        row = (line[0, 0] - layer.translate[0]) / layer.scale[0]
        assert row == pytest.approx(session.boundary_row(boundary))
        assert line[0, 0] == line[1, 0]  # horizontal
    assert shapes.features["text"].tolist() == [str(b) for b in found["Fe36"]]
    assert session.classifier.summary.n_strained == 2
    n_layers = len(session.viewer.layers)
    session.classify(seed=0, strain=0)  # the console's way to turn the strained copies off
    assert session.classifier.summary.n_strained == 0
    assert len(session.viewer.layers) == n_layers
    assert layer_names(session) == names


def test_exports_use_the_command_line_formats(session, tmp_path):
    session.apply_ground_truth(TRUTH_ROWS)
    session.classify()
    predictions = session.export_predictions(tmp_path / "pred.csv")
    with open(predictions, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == [
        "dataset", "index", "source", "pressure", "label", "skipped",
        "p_before", "p_during", "p_after", "novelty",
    ]  # fmt: skip
    assert len(rows) == 37 and rows[1][:3] == ["Fe36", "0", "Fe36[0]"]
    assert sum(float(p) for p in rows[5][6:9]) == pytest.approx(1.0, abs=1e-5)
    boundaries = session.export_boundaries(tmp_path / "boundaries.csv")
    with open(boundaries, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(session.boundaries["Fe36"])
    assert table[0]["dataset"] == "Fe36" and table[0]["unit"] == "GPa"
    assert int(table[0]["index_before"]) == session.boundaries["Fe36"][0].index_before
    labels = session.export_labels(tmp_path / "labels.csv")
    assert read_labels_csv(labels) == session.labels


def test_importing_over_unsaved_labels_asks_first_and_keeps_a_backup(session, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("dataset,index,label\nFe36,2,before\nFe36,33,after\n")
    session.label(7, "during")
    asked = []
    session.import_labels(path, confirm=lambda message: asked.append(message) or False)
    assert asked and "not exported" in asked[0]
    assert session.labels == {"Fe36": {7: "during"}}
    session.import_labels(path)  # scripts: proceed, keep a backup
    assert session.labels == {"Fe36": {2: "before", 33: "after"}}
    assert session.labels_backup == {"Fe36": {7: "during"}}
    assert len(session.labels_layer().data) == 2


def test_imported_rows_beyond_the_series_are_refused(session, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("dataset,index,label\nFe36,99,before\n")
    with pytest.raises(StackError, match="no curve 99"):
        session.import_labels(path)


def test_axis_conversion_is_for_display_only(session):
    layer = session.current_layer
    session.label(4, "before")
    session.set_axis("q")
    assert session.shown_stack(layer).axis_kind == "q"
    assert session.stack.axis_kind == "2theta"  # classification keeps the curves as loaded
    assert layer.translate[1] == pytest.approx(session.shown_stack(layer).axis[0])
    session.set_axis("d")
    shown = session.shown_stack(layer)
    assert shown.axis[0] < shown.axis[-1]
    assert session.labels == {"Fe36": {4: "before"}}


def test_missing_builtin_encoder_falls_back_to_random_with_a_warning(
    make_napari_viewer, monkeypatch, tmp_path
):
    from napari.utils import notifications

    from napari_xrdphase import encoder as encoder_module

    monkeypatch.setattr(
        encoder_module, "builtin_encoder_path", lambda: tmp_path / "none.safetensors"
    )
    warned = []
    monkeypatch.setattr(notifications, "show_warning", warned.append)
    session = get_session(make_napari_viewer())
    assert isinstance(session.encoder, Encoder)
    assert "untrained" in session.encoder_source
    assert warned and "built-in encoder is missing" in warned[0]


def test_load_takes_the_acquisition_index_when_asked(make_napari_viewer, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    axis = np.linspace(5.0, 25.0, 50)
    rows = []
    for i in range(4):
        np.savetxt(folder / f"f_{i}.xy", np.column_stack([axis, 10 + i + np.sin(axis)]))
        rows.append(f"f_{i}.xy,{'gauge broken' if i == 2 else 10 + i}\n")
    (folder / "metadata.csv").write_text("file,pressure_GPa\n" + "".join(rows))
    session = get_session(make_napari_viewer())
    with pytest.raises(Exception, match='variable="index"'):
        session.load(folder)  # one pressure cell cannot be read
    layer = session.load(folder, variable="index")
    stack = session.shown_stack(layer)
    assert stack.variable_name == "index"
    np.testing.assert_array_equal(stack.variable, np.arange(4))


def test_exports_never_write_into_a_series_folder_or_over_the_model_in_use(
    make_napari_viewer, tmp_path
):
    from napari_xrdphase._files import OutputError
    from napari_xrdphase.encoder import builtin_encoder_path

    folder = tmp_path / "run"
    folder.mkdir()
    axis = np.linspace(5.0, 25.0, 50)
    for i in range(3):
        np.savetxt(folder / f"f_{i}.xy", np.column_stack([axis, 10 + i + np.sin(axis)]))
    (folder / "metadata.csv").write_text("file,pressure_GPa\nf_0.xy,1\nf_1.xy,2\nf_2.xy,3\n")
    session = get_session(make_napari_viewer())
    session.load(folder)
    session.label(1, "before")
    files = {path: path.read_bytes() for path in folder.iterdir()}
    for target, why in [
        (folder, "one of the inputs"),
        (folder / "metadata.csv", "would become part of the input series"),
        (folder / "f_1.xy", "would become part of the input series"),
        (folder / "f_9.xy", "would become part of the input series"),  # a new curve file
        (builtin_encoder_path(), "one of the inputs"),
    ]:
        with pytest.raises(OutputError, match=why):
            session.export_labels(target, overwrite=True)
    with pytest.raises(OutputError, match="is one of the inputs"):
        session.save_encoder(builtin_encoder_path(), overwrite=True)
    assert {path: path.read_bytes() for path in folder.iterdir()} == files
    assert session.export_labels(folder / "labels.csv") == folder / "labels.csv"  # not a curve
    assert read_labels_csv(folder / "labels.csv") == {"run": {1: "before"}}


def status_at(session, row, col):
    """The status napari shows with the cursor on (row, col) of the current series."""
    viewer, layer = session.viewer, session.current_layer
    viewer.layers.selection.active = layer
    viewer.mouse_over_canvas = True
    viewer.cursor.position = tuple(layer.data_to_world((row, col)))
    viewer.update_status_from_cursor()  # what napari's status thread computes on a mouse move
    return viewer.status


def test_status_bar_names_the_curve_its_pressure_and_the_axis_position(session, series):
    stack = series.stack
    status = status_at(session, 17, 400)
    assert status["layer_base"] == "Fe36" and status["value"]  # napari's pixel value
    # 2θ to a tenth of the 0.025° step
    assert status["coordinates"] == (
        f"curve 17 · pressure {stack.variable[17]:.4g} GPa · 2θ {stack.axis[400]:.3f} deg: "
        f"{status['value']}"
    )
    assert status["coords"] == status["coordinates"].split(":")[0]
    session.label(17, "during")
    assert status_at(session, 17, 400)["coordinates"].endswith(" · labelled during")
    session.set_axis("q")
    q = session.shown_stack(session.current_layer).axis[400]
    assert f" · q {q:.4f} 1/Å: " in status_at(session, 17, 400)["coordinates"]  # step ~0.005
    session.set_axis("d")
    d = session.shown_stack(session.current_layer).axis[400]
    assert f" · d {d:.4f} Å: " in status_at(session, 17, 400)["coordinates"]
    session.set_axis("2theta")
    session.apply_ground_truth(TRUTH_ROWS)
    session.classify()
    predicted, proba = session.predictions["Fe36"]
    novelty = session.novelty["Fe36"]
    status = status_at(session, 30, 400)["coordinates"]
    assert status.endswith(
        f" · predicted {predicted[30]} (p {proba[30].max():.2f}) · novelty {novelty[30]:.2f}"
    )
    # over the phase strip (right of the image): the curve and its phase, no axis position
    beside = status_at(session, 29, 880)["coordinates"]
    assert beside == (
        f"curve 29 · pressure {stack.variable[29]:.4g} GPa · predicted {predicted[29]} "
        f"(p {proba[29].max():.2f}) · novelty {novelty[29]:.2f}"
    )
    assert "2θ" not in beside
    assert "curve" not in str(status_at(session, 40, 400))  # below the last curve: napari's own


def test_phase_names_stand_on_the_phase_strip_and_titles_above_the_strips(session):
    session.apply_ground_truth(TRUTH_ROWS)
    session.classify(ordered=False)
    layer, viewer = session.current_layer, session.viewer
    phase = viewer.layers["Fe36 phase"]
    legend = viewer.layers["Fe36 legend"]
    predicted, _ = session.predictions["Fe36"]
    assert sorted(legend.features["text"]) == sorted(set(predicted))  # each phase once
    assert legend.text.visible and legend.text.rotation == 90
    strip_left = phase.translate[1] - 0.5 * phase.scale[1]
    strip_right = strip_left + phase.scale[1]
    for (y, x), name in zip(legend.data, legend.features["text"], strict=True):
        row = round(float(phase.world_to_data((y, x))[0]))
        assert predicted[row] == name  # on a curve of that phase
        assert strip_left < x < strip_right
    titles = viewer.layers["Fe36 strip titles"]
    assert titles.features["text"].tolist() == ["phase", "confidence", "novelty"]
    image_top = layer.translate[0] - 0.5 * layer.scale[0]
    assert all(y < image_top for y in titles.data[:, 0])
    confidence = viewer.layers["Fe36 confidence"]
    assert strip_left < titles.data[0, 1] < strip_right
    assert confidence.translate[1] - 0.5 * confidence.scale[1] < titles.data[1, 1]
    n_layers = len(viewer.layers)
    session.classify()  # again: replaced, not piled up
    assert len(viewer.layers) == n_layers
    assert viewer.layers["Fe36 legend"].features["text"].tolist() == ["before", "during", "after"]


def test_a_series_opened_before_any_dock_gets_the_status_text_too(
    make_napari_viewer, series, tmp_path
):
    from napari_xrdphase.io import save_stack

    path = save_stack(series.stack, tmp_path / "Fe36.npz", format="npz")
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-xrdphase")  # the reader, before any session exists
    session = get_session(viewer)
    assert status_at(session, 3, 10)["coordinates"].startswith("curve 3 · pressure ")
    assert session.input_paths()[0] == path  # and its file is an input of the session
