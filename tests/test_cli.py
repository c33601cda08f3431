"""The `xrdphase` command line, end to end, as a subprocess and in-process."""

import csv
import subprocess
import sys

import numpy as np
import pytest

from napari_xrdphase import load_stack
from napari_xrdphase.cli import main


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "napari_xrdphase.cli", *args], capture_output=True, text=True
    )


@pytest.mark.parametrize("fmt", ["h5", "npz", "xy"])
def test_simulate_writes_the_paper_suite_and_info_reads_it(tmp_path, fmt, capsys):
    out = tmp_path / "suite"
    assert main(["simulate", str(out), "--suite", "paper", "--format", fmt, "--points", "600"]) == 0
    with open(out / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["dataset", "index", "label"]
    datasets = sorted({r["dataset"] for r in rows}, key=lambda s: int(s[1:]))
    assert datasets == [f"D{i}" for i in range(1, 10)]
    d1 = [r["label"] for r in rows if r["dataset"] == "D1"]
    assert (d1.count("before"), d1.count("during"), d1.count("after")) == (17, 0, 43)
    suffix = {"h5": ".h5", "npz": ".npz", "xy": ""}[fmt]
    stack = load_stack(out / f"D9{suffix}")
    assert stack.n_curves == 460 and stack.n_points == 600
    assert stack.variable_name == "pressure"
    capsys.readouterr()
    assert main(["info", str(out / f"D1{suffix}"), str(out / f"D9{suffix}")]) == 0
    printed = capsys.readouterr().out
    assert "D1\n  curves:   60\n  points:   600" in printed
    assert "D9\n  curves:   460" in printed
    assert "pressure:" in printed and "GPa" in printed and "deg (2theta)" in printed


def test_info_on_a_bad_path_is_a_clear_error_without_traceback(tmp_path):
    result = run_cli("info", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "xrdphase: error:" in result.stderr and "nowhere" in result.stderr
    assert "Traceback" not in result.stderr


def test_console_script_is_installed():
    result = subprocess.run(["xrdphase", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("info", "simulate"):
        assert command in result.stdout


def test_simulated_files_are_reproducible_by_seed(tmp_path):
    for name in ("a", "b"):
        assert main(["simulate", str(tmp_path / name), "--format", "npz", "--points", "300"]) == 0
    a, b = load_stack(tmp_path / "a" / "D3.npz"), load_stack(tmp_path / "b" / "D3.npz")
    np.testing.assert_array_equal(a.curves(), b.curves())
