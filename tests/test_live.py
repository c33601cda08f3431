"""Live mode: watching a folder or a growing HDF5 file and classifying curves as they arrive."""

import contextlib
import csv
import signal
import subprocess
import sys
import threading
import time
import warnings

import h5py
import numpy as np
import pytest
from _toy import AXIS, N_POINTS, ProjectionEncoder, peak
from _waits import HANG_MS, HANG_S

from napari_xrdphase.classify import fit_classifier
from napari_xrdphase.live import (
    CurveFile,
    FolderWatcher,
    HDF5Watcher,
    LiveSeries,
    PredictionsCsvAppender,
    SkippedCurve,
    watcher_for,
)
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
        timeout_s=120.0, should_stop=lambda: sum(len(b) for b in batches) >= 12
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
    (tmp_path / "junk.xy").write_text("not a curve\n")  # perhaps a header, data to come: retried
    assert watcher.poll() == []  # first sight
    assert watcher.poll() == [] and watcher.poll() == []
    with pytest.warns(UserWarning, match=r"junk.xy: skipped after 3 attempts .*no numeric columns"):
        (skipped,) = watcher.poll()
    assert isinstance(skipped, SkippedCurve) and skipped.source == "junk.xy"
    assert skipped.reason.startswith("no numeric columns found")
    assert watcher.poll() == []  # reported once


def garbled_text(i):
    """A complete curve file with a line of text in the middle of its data."""
    lines = xy_text(i).splitlines(keepends=True)
    return "".join([*lines[:30], "detector error: frame dropped\n", *lines[30:]])


def test_a_complete_but_bad_file_is_skipped_at_once_with_the_readers_reason(tmp_path):
    watcher = FolderWatcher(tmp_path, poll_s=0.01, axis=AXIS)
    (tmp_path / "f_5.xy").write_text(garbled_text(5))
    assert watcher.poll() == []  # first sight
    with pytest.warns(UserWarning) as caught:
        (skipped,) = watcher.poll()  # stable: its lines are complete, one is bad
    (message,) = [str(w.message) for w in caught]
    assert "f_5.xy: skipped (complete but unreadable): line 31: cannot read" in message
    assert "axis" not in message and "\n" not in message
    assert skipped.reason == "line 31: cannot read 'detector error: frame dropped' as numbers"


