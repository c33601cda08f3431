"""The Encoder and Explore docks in a real napari viewer (run under Xvfb)."""

import types

import numpy as np
import pytest
from _waits import HANG_MS

from napari_xrdphase._widgets._encoder_dock import EncoderDock
from napari_xrdphase._widgets._session import get_session
from napari_xrdphase.synth import simulate_series

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def viewer_with_series(make_napari_viewer):
    """A viewer showing a simulated Fe series of 40 curves × 400 points with ground truth."""
    viewer = make_napari_viewer()
    series = simulate_series("Fe", 15, 10, 15, n_points=400, seed=0, name="Fe40")
    get_session(viewer).add_stack(series.stack, ground_truth=series.labels)
    return viewer


@pytest.fixture
def notifications():
    """Collect the messages of napari notifications shown during the test."""
    from napari.utils.notifications import notification_manager

    messages = []

    def collect(notification):
        messages.append(str(notification.message))

    notification_manager.notification_ready.connect(collect)
    yield messages
    notification_manager.notification_ready.disconnect(collect)


def tiny_settings(dock, method="specmoco", epochs=2, batch_size=10):
    # from random weights: these tests follow the paper's training step by step; fine-tuning
    # the built-in encoder (the dock's default) has its own test below
    dock.init.value = "random"
    dock.method.value = method
    dock.epochs.value = epochs
    dock.batch_size.value = batch_size
    dock.device.value = "cpu"


def test_pretraining_in_a_worker_reports_progress_and_keeps_the_gui_responsive(
    viewer_with_series, qtbot, notifications
):
    from qtpy.QtCore import QTimer

    dock = EncoderDock(viewer_with_series)
    session = get_session(viewer_with_series)
    tiny_settings(dock, method="specmoco", epochs=2, batch_size=10)  # 4 steps per epoch
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(dock.is_training))
    timer.start(20)
    steps = []
    worker = dock.start_pretraining()
    worker.yielded.connect(steps.append)
    assert dock.cancel_button.enabled and not dock.pretrain_button.enabled
    progress_bar = worker.pbar
    assert progress_bar.total == 8
    qtbot.waitUntil(lambda: not dock.is_training, timeout=HANG_MS)
    qtbot.waitUntil(lambda: session.encoder_source.startswith("pretrained"), timeout=HANG_MS)
    timer.stop()

    assert [s["step"] for s in steps] == list(range(1, 9))
    assert progress_bar.n == 8
    assert all(np.isfinite(s["loss"]) for s in steps)
    assert "epoch 2/2" in dock.loss_label.value and "loss" in dock.loss_label.value
    assert sum(ticks) >= 5, "the event loop stalled while training ran"
    training = session.encoder.config["training"]
    assert training["method"] == "specmoco" and training["steps_completed"] == 8
    assert not training["stopped_early"]
    assert dock.pretrain_button.enabled and not dock.cancel_button.enabled
    assert dock.source_label.value == session.encoder_source
    # the end-of-training check: in the dock's text, as a notification and in the session
    check = session.training_check
    assert check == session.encoder.training_check
    assert "few_curves" in check.kinds
    assert "\ncheck: " in dock.loss_label.value
    assert "warning: Only 40 curves" in dock.loss_label.value
    assert sum("Only 40 curves" in m for m in notifications) == 1


def test_the_dock_fine_tunes_the_builtin_encoder_by_default(viewer_with_series, qtbot):
    dock = EncoderDock(viewer_with_series)
    session = get_session(viewer_with_series)
    assert dock.init.value == "builtin"
    dock.epochs.value = 1
    dock.batch_size.value = 10
    dock.device.value = "cpu"
    dock.start_pretraining()
    qtbot.waitUntil(lambda: not dock.is_training, timeout=HANG_MS)
    qtbot.waitUntil(lambda: session.encoder_source != "built-in", timeout=HANG_MS)
    assert session.encoder_source.startswith(("fine-tuned from the built-in encoder", "pretrained"))
    assert "fine_tuning" in session.encoder.config  # started from the built-in weights


