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


def write_pressure_folder(folder, pressures):
    """A folder of curves whose metadata.csv holds ``pressures`` and a temperature column."""
    folder.mkdir()
    axis = np.linspace(5.0, 25.0, 40)
    rows = []
    for i, pressure in enumerate(pressures):
        lines = "".join(f"{x:.6f} {100 + i + np.sin(x):.6f}\n" for x in axis)
        (folder / f"scan_{i}.xy").write_text("# 2th_deg I\n" + lines)
        rows.append(f"scan_{i}.xy,{pressure},{300 + 10 * i}\n")
    (folder / "metadata.csv").write_text("file,pressure_GPa,temperature_K\n" + "".join(rows))
    return folder


def test_info_variable_option_names_a_column_or_the_acquisition_index(tmp_path, capsys):
    folder = write_pressure_folder(tmp_path / "run", ["1.5", "2.5", "4"])
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "  pressure: 1.5 – 4 GPa\n" in out
    assert "wavelength: none stated (2θ needs one for q: give --wavelength Å)" in out
    assert main(["info", str(folder), "--wavelength", "0.29"]) == 0
    assert "  wavelength: 0.29 Å\n" in capsys.readouterr().out
    # a wavelength in metres or nm instead of Å is named as the mistake it is
    for given, hint in [("2.9e-11", "in metres that is 0.29 Å"), ("0.029", "in nm that is 0.29 Å")]:
        assert main(["info", str(folder), "--wavelength", given]) == 2
        err = capsys.readouterr().err
        assert "X-ray diffraction uses 0.05–5 Å" in err and hint in err
    assert main(["info", str(folder), "--variable", "temperature_K"]) == 0
    assert "  temperature: 300 – 320 K\n" in capsys.readouterr().out
    assert main(["info", str(folder), "--variable", "index"]) == 0
    assert "  index:    0 – 2\n" in capsys.readouterr().out


def test_variable_index_reads_a_folder_whose_pressure_cannot_be_read(tmp_path, capsys):
    folder = write_pressure_folder(tmp_path / "run", ["1.5", "~2", "4"])
    result = run_cli("info", str(folder))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "xrdphase: error:" in result.stderr and "--variable index" in result.stderr
    assert main(["info", str(folder), "--variable", "index"]) == 0
    assert "  index:    0 – 2\n" in capsys.readouterr().out


def test_variable_naming_no_column_is_a_clear_error_without_traceback(tmp_path):
    folder = write_pressure_folder(tmp_path / "run", ["1.5", "2.5"])
    result = run_cli("info", str(folder), "--variable", "volume")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "xrdphase: error:" in result.stderr and "no column 'volume'" in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["info", "run"],
        ["pretrain", "run", "--out", "enc.safetensors"],
        ["classify", "run", "--labels", "labels.csv", "--out", "pred.csv"],
        ["watch", "run", "--labels", "labels.csv", "--out", "pred.csv"],
    ],
)
def test_every_command_that_loads_series_takes_variable(argv):
    from napari_xrdphase.cli import build_parser

    assert build_parser().parse_args([*argv, "--variable", "index"]).variable == "index"
    assert build_parser().parse_args(argv).variable is None


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


@pytest.fixture(scope="module")
def small_suite(tmp_path_factory):
    """Three simulated series as .npz files plus their ground-truth labels."""
    from napari_xrdphase.io import save_stack
    from napari_xrdphase.synth import simulate_series

    folder = tmp_path_factory.mktemp("suite")
    truth = {}
    for name, material, seed, decompression in [
        ("fe_a", "Fe", 1, False),
        ("fe_b", "Fe", 2, True),
        ("feo", "FeO", 3, False),
    ]:
        series = simulate_series(
            material, 12, 6, 14, n_points=900, seed=seed, name=name, decompression=decompression
        )
        save_stack(series.stack, folder / f"{name}.npz")
        truth[name] = series.labels
    return folder, truth


def write_labels(path, rows):
    path.write_text("dataset,index,label\n" + "".join(f"{d},{i},{lab}\n" for d, i, lab in rows))
    return path