def test_files_arrive_in_file_order_whatever_finishes_first(tmp_path):
    """A file still being written holds back the ones after it, so positions are file order."""
    watcher = FolderWatcher(tmp_path, poll_s=0.01, axis=AXIS)
    text = xy_text(3)
    (tmp_path / "f_3.xy").write_text(text[: len(text) // 2])  # cut mid-line, still being written
    for i in (4, 5):
        write_curve(tmp_path, i)
    (tmp_path / "f_6.xy").write_text(garbled_text(6))
    write_curve(tmp_path, 7)
    assert watcher.poll() == []  # first sight of all
    assert watcher.poll() == [] and watcher.poll() == []  # f_3 unfinished: the others wait
    (tmp_path / "f_3.xy").write_text(text)
    assert watcher.poll() == []  # f_3 changed: one more poll
    with pytest.warns(UserWarning, match="f_6.xy: skipped"):
        arrived = watcher.poll()
    assert [item.path.name if isinstance(item, CurveFile) else item.source for item in arrived] == [
        "f_3.xy", "f_4.xy", "f_5.xy", "f_6.xy", "f_7.xy"
    ]  # fmt: skip
    assert isinstance(arrived[3], SkippedCurve)


def test_a_skipped_file_keeps_its_place_in_the_series(classifier, tmp_path):
    live = LiveSeries(stack_of(range(40)), classifier)
    watcher = FolderWatcher(tmp_path, include_existing=True, axis=AXIS)
    for i in range(40, 50):
        if i == 43:
            (tmp_path / "f_43.xy").write_text(garbled_text(43))
        else:
            write_curve(tmp_path, i)
    assert watcher.poll() == []
    with pytest.warns(UserWarning, match="f_43.xy: skipped"):
        update = live.add(watcher.poll())
    assert update.rows == range(40, 49) and live.stack.n_curves == 49
    assert [s.index for s in update.skipped] == [43] and live.skipped == update.skipped
    assert live.indices[40:].tolist() == [40, 41, 42, 44, 45, 46, 47, 48, 49]
    np.testing.assert_array_equal(live.stack.variable[40:], live.indices[40:])  # index variable
    assert live.stack.sources[43] == "f_44.xy"
    rows = live.prediction_rows(update)
    assert [r[0] for r in rows] == list(range(40, 50))
    index, source, value, label, proba, reason, own = rows[3]
    assert (index, source, value, label, proba, own) == (43, "f_43.xy", 43.0, "", None, ())
    assert reason.startswith("line 31: cannot read")
    assert rows[4][:2] == (44, "f_44.xy") and rows[4][3] and rows[4][5] == ""


def write_metadata(folder, rows, header="file,pressure (GPa)"):
    (folder / "metadata.csv").write_text(header + "\n" + "".join(f"{r}\n" for r in rows))


def test_new_curves_take_their_variable_from_metadata_with_batch_checks(tmp_path):
    from napari_xrdphase.io import load_stack

    for i in range(4):
        write_curve(tmp_path, i)
    rows = [f"f_{i}.xy,{i / 2}" for i in range(4)]
    write_metadata(tmp_path, rows)
    stack = load_stack(tmp_path)
    assert stack.variable_name == "pressure"
    watcher = watcher_for(tmp_path, stack, poll_s=0.01)
    live = LiveSeries(stack)
    write_curve(tmp_path, 4)  # its row is written after the file
    assert watcher.poll() == []  # first sight
    assert watcher.poll() == [] and watcher.poll() == []  # complete, but not listed yet: waits
    rows.append("f_4.xy,2.0")
    write_metadata(tmp_path, rows)
    (arrived,) = watcher.poll()
    assert arrived.variable == 2.0
    live.add([arrived])
    # a row naming a file still to come is fine, as long as the file is valid
    rows += ["f_5.xy,2.5", "f_6.xy,3.0"]
    write_metadata(tmp_path, rows)
    assert watcher.poll() == []
    # the writer rewrites a row and repeats the header: batch mode refuses that file
    write_metadata(tmp_path, [*rows, "file,pressure (GPa)", "f_1.xy,9.5"])
    with pytest.warns(UserWarning) as caught:
        assert watcher.poll() == []  # said at once, before any curve needs a value
    (message,) = [str(w.message) for w in caught]
    assert "metadata.csv line 9: repeats the header line" in message and "\n" not in message
    with pytest.raises(ValueError, match="line 9: repeats the header line"):
        load_stack(tmp_path)  # batch mode says the same
    write_curve(tmp_path, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once only
        assert watcher.poll() == []
        (arrived,) = watcher.poll()
    assert np.isnan(arrived.variable)  # never the last good value
    update = live.add([arrived])
    assert live.missing.tolist() == [False] * 5 + [True]
    assert np.isnan(live.prediction_rows(update)[0][2])
    write_metadata(tmp_path, [*rows, "f_1.xy,9.5"])  # another problem: said again
    with pytest.warns(UserWarning, match=r"metadata.csv line 9: f_1.xy is listed twice"):
        watcher.poll()
    write_metadata(tmp_path, rows)  # corrected: values again
    write_curve(tmp_path, 6)
    assert watcher.poll() == []
    (arrived,) = watcher.poll()
    assert arrived.variable == 3.0


def test_a_curve_its_metadata_never_lists_gets_no_value_after_max_attempts(tmp_path):
    for i in range(3):
        write_curve(tmp_path, i)
    write_metadata(tmp_path, [f"f_{i}.xy,{i}" for i in range(3)])
    watcher = FolderWatcher(tmp_path, axis=AXIS, variable="pressure", max_attempts=3)
    write_curve(tmp_path, 3)
    assert watcher.poll() == [] and watcher.poll() == [] and watcher.poll() == []
    with pytest.warns(UserWarning, match=r"f_3.xy: metadata.csv has no row for it after 3 looks"):
        (arrived,) = watcher.poll()
    assert np.isnan(arrived.variable)


def test_a_row_being_written_is_waited_for_but_a_bad_last_row_is_reported(tmp_path):
    for i in range(3):
        write_curve(tmp_path, i)
    write_metadata(tmp_path, [f"f_{i}.xy,{i}" for i in range(3)])
    watcher = FolderWatcher(tmp_path, axis=AXIS, variable="pressure")
    assert watcher.poll() == []
    with open(tmp_path / "metadata.csv", "a") as fh:
        fh.write("f_3.xy")  # the writer is in the middle of the row: no warning yet
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert watcher.poll() == []
    with pytest.warns(UserWarning, match=r"metadata.csv line 5: 1 cells, but the header has 2"):
        assert watcher.poll() == []  # unchanged since: the row stays broken


def test_a_file_on_another_axis_is_skipped_with_the_reason(tmp_path):
    watcher = FolderWatcher(tmp_path, axis=AXIS, axis_kind=("2theta", "deg"))
    (tmp_path / "f_1.xy").write_text(xy_text(1).replace("# 2th_deg I", "# q_A^-1 I"))
    assert watcher.poll() == []
    with pytest.warns(UserWarning, match=r"f_1.xy: skipped \(complete, but on another axis\)"):
        (skipped,) = watcher.poll()
    assert (
        skipped.reason == "its header says the x axis is q in 1/A, but the series' is 2theta in deg"
    )


def test_missing_values_are_left_out_of_the_phase_order_and_boundaries(classifier):
    live = LiveSeries(stack_of(range(40)), classifier)
    values = np.arange(40, 120, dtype=float)
    values[10:20] = np.nan  # curves 50-59: their variable is unknown
    update = live.append(np.array([curve(i) for i in range(40, 120)]), values,
                         [f"f_{i}.xy" for i in range(40, 120)])  # fmt: skip
    assert update.rows == range(40, 120) and live.missing.sum() == 10
    assert np.isfinite(live.stack.variable).all()  # kept valid for display...
    rows = live.prediction_rows(update)
    assert all(np.isnan(r[2]) for r in rows[10:20])  # ...but written as missing
    assert rows[9][2] == 49.0 and rows[20][2] == 60.0
    for boundary in live.boundaries:
        assert not live.missing[boundary.index_before] and not live.missing[boundary.index_after]


def test_live_series_classifies_new_curves_and_reports_new_boundaries(classifier, tmp_path):
    live = LiveSeries(stack_of(range(40)), classifier)
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
    assert new.sources[0] == "grow.h5[50]"  # as load_stack names the rows
    np.testing.assert_allclose(new.intensities[0], curve(50), atol=1e-6)
    assert watcher.poll() == []


def grow_file(path, rows):
    with h5py.File(path, "w") as h5:
        group = h5.create_group("entry/data")
        group.attrs["NX_class"], group.attrs["signal"] = "NXdata", "intensity"
        group.attrs["axes"], group.attrs["two_theta_indices"] = [".", "two_theta"], 1
        group.create_dataset("two_theta", data=AXIS).attrs["units"] = "degree"
        data = np.array([curve(i) for i in rows], dtype=np.float32)
        group.create_dataset("intensity", data=data, maxshape=(None, N_POINTS))


def test_a_hole_in_a_growing_hdf5_file_keeps_every_later_row_index(classifier, tmp_path):
    from napari_xrdphase.io import load_stack

    path = tmp_path / "grow.h5"
    grow_file(path, range(40))
    stack = load_stack(path)
    assert stack.sources[:2] == ["grow.h5[0]", "grow.h5[1]"]
    live = LiveSeries(stack, classifier)
    watcher = watcher_for(path, stack, poll_s=0.01, max_attempts=3)
    out = PredictionsCsvAppender(tmp_path / "pred.csv", stack.variable_name, classifier.classes)
    out.append_live(live)
    with h5py.File(path, "a") as h5:
        signal = h5["entry/data/intensity"]
        signal.resize(70, axis=0)
        signal[40:60] = np.array([curve(i) for i in range(40, 60)])
        signal[45] = np.nan  # a frame the detector never delivered
        signal[60:70] = np.nan  # allocated, not written yet
    (first,) = watcher.poll()  # rows 40-44; row 45 may still be written
    assert (first.start, first.intensities.shape[0]) == (40, 5)
    assert watcher.poll() == []
    with pytest.warns(UserWarning, match=r"grow.h5: skipped grow.h5\[45\]: row 45 holds"):
        hole, rest = watcher.poll()
    assert isinstance(hole, SkippedCurve) and hole.index == 45
    assert (rest.start, rest.intensities.shape[0]) == (46, 14)
    for _ in range(5):  # the unwritten rows at the end are waited for, never skipped
        assert watcher.poll() == []
    for arrivals in ([first], [hole, rest]):
        out.append_live(live, live.add(arrivals))
    with h5py.File(path, "a") as h5:
        h5["entry/data/intensity"][60:70] = np.array([curve(i) for i in range(60, 70)])
    out.append_live(live, live.add(watcher.poll()))
    with open(out.path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["index"]) for r in rows] == list(range(70))
    assert [r["source"] for r in rows] == [f"grow.h5[{i}]" for i in range(70)]
    assert [r["index_variable"] for r in rows] == [str(i) for i in range(70)]
    assert rows[45]["label"] == "" and rows[45]["p_before"] == ""
    assert rows[45]["skipped"].startswith("row 45 holds 64 NaN or inf values")
    assert all(r["label"] and not r["skipped"] for r in rows if r["index"] != "45")


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


def step_curve(i, step=30):
    """Curve ``i`` of a series whose peak jumps from 20° ("low") to 30° ("high") at curve ``step``."""
    noise = 0.01 * np.random.default_rng(i).standard_normal(N_POINTS)
    return (peak(20) if i < step else peak(30)) + noise


def write_step_curve(folder, i, step=30, text=None):
    if text is None:
        rows = "".join(f"{x:.6f} {y:.6f}\n" for x, y in zip(AXIS, step_curve(i, step), strict=True))
        text = "# 2th_deg I\n" + rows
    hidden = folder / f".f_{i}.xy.part"
    hidden.write_text(text)
    hidden.rename(folder / f"f_{i}.xy")


def add_row(folder, line):
    with open(folder / "metadata.csv", "a") as fh:
        fh.write(line + "\n")


def start_step_series(tmp_path, n, step):
    """A folder of ``n`` step curves with metadata.csv (pressure 0.5 GPa per curve), labels and a model."""
    from napari_xrdphase.encoder import Encoder

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metadata.csv").write_text("file,pressure (GPa)\n")
    for i in range(n):
        add_row(folder, f"f_{i}.xy,{i / 2}")
        write_step_curve(folder, i, step)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "dataset,index,label\n"
        + "".join(f"run,{i},{'low' if i < step else 'high'}\n" for i in range(0, n, 3))
    )
    model = Encoder.random(seed=0, input_length=N_POINTS).save(tmp_path / "enc.safetensors")
    return folder, labels, model


def wait_for(condition, process, what):
    # bounded: a hang fails after minutes, however slow the machine
    for _ in range(3000):
        if condition():
            return
        assert process.poll() is None, f"watch exited while waiting for {what}"
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def csv_lines(path):
    return len(path.read_text().splitlines()) if path.is_file() else 0


def watch(folder, labels, model, out, log, *options):
    """Start ``xrdphase watch`` (``model`` None: the built-in encoder) with more ``options``."""
    command = [
        sys.executable, "-m", "napari_xrdphase.cli", "watch", str(folder), "--labels",
        str(labels), "--out", str(out), *(["--model", str(model)] if model else []),
        "--poll", "0.05", *options,
        "--timeout", "600",  # stopped by Ctrl-C (SIGINT) below, once every row is there
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True,
        # a test run started in the background inherits an ignored SIGINT, and so would the
        # watcher; Ctrl-C must reach it as it reaches a watcher started from a terminal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def stop(process):
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=HANG_S)
    assert process.returncode == 0
    return stdout


def read_rows(path):
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


@pytest.mark.usefixtures("one_torch_thread")
def test_watch_and_classify_of_the_finished_folder_agree_row_by_row(tmp_path):
    pytest.importorskip("torch")
    from napari_xrdphase.cli import main

    folder, labels, model = start_step_series(tmp_path, 60, step=30)
    out, log = tmp_path / "live.csv", tmp_path / "watch.log"
    process = watch(folder, labels, model, out, log)
    wait_for(lambda: csv_lines(out) == 61, process, "the first 60 rows")
    for i in range(60, 90):
        add_row(folder, f"f_{i}.xy,{i / 2}")  # the row, then the file
        write_step_curve(folder, i)
    wait_for(lambda: csv_lines(out) == 91, process, "the 30 new rows")
    stdout = stop(process)
    assert "run:" in stdout and "now 90" in log.read_text()
    batch = tmp_path / "batch.csv"
    assert main(["classify", str(folder), "--labels", str(labels), "--out", str(batch),
                 "--model", str(model)]) == 0  # fmt: skip
    header, live_rows = read_rows(out)
    batch_header, batch_rows = read_rows(batch)
    assert batch_header == [*header, "novelty"]  # live files carry no novelty column
    assert header[:6] == ["dataset", "index", "source", "pressure", "label", "skipped"]
    assert sorted(header[6:]) == ["p_high", "p_low"]
    assert len(live_rows) == len(batch_rows) == 90
    columns = ("dataset", "index", "source", "pressure", "label", "skipped")
    for got, want in zip(live_rows, batch_rows, strict=True):
        assert [got[c] for c in columns] == [want[c] for c in columns]
    assert [r["source"] for r in live_rows] == [f"f_{i}.xy" for i in range(90)]
    assert {r["label"] for r in live_rows[60:]} == {"high"}


@pytest.mark.usefixtures("one_torch_thread")
def test_watch_reports_a_bad_file_and_bad_metadata_and_keeps_every_index(tmp_path):
    pytest.importorskip("torch")
    folder, labels, model = start_step_series(tmp_path, 40, step=20)
    out, log = tmp_path / "live.csv", tmp_path / "watch.log"
    process = watch(folder, labels, model, out, log)
    wait_for(lambda: csv_lines(out) == 41, process, "the first 40 rows")
    for i in range(40, 50):
        add_row(folder, f"f_{i}.xy,{i / 2}")
        write_step_curve(folder, i, text=garbled_text(i) if i == 45 else None)
    wait_for(lambda: csv_lines(out) == 51, process, "rows 40-49")
    add_row(folder, "f_1.xy,99")  # metadata.csv line 52 lists f_1.xy again
    wait_for(lambda: "listed twice" in log.read_text(), process, "the metadata warning")
    for i in range(50, 55):
        add_row(folder, f"f_{i}.xy,{i / 2}")
        write_step_curve(folder, i)
    wait_for(lambda: csv_lines(out) == 56, process, "rows 50-54")
    stop(process)
    header, rows = read_rows(out)
    assert header[:6] == ["dataset", "index", "source", "pressure", "label", "skipped"]
    assert [int(r["index"]) for r in rows] == list(range(55))
    assert [r["source"] for r in rows] == [f"f_{i}.xy" for i in range(55)]
    bad = rows[45]
    assert bad["label"] == "" and bad["p_low"] == "" and bad["pressure"] == "22.5"
    assert bad["skipped"] == "line 31: cannot read 'detector error: frame dropped' as numbers"
    assert [r["pressure"] for r in rows[46:50]] == ["23", "23.5", "24", "24.5"]
    assert all(r["label"] == "high" and not r["skipped"] for r in rows[46:50])
    assert [r["pressure"] for r in rows[50:]] == [""] * 5  # not 24.5 again: unknown
    assert all(r["label"] for r in rows[50:])
    text = log.read_text()
    skip_lines = [line for line in text.splitlines() if "warning" in line and "skipped" in line]
    assert len(skip_lines) == 1
    assert "f_45.xy: skipped (complete but unreadable): line 31: cannot read" in skip_lines[0]
    metadata_lines = [line for line in text.splitlines() if "listed twice" in line]
    assert len(metadata_lines) == 1
    assert "metadata.csv line 52: f_1.xy is listed twice" in metadata_lines[0]
    assert "1 skipped" in text


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
    qtbot.waitUntil(lambda: layer.data.shape[0] == 36, timeout=HANG_MS)
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


# --- live pressure from the calibrant's lines ------------------------------------------------


def pt_series_folder(tmp_path):
    """A simulated Fe series with Pt lines as .xy files (own variable: membrane, bar), labels."""
    from napari_xrdphase.io import save_stack
    from napari_xrdphase.synth import simulate_series

    simulated = simulate_series("Fe", 12, 6, 12, marker="Pt", n_points=1500, seed=4)
    membrane = np.linspace(5.0, 60.0, simulated.stack.n_curves)
    own = simulated.stack.replace(variable=membrane, variable_name="membrane", variable_unit="bar")
    staging = save_stack(own.replace(name="run"), tmp_path / "staging")
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "dataset,index,label\n"
        + "".join(f"run,{i},{simulated.labels[i]}\n" for i in (0, 3, 13, 15, 18, 19))
    )
    return staging, labels, simulated


