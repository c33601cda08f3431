"""Live mode: watching a folder or a growing HDF5 file and classifying curves as they arrive."""

import csv
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import pytest
from _toy import AXIS, N_POINTS, ProjectionEncoder, peak

from napari_xrdphase.classify import fit_classifier
from napari_xrdphase.live import FolderWatcher, HDF5Watcher, LiveSeries, watcher_for
from napari_xrdphase.stack import SpectraStack


def curve(i, n=120):
    """Curve ``i`` of a series whose peak moves from 20° to 30° between curves 48 and 72."""
    fraction = float(np.clip((i / (n - 1) - 0.4) / 0.2, 0, 1))
    noise = 0.01 * np.random.default_rng(i).standard_normal(N_POINTS)
    return (1 - fraction) * peak(20) + fraction * peak(30) + noise


def truth(i, n=120):
    position = i / (n - 1)
    return "before" if position < 0.4 else "after" if position > 0.6 else "during"


def xy_text(i):
    rows = "".join(f"{x:.6f} {y:.6f}\n" for x, y in zip(AXIS, curve(i), strict=True))
    return "# 2th_deg I\n" + rows


def write_curve(folder, i):
    """Write f_<i>.xy the way a detector pipeline does: to a hidden file, then renamed."""
    hidden = folder / f".f_{i}.xy.part"
    hidden.write_text(xy_text(i))
    hidden.rename(folder / f"f_{i}.xy")


def stack_of(rows, name="live"):
    curves = np.array([curve(i) for i in rows])
    return SpectraStack(curves, AXIS, name=name, sources=[f"f_{i}.xy" for i in rows])


@pytest.fixture(scope="module")
def classifier():
    full = stack_of(range(120))
    labels = {"live": {i: truth(i) for i in range(0, 120, 6)}}
    return fit_classifier(ProjectionEncoder(dim=16), full, labels)


def test_files_written_by_a_thread_arrive_complete_and_in_natural_order(tmp_path):
    for i in range(3):
        write_curve(tmp_path, i)
    watcher = FolderWatcher(tmp_path, poll_s=0.02, axis=AXIS)  # f_0..f_2 were there before

    def produce():
        for i in range(3, 15):
            write_curve(tmp_path, i)
            time.sleep(0.01)

    writer = threading.Thread(target=produce)
    writer.start()
    batches = []
    # stop once all 12 arrived; the long timeout only guards against a hang on a loaded machine
    for batch in watcher.watch(
        timeout_s=30.0, should_stop=lambda: sum(len(b) for b in batches) >= 12
    ):
        batches.append(batch)
    writer.join()
    number = lambda f: int(f.path.name[2:-3])  # noqa: E731
    for batch in batches:  # f_10 after f_9 within a poll: natural, not text order
        assert [number(f) for f in batch] == sorted(number(f) for f in batch)
    arrived = [f for batch in batches for f in batch]
    assert sorted(number(f) for f in arrived) == list(range(3, 15))
    arrived.sort(key=number)
    np.testing.assert_allclose(arrived[0].y, curve(3), atol=1e-6)