def test_pretrain_then_classify_end_to_end(small_suite, tmp_path):
    folder, truth = small_suite
    paths = [str(folder / f"{n}.npz") for n in ("fe_a", "fe_b", "feo")]
    model = tmp_path / "enc.safetensors"
    result = run_cli(
        "pretrain",
        *paths,
        "--out",
        str(model),
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--method",
        "specrr",
        "--device",
        "cpu",
        "--seed",
        "3",
    )
    assert result.returncode == 0, result.stderr
    assert "pretraining specrr on 96 curves from 3 series" in result.stderr
    assert "epoch 1/1" in result.stderr and model.is_file()
    assert "training check: did not learn" in result.stderr
    assert "xrdphase: warning: Only 96 curves" in result.stderr

    rows_labelled = [(d, i, str(truth[d][i])) for d in ("fe_a", "feo") for i in range(0, 32, 3)]
    labels = write_labels(tmp_path / "labels.csv", rows_labelled)
    out = tmp_path / "pred.csv"
    result = run_cli(
        "classify", *paths, "--labels", str(labels), "--out", str(out), "--model", str(model)
    )
    assert result.returncode == 0, result.stderr
    # one epoch of 3 steps cannot leave chance: loading the model says so, once
    assert result.stderr.count("warning: ") == 1, result.stderr
    assert f"{model}: The pretraining learned nothing" in result.stderr
    with open(out, newline="") as handle:
        pred = list(csv.DictReader(handle))
    assert list(pred[0]) == [
        "dataset",
        "index",
        "source",
        "pressure",
        "label",
        "skipped",
        "p_before",
        "p_during",
        "p_after",
        "novelty",
    ]
    assert len(pred) == 96
    assert all(float(r["novelty"]) >= 0 for r in pred)
    assert pred[0]["source"] == "fe_a[0]"  # the names the simulated .npz records
    assert not any(r["skipped"] for r in pred)
    assert {r["dataset"] for r in pred} == {"fe_a", "fe_b", "feo"}
    order = ("before", "during", "after")
    assert f"phases in order of rising pressure: {' → '.join(order)}" in result.stderr
    for row in pred:
        probabilities = [float(row[f"p_{c}"]) for c in order]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    for name in ("fe_a", "fe_b", "feo"):
        assert f"{name}:" in result.stdout
        rows = [r for r in pred if r["dataset"] == name]
        ranks = [order.index(r["label"]) for r in rows]
        # the phases never step back: rising on compression, falling on fe_b's decompression
        assert ranks == sorted(ranks, reverse=name == "fe_b")
    labelled = {(d, i): lab for d, i, lab in rows_labelled}
    assert all(r["label"] == labelled[r["dataset"], int(r["index"])]
               for r in pred if (r["dataset"], int(r["index"])) in labelled)  # fmt: skip

    result = run_cli(
        "classify", *paths, "--labels", str(labels), "--out", str(out), "--model", str(model),
        "--unordered", "--overwrite",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "phases: each curve classified on its own" in result.stderr
    with open(out, newline="") as handle:
        for row in csv.DictReader(handle):
            probabilities = [float(row[f"p_{c}"]) for c in order]
            assert row["label"] == order[int(np.argmax(probabilities))]


def classify_fe_a(folder, labels, out, model):
    """Run ``xrdphase classify`` on the small suite's fe_a with ``labels`` and ``model``."""
    paths = (str(folder / "fe_a.npz"), "--labels", str(labels), "--out", str(out))
    return run_cli("classify", *paths, "--model", str(model))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("nosuch", 0, "before"), ("fe_a", 1, "after")], "nosuch"),
        ([("fe_a", 0, "before"), ("fe_a", 99, "after")], "99"),
        ([("fe_a", 0, "before"), ("fe_a", 1, "before")], "class"),
    ],
)
def test_classify_rejects_bad_labels_clearly(small_suite, tmp_path, rows, message):
    folder, _ = small_suite
    labels = write_labels(tmp_path / "labels.csv", rows)
    model = tmp_path / "random.safetensors"
    from napari_xrdphase.encoder import Encoder

    Encoder.random(seed=1).save(model)
    result = classify_fe_a(folder, labels, tmp_path / "p.csv", model)
    assert result.returncode == 2
    assert "xrdphase: error:" in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "p.csv").exists()


def test_classify_with_a_corrupt_model_is_a_clear_error(small_suite, tmp_path):
    folder, _ = small_suite
    labels = write_labels(tmp_path / "l.csv", [("fe_a", 0, "before"), ("fe_a", 30, "after")])
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00not a model at all")
    result = classify_fe_a(folder, labels, tmp_path / "p.csv", bad)
    assert result.returncode == 2 and "bad.safetensors" in result.stderr
    assert "Traceback" not in result.stderr