def test_cancel_stops_within_one_step_and_keeps_the_last_encoder(viewer_with_series, qtbot):
    dock = EncoderDock(viewer_with_series)
    session = get_session(viewer_with_series)
    tiny_settings(dock, method="specmoco", epochs=50, batch_size=10)  # 200 steps
    steps = []
    worker = dock.start_pretraining()
    worker.yielded.connect(steps.append)

    def cancel_after_two(update):
        if update["step"] == 2:
            dock.cancel()

    worker.yielded.connect(cancel_after_two)
    qtbot.waitUntil(lambda: not dock.is_training, timeout=HANG_MS)
    qtbot.waitUntil(lambda: "cancelled" in session.encoder_source, timeout=HANG_MS)

    training = session.encoder.config["training"]
    assert training["stopped_early"]
    # the flag is seen before the next step, but a step may already have started
    assert 2 <= training["steps_completed"] <= 3
    assert session.encoder_source == "pretrained specmoco (cancelled at epoch 1)"
    assert "cancelled" in dock.loss_label.value


def test_closing_the_dock_during_training_stops_the_worker(viewer_with_series, qtbot):
    dock = EncoderDock(viewer_with_series)
    tiny_settings(dock, method="specmoco", epochs=50, batch_size=10)
    worker = dock.start_pretraining()
    qtbot.waitSignal(worker.yielded, timeout=HANG_MS)
    dock.close_training()
    assert not worker.is_running


def test_loading_a_corrupt_model_file_gives_a_notification(
    viewer_with_series, tmp_path, notifications
):
    dock = EncoderDock(viewer_with_series)
    session = get_session(viewer_with_series)
    source_before = session.encoder_source
    corrupt = tmp_path / "model.safetensors"
    corrupt.write_bytes(b"\x00\x01 not a model at all")
    assert dock.load_encoder(corrupt) is False
    assert any("not a readable napari-xrdphase model file" in m for m in notifications)
    assert session.encoder_source == source_before


def test_saved_encoder_loads_back(viewer_with_series, tmp_path):
    from napari_xrdphase.encoder import Encoder

    dock = EncoderDock(viewer_with_series)
    session = get_session(viewer_with_series)
    session.set_encoder(Encoder.random(3, input_length=256), "random 3")
    written = dock.save_encoder(tmp_path / "mine")
    assert written.name == "mine.safetensors"
    assert dock.load_encoder(written)
    assert session.encoder_source == str(written)
    assert session.encoder.input_length == 256


def test_loading_a_model_that_did_not_learn_warns_once(viewer_with_series, tmp_path, notifications):
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.training_check import Finding, TrainingCheck

    dock = EncoderDock(viewer_with_series)
    session = get_session(viewer_with_series)
    encoder = Encoder.random(3, input_length=256)
    finding = Finding("chance_losses", "The pretraining learned nothing: test.")
    encoder.config["training_check"] = TrainingCheck(findings=(finding,)).to_dict()
    written = encoder.save(tmp_path / "chance.safetensors")
    assert dock.load_encoder(written)
    assert sum("learned nothing" in m for m in notifications) == 1
    assert session.training_check.kinds == ("chance_losses",)


def test_pretraining_without_series_is_refused_with_a_notification(
    make_napari_viewer, notifications
):
    dock = EncoderDock(make_napari_viewer())
    assert dock.start_pretraining() is None
    assert any("no diffraction series is open" in m for m in notifications)


def test_device_label_says_what_will_be_used(viewer_with_series):
    dock = EncoderDock(viewer_with_series)
    dock.device.value = "cpu"
    assert dock.device_label.value.startswith("cpu:")
    dock.device.value = "auto"
    assert dock.device_label.value


@pytest.fixture
def explore_dock(viewer_with_series, qtbot):
    """An Explore dock whose map of the Fe40 series (random encoder) has been computed."""
    from napari_xrdphase._widgets._explore_dock import ExploreDock
    from napari_xrdphase.encoder import Encoder

    get_session(viewer_with_series).set_encoder(Encoder.random(0, input_length=256), "random")
    dock = ExploreDock(viewer_with_series)
    dock.n_neighbors.value = 8
    worker = dock.compute()
    assert worker is not None
    qtbot.waitUntil(lambda: dock.result is not None, timeout=HANG_MS)
    return dock