def copy_curve(staging, folder, name):
    """Add a curve file to ``folder``: its metadata.csv row, then the file (written, renamed)."""
    row = next(
        line for line in (staging / "metadata.csv").read_text().splitlines()
        if line.startswith(f"{name},")
    )  # fmt: skip
    add_row(folder, row)
    hidden = folder / f".{name}.part"
    hidden.write_bytes((staging / name).read_bytes())
    hidden.rename(folder / name)


@pytest.mark.usefixtures("one_torch_thread")
def test_watch_with_pressure_from_tells_the_story_classify_tells_of_the_finished_folder(tmp_path):
    pytest.importorskip("torch")
    from napari_xrdphase.cli import main

    staging, labels, simulated = pt_series_folder(tmp_path)
    names = [f"run_{i}.xy" for i in range(30)]
    assert all((staging / name).is_file() for name in names)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metadata.csv").write_text("file,membrane (bar)\n")
    for name in names[:20]:
        copy_curve(staging, folder, name)
    out, log = tmp_path / "live.csv", tmp_path / "watch.log"
    process = watch(folder, labels, None, out, log, "--pressure-from", "Pt")
    wait_for(lambda: csv_lines(out) == 21, process, "the first 20 rows")
    for k, name in enumerate(names[20:], start=21):
        copy_curve(staging, folder, name)  # curve by curve: each fit continues the track
        wait_for(lambda k=k: csv_lines(out) == k + 1, process, f"row {k}")
    stdout = stop(process)
    text = log.read_text()
    assert "run: pressure from Pt (Fei2007)" in text and "now 30), last after at " in text
    batch, printed = tmp_path / "batch.csv", tmp_path / "batch.log"
    with open(printed, "w") as fh, contextlib.redirect_stdout(fh):
        assert main(["classify", str(folder), "--labels", str(labels), "--out", str(batch),
                     "--pressure-from", "Pt"]) == 0  # fmt: skip
    header, live_rows = read_rows(out)
    batch_header, batch_rows = read_rows(batch)
    assert batch_header == [*header, "novelty"]
    assert header[3] == "pressure" and header[-1] == "membrane"
    columns = ("dataset", "index", "source", "label", "skipped", "membrane")
    for got, want in zip(live_rows, batch_rows, strict=True):
        assert [got[c] for c in columns] == [want[c] for c in columns]
    live_p = np.array([float(r["pressure"]) for r in live_rows])
    batch_p = np.array([float(r["pressure"]) for r in batch_rows])
    np.testing.assert_allclose(live_p, batch_p, atol=0.2)
    np.testing.assert_allclose(live_p, simulated.stack.variable, atol=1.0)
    # the last summary watch prints is the one classify prints: same boundaries, same counts
    live_summary = stdout[stdout.rindex("run:") :].splitlines()
    batch_summary = printed.read_text().splitlines()
    batch_summary = batch_summary[batch_summary.index("run:") :]

    def story(lines):
        return [line.split(" at ")[0] + line[line.index("(curves") :] if "→" in line else line
                for line in lines if "→" in line or "curves per phase" in line]  # fmt: skip

    assert story(live_summary) == story(batch_summary) and len(story(live_summary)) == 3
    assert all("GPa" in line for line in live_summary if "→" in line)


