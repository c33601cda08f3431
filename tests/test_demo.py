"""`xrdphase demo`: napari with the docks, and the whole path headless with --screenshot."""

import argparse
import os
import subprocess
import sys

import pytest

from napari_xrdphase._widgets._session import get_session
from napari_xrdphase.cli import CommandError, _demo_screenshot, build_parser
from napari_xrdphase.synth import simulate_series

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_demo_screenshot_runs_the_whole_path_and_exits_0(tmp_path):
    out = tmp_path / "shots" / "demo.png"
    result = subprocess.run(
        [sys.executable, "-m", "napari_xrdphase.cli", "demo", "--screenshot", str(out)],
        capture_output=True,
        text=True,
        # one torch thread: see test_gui_session.one_torch_thread
        env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert out.stat().st_size > 50_000  # a window with an image, not a blank frame
    assert "labelled" in result.stderr and " → " in result.stderr
    # the labelling loop: suggested curves answered, classified again, each time scored
    assert "answered the suggested curves" in result.stderr
    assert result.stderr.count("curves as simulated)") == 2
    assert "DeprecationWarning" not in result.stderr


def test_demo_parser_takes_paths_labels_and_screenshot():
    args = build_parser().parse_args(
        ["demo", "a.h5", "b", "--labels", "l.csv", "--screenshot", "o.png"]
    )
    assert args.paths == ["a.h5", "b"] and args.labels == "l.csv" and args.screenshot == "o.png"
    assert build_parser().parse_args(["demo"]).paths == []


def test_demo_screenshot_of_a_series_without_labels_says_what_to_give(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    session = get_session(viewer)
    session.add_stack(simulate_series("Fe", 4, 2, 4, n_points=200, seed=0, name="real").stack)
    args = argparse.Namespace(screenshot=str(tmp_path / "x.png"), seed=0)
    with pytest.raises(CommandError, match=r"--labels LABELS\.csv"):
        _demo_screenshot(viewer, session, args)
    assert not (tmp_path / "x.png").exists()