def test_explore_computes_a_scatter_of_the_current_series_with_scores(explore_dock):
    dock = explore_dock
    assert dock.result.series == "Fe40"
    assert dock.result.coordinates.shape == (40, 2)
    assert sorted(set(dock.result.clusters.tolist())) == [0, 1, 2]
    np.testing.assert_allclose(dock._scatter.get_offsets(), dock.result.coordinates)
    assert "silhouette" in dock.status.value and "NMI" in dock.status.value
    assert 0.0 <= dock.result.scores["nmi"] <= 1.0
    dock.color_by.value = "ground truth"
    colors = dock._scatter.get_facecolors()
    assert len(colors) == 40 and len({tuple(c) for c in colors}) == 3


def test_lasso_in_the_scatter_bands_those_rows_on_the_image(explore_dock):
    dock = explore_dock
    xy = dock.result.coordinates.astype(float)
    wanted = np.flatnonzero(xy[:, 0] < np.median(xy[:, 0]))
    low, high = xy.min(axis=0) - 1.0, xy.max(axis=0) + 1.0
    middle = np.median(xy[:, 0])
    lasso = [(low[0], low[1]), (middle, low[1]), (middle, high[1]), (low[0], high[1])]
    rows = dock.select_in_scatter(lasso)
    np.testing.assert_array_equal(rows, wanted)
    layer = dock.selection_layer()
    assert layer.name == "Fe40 selection"
    np.testing.assert_array_equal(np.flatnonzero(layer.data[:, 0]), wanted)
    np.testing.assert_allclose(dock._rings.get_offsets(), xy[wanted])
    series = get_session(dock._viewer).current_layer
    assert dock._viewer.layers.selection.active is series
    # the band covers the image: same rows, the full width (pixel edges in world coordinates)
    band_edges = [layer.data_to_world((0, x))[1] for x in (-0.5, 0.5)]
    image_edges = [series.data_to_world((0, x))[1] for x in (-0.5, series.data.shape[1] - 0.5)]
    assert band_edges == pytest.approx(image_edges)
    assert layer.data_to_world((17, 0))[0] == pytest.approx(series.data_to_world((17, 0))[0])


def test_clicking_a_point_in_the_scatter_selects_its_row(explore_dock):
    dock = explore_dock
    dock.plot.canvas.draw()
    rows = dock.select_in_scatter([dock.result.coordinates[7]])
    np.testing.assert_array_equal(rows, [7])


def test_clicking_a_row_of_the_image_rings_its_point_in_the_scatter(explore_dock):
    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

    dock = explore_dock
    viewer = dock._viewer
    series = get_session(viewer).current_layer
    position = series.data_to_world((12, 200))
    press = fake_click(tuple(position))
    mouse_press_callbacks(viewer, press)
    press.type = "mouse_release"
    mouse_release_callbacks(viewer, press)
    np.testing.assert_array_equal(dock.selected_rows, [12])
    np.testing.assert_allclose(dock._rings.get_offsets(), dock.result.coordinates[[12]])
    assert np.flatnonzero(dock.selection_layer().data[:, 0]).tolist() == [12]
    # outside the image: nothing changes
    outside = fake_click((position[0], series.data_to_world((0, 0))[1] - 100.0))
    mouse_press_callbacks(viewer, outside)
    outside.type = "mouse_release"
    mouse_release_callbacks(viewer, outside)
    np.testing.assert_array_equal(dock.selected_rows, [12])


def fake_click(position):
    """Return a mouse event as napari passes to drag callbacks (its type is changed in place)."""
    return types.SimpleNamespace(
        position=position, type="mouse_press", modifiers=(), button=1, handled=False,
        pos=np.zeros(2), view_direction=None, dims_displayed=[0, 1],
    )  # fmt: skip


def test_both_docks_open_from_the_plugin_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    _, encoder = viewer.window.add_plugin_dock_widget("napari-xrdphase", "Encoder")
    _, explore = viewer.window.add_plugin_dock_widget("napari-xrdphase", "Explore")
    assert isinstance(encoder, EncoderDock)
    assert type(explore).__name__ == "ExploreDock"
    assert explore.status.value == "not computed"
