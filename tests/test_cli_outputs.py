"""The command line never destroys a file and tells one story: refusals, help, warnings."""

import argparse
import hashlib

import numpy as np
import pytest

from napari_xrdphase.cli import build_parser, main
from napari_xrdphase.encoder import Encoder
from napari_xrdphase.io import save_stack
from napari_xrdphase.synth import simulate_series

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def checksum(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def run(tmp_path):
    """A simulated series, its labels and a random-encoder model, as files."""
    series = simulate_series("Fe", 8, 4, 12, n_points=600, seed=3, name="run")
    data = save_stack(series.stack, tmp_path / "run.npz")
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "dataset,index,label\n"
        + "".join(f"run,{i},{series.labels[i]}\n" for i in (0, 2, 4, 9, 10, 14, 18, 22))
    )
    model = Encoder.random(seed=1).save(tmp_path / "model.safetensors")
    return data, labels, model


def classify_argv(data, labels, model, out):
    return [
        "classify",
        str(data),
        "--labels",
        str(labels),
        "--model",
        str(model),
        "--out",
        str(out),
    ]


@pytest.mark.parametrize("target", [0, 1, 2], ids=["data", "labels", "model"])
def test_classify_refuses_to_write_over_any_of_its_inputs(run, target, capsys):
    victim = run[target]
    before = checksum(victim)
    assert main([*classify_argv(*run, victim), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"xrdphase: error: {victim} is one of the inputs (a series, the labels or the model); write to another file"
    ]
    assert checksum(victim) == before


def test_classify_keeps_an_existing_output_unless_asked_to_overwrite(run, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    out.write_text("my own notes\n")
    assert main(classify_argv(*run, out)) == 2
    assert capsys.readouterr().err.strip() == (
        f"xrdphase: error: {out} exists and is kept; give --overwrite to replace it"
    )
    assert out.read_text() == "my own notes\n"
    assert main([*classify_argv(*run, out), "--overwrite"]) == 0
    assert out.read_text().startswith("dataset,index,")


def test_classify_refuses_to_write_a_curve_into_an_input_folder(tmp_path, capsys):
    series = simulate_series("Fe", 4, 2, 4, n_points=300, seed=1, name="scan")
    folder = save_stack(series.stack, tmp_path / "scan", format="xy")
    labels = tmp_path / "labels.csv"
    labels.write_text("dataset,index,label\nscan,0,before\nscan,9,after\n")
    model = Encoder.random(seed=1).save(tmp_path / "model.safetensors")
    files = sorted(p.name for p in folder.iterdir())
    assert main(classify_argv(folder, labels, model, folder / "pred.xy")) == 2
    assert "would become part of the input series" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == files


def test_pretrain_refuses_an_existing_model_before_training(run, tmp_path, capsys):
    data, _, model = run
    before = checksum(model)
    assert main(["pretrain", str(data), "--out", str(model), "--epochs", "1"]) == 2
    assert "exists and is kept; give --overwrite" in capsys.readouterr().err
    assert checksum(model) == before
    assert main(["pretrain", str(data), "--out", str(data), "--overwrite"]) == 2
    assert "is one of the inputs (a series, the labels or the model)" in capsys.readouterr().err


def test_simulate_keeps_existing_files_unless_asked(tmp_path, capsys):
    out = tmp_path / "suite"
    out.mkdir()
    (out / "labels.csv").write_text("mine\n")
    argv = ["simulate", str(out), "--format", "npz", "--points", "200"]
    assert main(argv) == 2
    assert "labels.csv exists and is kept; give --overwrite" in capsys.readouterr().err
    assert (out / "labels.csv").read_text() == "mine\n" and not (out / "D1.npz").exists()
    assert main([*argv, "--overwrite"]) == 0
    assert (out / "D1.npz").exists() and (out / "labels.csv").read_text() != "mine\n"


def test_demo_keeps_an_existing_screenshot_without_starting_napari(tmp_path, capsys):
    shot = tmp_path / "shot.png"
    shot.write_bytes(b"my picture")
    assert main(["demo", "--screenshot", str(shot)]) == 2
    assert "shot.png exists and is kept" in capsys.readouterr().err
    assert shot.read_bytes() == b"my picture"


def test_a_binary_labels_file_is_a_one_line_error(run, tmp_path, capsys):
    data, _, model = run
    binary = tmp_path / "labels.bin"
    rng = np.random.default_rng(0)
    # a long first "line" with no newline trips csv's field limit in a naive reader
    binary.write_bytes(b"\x89PNG" + bytes(rng.integers(1, 255, 300_000, dtype=np.uint8)))
    assert main(classify_argv(data, binary, model, tmp_path / "p.csv")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"xrdphase: error: {binary}: ")
    assert len(err[0]) < 400
    assert main(classify_argv(data, model, model, tmp_path / "p.csv")) == 2
    assert "not a labels CSV (binary data)" in capsys.readouterr().err


def test_every_option_of_every_command_says_what_it_does_and_its_default():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) >= {"info", "simulate", "pretrain", "classify", "watch", "demo"}
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            where = f"{name} {action.option_strings or action.dest}"
            assert action.help, f"{where} has no help"
            has_default = action.default not in (None, False) and action.option_strings
            if has_default and not action.required:
                assert "default" in action.help, f"{where} does not say its default"
    labels_help = commands.choices["classify"]._option_string_actions["--labels"].help
    assert "xrdphase info" in labels_help and "dataset" in labels_help


def test_info_and_classify_warn_once_about_curves_repeated_exactly(run, tmp_path, capsys):
    from napari_xrdphase.stack import SpectraStack

    _, labels, model = run
    series = simulate_series("Fe", 8, 4, 12, n_points=600, seed=3, name="run")
    curves = series.stack.curves().copy()
    curves[[1, 11]] = curves[[0, 10]]  # frames written twice
    data = save_stack(
        SpectraStack(curves, series.stack.axis, variable=series.stack.variable, name="run"),
        tmp_path / "twice" / "run.npz",
    )
    assert main(["info", str(data)]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "repeat" in line]
    assert warned == [
        "xrdphase: warning: run: 2 of 24 curves repeat an earlier curve exactly (curve 1 = 0, "
        "11 = 10); the file may hold some frames twice, so check the acquisition"
    ]
    assert main(classify_argv(data, labels, model, tmp_path / "p.csv")) == 0
    assert (
        sum("repeat an earlier curve" in line for line in capsys.readouterr().err.splitlines()) == 1
    )
    assert main(["info", str(run[0])]) == 0
    assert "repeat" not in capsys.readouterr().err