def test_classify_without_a_model_uses_the_builtin_encoder(small_suite, tmp_path):
    folder, truth = small_suite
    rows = [(d, i, str(truth[d][i])) for d in ("fe_a", "feo") for i in range(0, 32, 4)]
    labels = write_labels(tmp_path / "labels.csv", rows)
    out = tmp_path / "pred.csv"
    paths = [str(folder / f"{n}.npz") for n in ("fe_a", "feo")]
    result = run_cli("classify", *paths, "--labels", str(labels), "--out", str(out))
    assert result.returncode == 0, result.stderr
    with open(out, newline="") as handle:
        predicted = {(r["dataset"], int(r["index"])): r["label"] for r in csv.DictReader(handle)}
    unlabelled = [(d, i) for d in ("fe_a", "feo") for i in range(32) if i % 4]
    accuracy = np.mean([predicted[k] == truth[k[0]][k[1]] for k in unlabelled])
    assert accuracy > 0.6  # chance is 1/3


def test_pretrain_q_range_narrows_the_window_the_model_reads(small_suite, tmp_path, capsys):
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.preprocess import common_window

    folder, _ = small_suite
    paths = [str(folder / f"{n}.npz") for n in ("fe_a", "feo")]
    lo, hi = common_window([load_stack(p) for p in paths])["axis_range"]
    inner = (lo + 0.25 * (hi - lo), hi - 0.25 * (hi - lo))
    model = tmp_path / "narrow.safetensors"
    args = ["pretrain", *paths, "--out", str(model), "--epochs", "1", "--batch-size", "32"]
    assert main([*args, "--device", "cpu", "--q-range", *map(str, inner)]) == 0
    window = Encoder.load(model).config["preprocessing"]["axis_range"]
    assert window == pytest.approx(list(inner), rel=1e-6)
    capsys.readouterr()
    args += ["--overwrite"]
    assert main([*args, "--device", "cpu", "--q-range", str(lo - 1.0), str(hi)]) == 2
    assert "is not inside the q range every series covers" in capsys.readouterr().err


def test_classify_strain_option_sets_the_strained_copies_and_rejects_bad_values(
    small_suite, tmp_path
):
    folder, _ = small_suite
    labels = write_labels(
        tmp_path / "labels.csv",
        [
            ("fe_a", 0, "before"),
            ("fe_a", 1, "before"),
            ("fe_a", 30, "after"),
            ("fe_a", 31, "after"),
        ],
    )
    model = tmp_path / "random.safetensors"
    from napari_xrdphase.encoder import Encoder

    Encoder.random(seed=1).save(model)
    paths = (str(folder / "fe_a.npz"), "--labels", str(labels), "--model", str(model))
    default = run_cli("classify", *paths, "--out", str(tmp_path / "a.csv"))
    assert default.returncode == 0, default.stderr
    assert "each labelled curve also learnt under 2 strains in ±1 %" in default.stderr
    off = run_cli("classify", *paths, "--out", str(tmp_path / "b.csv"), "--strain", "0")
    assert off.returncode == 0, off.stderr
    assert "strains" not in off.stderr
    bad = run_cli("classify", *paths, "--out", str(tmp_path / "c.csv"), "--strain", "-0.5")
    assert bad.returncode == 2
    assert "xrdphase: error: --strain must be a fraction in [0, 0.5), got -0.5" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert "features whitened against a 3 % uniform strain" in default.stderr
    plain = run_cli(
        "classify", *paths, "--out", str(tmp_path / "d.csv"), "--whitening-strain", "0"
    )  # fmt: skip
    assert plain.returncode == 0 and "whitened" not in plain.stderr, plain.stderr
    bad = run_cli("classify", *paths, "--out", str(tmp_path / "e.csv"), "--whitening-strain", "nan")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "error: --whitening-strain must be a fraction in [0, 0.5), got nan" in bad.stderr


def test_classify_warns_when_the_external_variable_is_constant(tmp_path, capsys):
    folder = write_pressure_folder(tmp_path / "run", ["5"] * 8)
    labels = write_labels(
        tmp_path / "labels.csv", [("run", 0, "before"), ("run", 1, "before"), ("run", 7, "after")]
    )
    from napari_xrdphase.encoder import Encoder

    model = Encoder.random(seed=1).save(tmp_path / "random.safetensors")
    argv = ["classify", str(folder), "--labels", str(labels), "--out", str(tmp_path / "p.csv")]
    assert main([*argv, "--model", str(model), "--wavelength", "0.4"]) == 0
    err = capsys.readouterr().err
    assert "warning: run: pressure is 5 GPa on every curve, so boundaries cannot be placed" in err
    argv += ["--overwrite"]
    assert main([*argv, "--model", str(model), "--wavelength", "0.4", "--variable", "index"]) == 0
    assert "on every curve" not in capsys.readouterr().err