def test_a_partially_written_file_is_retried_until_complete(tmp_path):
    watcher = FolderWatcher(tmp_path, poll_s=0.01, axis=AXIS)
    text = xy_text(7)
    half = text[: len(text) // 2]
    half = half[: half.rfind("\n") + 1] + "23.45"  # cut mid-line, as a writer caught in the act
    (tmp_path / "f_7.xy").write_text(half)
    assert watcher.poll() == []  # first sight: not yet known to be stable
    assert watcher.poll() == []  # stable, but ends early (does not reach 40°): retried
    assert watcher.poll() == []
    with open(tmp_path / "f_7.xy", "w") as fh:
        fh.write(text)
    assert watcher.poll() == []  # size changed: wait for one more poll
    (arrived,) = watcher.poll()
    assert arrived.path.name == "f_7.xy"
    np.testing.assert_allclose(arrived.y, curve(7), atol=1e-6)
    assert watcher.poll() == []  # reported once


def test_a_file_that_never_parses_is_skipped_with_a_warning(tmp_path):
    watcher = FolderWatcher(tmp_path, poll_s=0.01, max_attempts=3)
    (tmp_path / "junk.xy").write_text("not a curve\n")
    with pytest.warns(UserWarning, match="junk.xy: skipped after 3 attempts"):
        for _ in range(5):
            assert watcher.poll() == []


def test_live_series_classifies_new_curves_and_reports_new_boundaries(classifier, tmp_path):
    live = LiveSeries(stack_of(range(40)), classifier, folder=tmp_path)
    assert live.boundaries == [] and set(live.labels) == {"before"}
    for i in range(40, 120):
        write_curve(tmp_path, i)
    watcher = FolderWatcher(tmp_path, include_existing=True, skip=live.stack.sources, axis=AXIS)
    assert watcher.poll() == []
    update = live.add(watcher.poll())
    assert update.rows == range(40, 120) and live.stack.n_curves == 120
    assert live.stack.sources[40:] == [f"f_{i}.xy" for i in range(40, 120)]
    np.testing.assert_array_equal(live.stack.variable, np.arange(120))  # the acquisition index
    expected = classifier.predict_proba(stack_of(range(120)))
    np.testing.assert_allclose(live.probabilities, expected, atol=1e-4)  # files keep 6 decimals
    assert update.boundaries_changed
    assert [(b.from_label, b.to_label) for b in update.boundaries] == [
        ("before", "during"),
        ("during", "after"),
    ]
    assert 40 <= update.boundaries[0].index_after <= 56


def test_hdf5_watcher_reports_rows_appended_to_a_growing_file(tmp_path):
    path = tmp_path / "grow.h5"
    with h5py.File(path, "w") as h5:
        group = h5.create_group("entry/data")
        group.attrs["NX_class"], group.attrs["signal"] = "NXdata", "intensity"
        group.attrs["axes"], group.attrs["two_theta_indices"] = [".", "two_theta"], 1
        group.create_dataset("two_theta", data=AXIS).attrs["units"] = "degree"
        data = np.array([curve(i) for i in range(50)], dtype=np.float32)
        group.create_dataset(
            "intensity", data=data, maxshape=(None, N_POINTS), chunks=(10, N_POINTS)
        )
    from napari_xrdphase.io import load_stack

    stack = load_stack(path)
    watcher = watcher_for(path, stack, poll_s=0.01)
    assert isinstance(watcher, HDF5Watcher) and watcher.poll() == []
    with h5py.File(path, "a") as h5:
        signal = h5["entry/data/intensity"]
        signal.resize(80, axis=0)
        signal[50:80] = np.array([curve(i) for i in range(50, 80)])
    (new,) = watcher.poll()
    assert new.start == 50 and new.intensities.shape == (30, N_POINTS) and new.variable is None
    np.testing.assert_allclose(new.intensities[0], curve(50), atol=1e-6)
    assert watcher.poll() == []


def test_hdf5_watcher_reads_new_rows_variable_as_the_series_was_loaded(tmp_path):
    path = tmp_path / "grow.h5"
    with h5py.File(path, "w") as h5:
        group = h5.create_group("entry/data")
        group.attrs["NX_class"], group.attrs["signal"] = "NXdata", "intensity"
        group.attrs["axes"] = ["pressure", "two_theta"]
        group.create_dataset("two_theta", data=AXIS).attrs["units"] = "degree"
        group.create_dataset("pressure", data=np.arange(10.0), maxshape=(None,))
        data = np.array([curve(i) for i in range(10)], dtype=np.float32)
        group.create_dataset("intensity", data=data, maxshape=(None, N_POINTS))
    from napari_xrdphase.io import load_stack

    by_pressure = watcher_for(path, load_stack(path), poll_s=0.01)
    by_index = watcher_for(path, load_stack(path, variable="index"), variable="index")
    with h5py.File(path, "a") as h5:
        h5["entry/data/pressure"].resize(12, axis=0)
        h5["entry/data/pressure"][10:] = [10.5, 11.5]
        h5["entry/data/intensity"].resize(12, axis=0)
        h5["entry/data/intensity"][10:] = np.array([curve(i) for i in range(10, 12)])
    np.testing.assert_array_equal(by_pressure.poll()[0].variable, [10.5, 11.5])
    assert by_index.poll()[0].variable is None  # LiveSeries numbers them by row


@pytest.mark.usefixtures("one_torch_thread")
def test_watch_command_appends_a_row_per_new_curve(tmp_path):
    pytest.importorskip("torch")
    from napari_xrdphase.encoder import Encoder

    folder = tmp_path / "live"
    folder.mkdir()
    for i in range(60):
        write_curve(folder, i)
    model = Encoder.random(seed=0, input_length=64).save(tmp_path / "enc.safetensors")
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "dataset,index,label\n" + "".join(f"live,{i},{truth(i)}\n" for i in range(0, 60, 4))
    )
    out = tmp_path / "pred.csv"
    command = [
        sys.executable, "-m", "napari_xrdphase.cli", "watch", str(folder), "--labels", str(labels),
        "--out", str(out), "--model", str(model), "--poll", "0.05", "--timeout", "1.5",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out.is_file() and len(out.read_text().splitlines()) >= 61):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for i in range(60, 70):
        write_curve(folder, i)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    with open(out, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    # curves 0-59 hold before and during only: the classifier knows those two classes
    assert header == ["dataset", "index", "index", "label", "p_before", "p_during"]
    assert [int(r[1]) for r in rows] == list(range(70))
    assert {r[3] for r in rows} <= {"before", "during"}
    assert "live:" in stdout and "watching" in stderr and "now 70" in stderr


def test_napari_live_mode_grows_the_layer_and_its_phase_strip(
    classifier, tmp_path, make_napari_viewer
):
    from napari_xrdphase._widgets._live import get_live
    from napari_xrdphase._widgets._session import get_session

    folder = tmp_path / "live"
    folder.mkdir()
    for i in range(40):
        write_curve(folder, i)
    viewer = make_napari_viewer()
    session = get_session(viewer)
    layer = session.load(folder)
    session.set_encoder(classifier.encoder, "projection")
    for i in range(0, 40, 4):
        session.label(i, "before")
    for i in (1, 2, 3):
        session.label(i + 36, "during")
    session.classify()
    live = get_live(viewer)
    live.start_live(folder, poll_s=0.05)
    assert live.running
    for i in range(40, 120):
        write_curve(folder, i)
    assert live.poll_once() == 0  # first sight of the new files
    assert live.poll_once() == 80
    live.stop_live()
    # the watched folder stays an input of the grown series: no export lands in it
    assert folder in session.input_paths()
    with pytest.raises(ValueError, match="would become part of the input series"):
        session.export_predictions(folder / "f_9999.xy")
    assert layer.data.shape == (120, N_POINTS)
    assert session.compute_stack(layer).n_curves == 120
    predicted, proba = session.predictions["live"]
    assert proba.shape == (120, 2) and len(predicted) == 120
    phase = next(lay for lay in viewer.layers if lay.name == "live phase")
    assert phase.data.shape == (120, 1)


def test_live_dock_starts_and_stops_watching_the_current_series(
    classifier, tmp_path, make_napari_viewer, qtbot
):
    from napari_xrdphase._widgets._live_dock import LiveDock
    from napari_xrdphase._widgets._session import get_session

    folder = tmp_path / "live"
    folder.mkdir()
    for i in range(30):
        write_curve(folder, i)
    viewer = make_napari_viewer()
    session = get_session(viewer)
    layer = session.load(folder)
    dock = LiveDock(viewer)
    dock.source.value = folder
    dock.poll_s.value = 0.05
    dock.start()
    assert dock.live.running and dock.stop_button.enabled and not dock.start_button.enabled
    for i in range(30, 36):
        write_curve(folder, i)
    qtbot.waitUntil(lambda: layer.data.shape[0] == 36, timeout=10_000)
    assert "36 curves" in dock.status.value
    dock.stop()
    assert not dock.live.running and dock.status.value == "stopped"


def test_live_dock_reports_a_missing_folder_as_a_notification(
    make_napari_viewer, tmp_path, monkeypatch
):
    from napari.utils import notifications

    from napari_xrdphase._widgets._live_dock import LiveDock
    from napari_xrdphase._widgets._session import get_session

    folder = tmp_path / "live"
    folder.mkdir()
    for i in range(5):
        write_curve(folder, i)
    viewer = make_napari_viewer()
    get_session(viewer).load(folder)
    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    dock = LiveDock(viewer)
    dock.source.value = tmp_path / "nowhere"
    dock.start()
    assert not dock.live.running
    assert shown and "Live:" in shown[0] and "nowhere" in shown[0]