def test_a_new_curve_without_the_calibrant_gets_no_pressure_but_keeps_its_own_variable(tmp_path):
    from napari_xrdphase.pressure import PressureTrack, stack_with_pressure

    _, _, simulated = pt_series_folder(tmp_path)
    stack = simulated.stack.replace(
        variable=np.linspace(5.0, 60.0, 30), variable_name="membrane", variable_unit="bar"
    )
    track = PressureTrack("Pt")
    first = stack.subset(slice(0, 10))
    live = LiveSeries(stack_with_pressure(first, track.begin(first)), pressure=track)
    curves = stack.curves()[10:14].copy()
    curves[2] = np.random.default_rng(0).poisson(curves[2].mean(), curves.shape[1])  # no Pt
    sources = [f"run_{i}.xy" for i in range(10, 14)]
    with pytest.warns(UserWarning, match="run_12.xy: no pressure from Pt: no usable Pt line"):
        update = live.append(curves, stack.variable[10:14], sources)
    assert live.missing[10:14].tolist() == [False, False, True, False]
    rows = live.prediction_rows(update)
    assert np.isnan(rows[2][2]) and rows[2][6] == (stack.variable[12],)
    np.testing.assert_allclose([rows[i][2] for i in (0, 1, 3)],
                               simulated.stack.variable[[10, 11, 13]], atol=1.0)  # fmt: skip
    assert [r[6] for r in rows] == [(v,) for v in stack.variable[10:14]]
    out = PredictionsCsvAppender(tmp_path / "live.csv", "pressure", [], ["membrane"])
    out.append_live(live, update)
    header, written = read_rows(out.path)
    assert header == ["dataset", "index", "source", "pressure", "label", "skipped", "membrane"]
    assert written[2]["pressure"] == "" and float(written[2]["membrane"]) == pytest.approx(
        stack.variable[12], rel=1e-5
    )
