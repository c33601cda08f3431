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


@pytest.fixture
def session(make_napari_viewer, series):
    viewer = make_napari_viewer()
    session = get_session(viewer)
    session.add_stack(series.stack, ground_truth=series.labels)
    session.set_encoder(Encoder.random(1), "random (test)")
    return session


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
    assert rows[0] == ["dataset", "index", "pressure", "label", "p_before", "p_during", "p_after"]
    assert len(rows) == 37 and rows[1][:2] == ["Fe36", "0"]
    assert sum(float(p) for p in rows[5][4:]) == pytest.approx(1.0, abs=1e-5)
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
        (folder, "one of this command's input files"),
        (folder / "metadata.csv", "would become part of the input series"),
        (folder / "f_1.xy", "would become part of the input series"),
        (folder / "f_9.xy", "would become part of the input series"),  # a new curve file
        (builtin_encoder_path(), "one of this command's input files"),
    ]:
        with pytest.raises(OutputError, match=why):
            session.export_labels(target, overwrite=True)
    with pytest.raises(OutputError, match="input files"):
        session.save_encoder(builtin_encoder_path(), overwrite=True)
    assert {path: path.read_bytes() for path in folder.iterdir()} == files
    assert session.export_labels(folder / "labels.csv") == folder / "labels.csv"  # not a curve
    assert read_labels_csv(folder / "labels.csv") == {"run": {1: "before"}}
