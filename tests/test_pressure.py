"""Pressure from the calibrant's own lines: accuracy, overlaps, refusals, the CLI."""

import csv

import numpy as np
import pytest

from napari_xrdphase.cli import main
from napari_xrdphase.io import save_stack, write_labels_csv
from napari_xrdphase.phases import get_phase
from napari_xrdphase.pressure import (
    PressureError,
    PressureTrack,
    fit_pressure,
    with_fitted_pressure,
)
from napari_xrdphase.stack import SpectraStack
from napari_xrdphase.synth import simulate_series


def series(marker, seed, n=(8, 4, 12), points=2000, **kwargs):
    """A simulated Fe compression series (to ≈ 25–40 GPa) with a marker."""
    return simulate_series("Fe", *n, marker=marker, n_points=points, seed=seed, **kwargs).stack


def synthetic(pressures, marker="Pt", extra=(), drop=(), wavelength=0.4133, seed=0, widths=None):
    """Gaussian lines of ``marker`` at ``pressures`` plus ``extra`` 2θ lines, Poisson noise.

    ``widths`` (per curve, Gaussian σ in degrees; default 0.015) broadens the marker's lines.
    """
    axis = np.linspace(6.0, 22.0, 3200)
    rng = np.random.default_rng(seed)
    phase = get_phase(marker)
    curves = []
    for k, pressure in enumerate(pressures):
        rate = np.full(axis.shape, 200.0)
        w = 0.015 if widths is None else widths[k]
        for line in phase.reflections(pressure, wavelength=wavelength):
            if line.hkl in drop:
                continue
            rate += (
                50 * line.intensity * 0.015 / w * np.exp(-0.5 * ((axis - line.two_theta) / w) ** 2)
            )
        for position, height in extra[k] if extra else ():
            rate += height * np.exp(-0.5 * ((axis - position) / 0.015) ** 2)
        curves.append(rng.poisson(rate))
    return SpectraStack(
        np.array(curves, dtype=np.float32), axis, wavelength=wavelength, name="synthetic"
    )


@pytest.mark.parametrize(("marker", "seed"), [("Pt", 1), ("Au", 2)])
def test_fitted_pressure_follows_the_simulated_truth_and_sigma_covers_it(marker, seed):
    stack = series(marker, seed)
    fit = fit_pressure(stack, marker)
    error = fit.pressure - stack.variable
    assert not fit.failed.any()
    assert np.median(np.abs(error)) < 0.3 and np.max(np.abs(error)) < 1.0
    assert np.mean(np.abs(error) <= 2 * fit.sigma) >= 0.8
    assert fit.zero_shift == pytest.approx(stack.metadata["zero_shift_deg"], abs=0.003)
    assert all("111" in used for used in fit.lines_used)


@pytest.mark.parametrize("marker", ["Pt", "Au"])
def test_feo_lines_that_mimic_the_marker_at_another_pressure_do_not_capture_the_tracking(marker):
    # FeO (200) is where Pt/Au (111) would be at ≈ 70/105 GPa: a strong single coincidence
    stack = simulate_series("FeO", 8, 4, 12, marker=marker, n_points=2000, seed=1).stack
    fit = fit_pressure(stack, marker)
    assert not fit.failed.any()
    assert np.max(np.abs(fit.pressure - stack.variable)) < 1.0


def test_a_strong_foreign_line_on_one_predicted_place_does_not_pull_the_pressure_off():
    pressures = np.linspace(3.0, 12.0, 6)
    pt = get_phase("Pt")
    # a line 20× the marker's where Pt (111) would be 60 GPa higher, moving with it
    extra = [[(pt.reflections(p + 60.0, wavelength=0.4133)[0].two_theta, 1e5)] for p in pressures]
    fit = fit_pressure(synthetic(pressures, extra=extra), "Pt", fit_zero_shift=False)
    np.testing.assert_allclose(fit.pressure, pressures, atol=0.3)


def test_the_tracking_follows_a_pressure_jump_of_tens_of_gpa():
    pressures = np.array([5.0, 5.5, 6.0, 6.5, 35.0, 35.5, 36.0, 36.5])
    fit = fit_pressure(synthetic(pressures), "Pt")
    np.testing.assert_allclose(fit.pressure, pressures, atol=0.3)


def test_lines_that_broaden_with_pressure_are_kept():
    pressures = np.linspace(2.0, 60.0, 12)
    widths = np.linspace(0.012, 0.036, 12)  # threefold broadening (strain) along the series
    fit = fit_pressure(synthetic(pressures, widths=widths), "Pt")
    assert not fit.failed.any()
    np.testing.assert_allclose(fit.pressure, pressures, atol=0.3)


def test_a_sample_line_on_a_marker_line_is_skipped_and_the_pressure_stays_right():
    pressures = np.linspace(2.0, 30.0, 8)
    pt = get_phase("Pt")
    # a strong foreign line 0.02° beside Pt (200) in every curve: a shoulder, not one peak
    extra = [
        [(pt.reflections(p, wavelength=0.4133)[1].two_theta + 0.02, 6000.0)] for p in pressures
    ]
    fit = fit_pressure(synthetic(pressures, extra=extra), "Pt", fit_zero_shift=False)
    assert all("200" not in used and "111" in used for used in fit.lines_used)
    np.testing.assert_allclose(fit.pressure, pressures, atol=0.3)


def test_a_missing_line_leaves_the_others_to_give_the_pressure():
    pressures = np.linspace(5.0, 50.0, 6)
    fit = fit_pressure(synthetic(pressures, drop={(2, 2, 0)}), "Pt")
    assert all("220" not in used and len(used) >= 2 for used in fit.lines_used)
    np.testing.assert_allclose(fit.pressure, pressures, atol=0.3)


def test_curves_without_the_calibrant_are_marked_failed_not_given_a_value():
    pressures = np.linspace(5.0, 20.0, 5)
    stack = synthetic(pressures)
    blank = stack.curves().copy()
    blank[2] = np.random.default_rng(3).poisson(200.0, blank.shape[1])
    fit = fit_pressure(stack.replace(intensities=blank), "Pt")
    assert np.isnan(fit.pressure[2]) and np.isnan(fit.sigma[2])
    assert fit.reason[2].startswith("no usable Pt line") and fit.lines_used[2] == ()
    assert np.all(np.isfinite(np.delete(fit.pressure, 2)))
    assert "1 of 5 curves failed" in fit.summary()
    with pytest.raises(PressureError, match="1 of 5 curves have no pressure from Pt: curve 2"):
        with_fitted_pressure(stack.replace(intensities=blank), "Pt")


def test_a_two_theta_axis_without_wavelength_is_refused_in_one_line():
    stack = synthetic([5.0, 6.0]).replace(wavelength=None)
    with pytest.raises(PressureError, match="needs the X-ray wavelength") as info:
        fit_pressure(stack, "Pt")
    assert "\n" not in str(info.value)


def test_a_q_axis_needs_no_wavelength():
    stack = synthetic([10.0, 12.0, 14.0]).with_axis("q")
    fit = fit_pressure(stack.replace(wavelength=None), "Pt")
    np.testing.assert_allclose(fit.pressure, [10.0, 12.0, 14.0], atol=0.3)


def test_unknown_calibrant_lists_the_known_ones():
    with pytest.raises(PressureError, match="unknown calibrant 'Pd'; known: Au, Pt, Cu"):
        fit_pressure(synthetic([5.0, 6.0]), "Pd")


def test_a_calibrant_with_no_line_in_range_says_so():
    stack = synthetic([5.0, 6.0])
    narrow = stack.replace(intensities=stack.curves()[:, :200], axis=stack.axis[:200])
    with pytest.raises(PressureError, match="no line of Pt falls inside the curves' range"):
        fit_pressure(narrow, "Pt")


def test_fitted_pressure_becomes_the_variable_and_the_own_one_is_kept():
    stack = synthetic(np.linspace(3.0, 40.0, 6))
    fitted = with_fitted_pressure(stack, "Pt", "Holmes1989")
    assert (fitted.variable_name, fitted.variable_unit) == ("pressure", "GPa")
    assert fitted.metadata["own_variable"]["name"] == "index"
    assert fitted.metadata["pressure_calibrant"] == "Pt (Holmes1989)"
    assert np.all(np.diff(fitted.variable) > 0)


def test_cli_writes_the_pressure_csv_and_refuses_to_overwrite(tmp_path, capsys):
    path = save_stack(synthetic(np.linspace(3.0, 30.0, 5)), tmp_path / "run.h5")
    out = tmp_path / "pressure.csv"
    assert main(["pressure", str(path), "--calibrant", "pt", "--out", str(out)]) == 0
    assert "0 of 5 curves failed" in capsys.readouterr().out
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["dataset", "index", "pressure_gpa", "pressure_sigma_gpa", "lines_used"]
    assert [r["index"] for r in rows] == ["0", "1", "2", "3", "4"]
    np.testing.assert_allclose(
        [float(r["pressure_gpa"]) for r in rows], np.linspace(3, 30, 5), atol=0.3
    )
    assert rows[0]["lines_used"].startswith("111 200")
    assert main(["pressure", str(path), "--calibrant", "Pt", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_classify_with_pressure_from_gives_boundaries_in_gpa(tmp_path, capsys):
    stack = simulate_series("Fe", 10, 0, 10, n_points=1500, marker="Pt", seed=4).stack
    indexed = stack.replace(variable=None, variable_name="index", variable_unit="")
    path = save_stack(indexed.replace(variable=np.arange(20.0)), tmp_path / "fe.h5")
    labels = write_labels_csv(
        tmp_path / "labels.csv", {"fe": {0: "before", 1: "before", 18: "after", 19: "after"}}
    )
    out = tmp_path / "pred.csv"
    argv = ["classify", str(path), "--labels", str(labels), "--out", str(out)]
    assert main([*argv, "--pressure-from", "Pt"]) == 0
    captured = capsys.readouterr()
    assert "fe: pressure from Pt (Fei2007)" in captured.err
    assert "GPa" in captured.out
    with open(out, newline="") as fh:
        header = next(csv.reader(fh))
    assert "pressure" in header


def test_classify_with_pressure_from_keeps_the_own_variable_as_a_column(tmp_path):
    stack = simulate_series("Fe", 10, 0, 10, n_points=1500, marker="Pt", seed=4).stack
    membrane = np.linspace(5.0, 60.0, 20)  # the series' own variable: membrane pressure (bar)
    own = stack.replace(variable=membrane, variable_name="membrane", variable_unit="bar")
    path = save_stack(own, tmp_path / "fe.h5")
    labels = write_labels_csv(
        tmp_path / "labels.csv", {"fe": {0: "before", 1: "before", 18: "after", 19: "after"}}
    )
    out = tmp_path / "pred.csv"
    argv = ["classify", str(path), "--labels", str(labels), "--out", str(out)]
    assert main([*argv, "--pressure-from", "Pt"]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[3] == "pressure" and list(rows[0])[-2:] == ["membrane", "novelty"]
    np.testing.assert_allclose([float(r["membrane"]) for r in rows], membrane, rtol=1e-5)
    np.testing.assert_allclose([float(r["pressure"]) for r in rows], stack.variable, atol=0.3)


def test_an_own_variable_named_like_a_column_gets_the_variable_suffix():
    from napari_xrdphase.io.predictions_csv import predictions_header

    header = predictions_header("pressure", ["before", "after"], extra=["Pressure", "label"])
    assert header[-2:] == ["Pressure_variable", "label_variable"]
    assert len({h.casefold() for h in header}) == len(header)


def test_pretrain_with_pressure_from_runs_on_the_fitted_pressure(tmp_path, capsys):
    paths = []
    for seed in (4, 5):
        stack = simulate_series("Fe", 6, 2, 8, n_points=800, marker="Pt", seed=seed).stack
        indexed = stack.replace(variable=np.arange(16.0), variable_name="index", variable_unit="")
        paths.append(str(save_stack(indexed, tmp_path / f"fe{seed}.h5")))
    model = tmp_path / "enc.safetensors"
    argv = ["pretrain", *paths, "--out", str(model), "--epochs", "1", "--batch-size", "16"]
    assert main([*argv, "--device", "cpu", "--pressure-from", "Pt"]) == 0
    err = capsys.readouterr().err
    assert "fe4: pressure from Pt (Fei2007)" in err and "fe5: pressure from Pt" in err
    assert model.is_file()


@pytest.mark.parametrize(("marker", "seed"), [("Pt", 1), ("Au", 2)])
def test_curves_fitted_as_they_arrive_agree_with_the_fit_of_the_finished_series(marker, seed):
    stack = series(marker, seed)
    whole = fit_pressure(stack, marker)
    track = PressureTrack(marker)
    first = track.begin(stack.subset(slice(0, 6)))
    arrived = [track.extend(stack.curves()[i : i + 1]) for i in range(6, stack.n_curves)]
    pressure = np.concatenate([first.pressure, *(f.pressure for f in arrived)])
    sigma = np.concatenate([first.sigma, *(f.sigma for f in arrived)])
    np.testing.assert_array_equal(track.pressures, pressure)
    assert np.all(np.isfinite(pressure))
    # the same story: within the larger σ of the two fits, and as close to the simulated truth
    assert np.all(np.abs(pressure - whole.pressure) <= 1.5 * np.maximum(sigma, whole.sigma))
    assert np.median(np.abs(pressure - stack.variable)) < 0.3
    assert np.max(np.abs(pressure - stack.variable)) < 1.0
    assert all("111" in f.lines_used[0] for f in arrived)


def test_the_track_carries_a_curve_without_the_calibrant_and_a_jump_after_it():
    pressures = np.array([5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 30.0, 30.5])
    stack = synthetic(pressures)
    curves = stack.curves().copy()
    curves[5] = np.random.default_rng(3).poisson(200.0, curves.shape[1])  # no Pt lines
    track = PressureTrack("Pt")
    track.begin(stack.subset(slice(0, 3)))
    fits = [track.extend(curves[i : i + 1]) for i in range(3, 8)]
    assert np.isnan(fits[2].pressure[0]) and fits[2].reason[0].startswith("no usable Pt line")
    assert fits[2].lines_used == [()]
    got = np.array([f.pressure[0] for f in fits])
    np.testing.assert_allclose(np.delete(got, 2), np.delete(pressures[3:], 2), atol=0.3)


def test_the_track_starts_from_the_pressure_it_is_given():
    # two full sets of Pt lines, 40 GPa apart: the lines alone cannot tell which is the marker
    pressures = np.array([20.0, 20.5, 21.0])
    pt = get_phase("Pt")
    extra = [
        [(r.two_theta, 50 * r.intensity) for r in pt.reflections(p + 40.0, wavelength=0.4133)]
        for p in pressures
    ]
    stack = synthetic(pressures, extra=extra)
    for start, expected in ((19.5, pressures), (59.5, pressures + 40.0)):
        fit = fit_pressure(stack, "Pt", start=start, fit_zero_shift=False)
        np.testing.assert_allclose(fit.pressure, expected, atol=0.3)


def test_a_track_refuses_an_unknown_calibrant_at_once():
    with pytest.raises(PressureError, match="unknown calibrant 'Pd'; known: Au, Pt"):
        PressureTrack("Pd")


def test_rhenium_a_and_c_are_refined_apart_on_a_simulated_re_marker_series():
    stack = simulate_series("Fe", 8, 4, 12, marker="Re", n_points=2000, seed=1).stack
    fit = fit_pressure(stack, "Re")
    assert not fit.failed.any()
    assert np.median(np.abs(fit.pressure - stack.variable)) < 0.3
    assert np.mean(np.abs(fit.pressure - stack.variable) <= 2 * fit.sigma) > 0.9
    # the simulator keeps the ambient c/a: the free fit finds it
    np.testing.assert_allclose(fit.lattice_c / fit.lattice, 1.6145, atol=0.003)


def test_rhenium_with_another_c_over_a_gives_its_a_c_and_volume():
    wavelength, ratio = 0.4133, 1.6145 * 0.99  # c/a 1 % under the ambient one
    phase = get_phase("Re")
    axis = np.linspace(6.0, 22.0, 3200)
    rng = np.random.default_rng(0)
    pressures = np.linspace(5.0, 40.0, 6)
    curves, truth_a = [], []
    for pressure in pressures:
        volume = phase.volume(pressure)
        a = (volume / (np.sqrt(3) / 2 * ratio)) ** (1 / 3)
        truth_a.append(a)
        rate = np.full(axis.shape, 200.0)
        for line in phase.reflections(pressure, wavelength=wavelength):
            h, k, l_ = line.hkl
            d = 1 / np.sqrt(4 / 3 * (h * h + h * k + k * k) / a**2 + l_ * l_ / (ratio * a) ** 2)
            two_theta = np.degrees(2 * np.arcsin(wavelength / (2 * d)))
            rate += 50 * line.intensity * np.exp(-0.5 * ((axis - two_theta) / 0.015) ** 2)
        curves.append(rng.poisson(rate))
    stack = SpectraStack(
        np.array(curves, dtype=np.float32), axis, wavelength=wavelength, name="re",
        variable=pressures, variable_unit="GPa",
    )  # fmt: skip
    fit = fit_pressure(stack, "Re")
    assert abs(fit.zero_shift) < 2e-3  # not taken for a cell that keeps its shape
    np.testing.assert_allclose(fit.lattice, truth_a, rtol=3e-4)
    np.testing.assert_allclose(fit.lattice_c / fit.lattice, ratio, rtol=5e-4)
    # the volume, and so the pressure, is that of the distorted cell
    np.testing.assert_allclose(fit.pressure, pressures, atol=0.3)


# --- bad input on the command line: one line each ----------------------------------------------


def error_line(capsys):
    """The one error line the command printed (after any progress lines)."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error" in line]
    assert len(errors) == 1 and err[-1] == errors[0]
    return errors[0]


@pytest.fixture
def pt_run(tmp_path):
    """A Pt series saved as .xy curves with the wavelength in their headers, and labels."""
    path = save_stack(synthetic(np.linspace(3.0, 30.0, 6)).replace(name="run"), tmp_path / "run")
    labels = write_labels_csv(tmp_path / "labels.csv", {"run": {0: "low", 5: "high"}})
    return path, labels


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("old.jcpds", "VERSION: 3\nCOMMENT: old\n", "line 1: JCPDS version '3'"),
        ("bad.cif", "data_x\n_cell_length_a 4\n'unterminated\n", "line 3"),
    ],
)
def test_an_unreadable_calibrant_file_is_one_line_naming_the_file_and_line(
    pt_run, tmp_path, capsys, name, text, expected
):
    path, labels = pt_run
    phase_file = tmp_path / name
    phase_file.write_text(text)
    out = tmp_path / "out.csv"
    for argv in (
        ["pressure", str(path), "--calibrant", str(phase_file)],
        ["classify", str(path), "--labels", str(labels), "--pressure-from", str(phase_file)],
        ["classify", str(path), "--labels", str(labels), "--ignore-phases", str(phase_file)],
    ):
        assert main([*argv, "--out", str(out)]) == 2
        line = error_line(capsys)
        assert line.startswith(f"xrdphase: error: {phase_file}") and expected in line
        assert "unknown" not in line and not out.exists()


def test_the_command_line_refuses_a_missing_wavelength_in_one_line(pt_run, tmp_path, capsys):
    path, labels = pt_run
    for xy in path.glob("*.xy"):  # the same curves, without the wavelength in their headers
        xy.write_text("".join(x for x in xy.read_text().splitlines(True) if "Wavelength" not in x))
    out = tmp_path / "out.csv"
    for argv in (
        ["pressure", str(path), "--calibrant", "Pt"],
        ["classify", str(path), "--labels", str(labels), "--pressure-from", "Pt"],
        ["watch", str(path), "--labels", str(labels), "--pressure-from", "Pt"],
    ):
        assert main([*argv, "--out", str(out)]) == 2
        line = error_line(capsys)
        assert "needs the X-ray wavelength for a 2θ axis; give --wavelength" in line
    assert main(["pressure", str(path), "--calibrant", "Pt", "--out", str(out),
                 "--wavelength", "0.4133"]) == 0  # fmt: skip


def test_the_command_line_names_the_known_calibrants_and_an_empty_range(pt_run, tmp_path, capsys):
    path, labels = pt_run
    out = tmp_path / "out.csv"
    for argv in (
        ["pressure", str(path), "--calibrant", "Pd"],
        ["watch", str(path), "--labels", str(labels), "--pressure-from", "Pd"],
        ["segment", str(path), "--pressure-from", "Pd"],
    ):
        assert main([*argv, "--out", str(out)]) == 2
        assert "unknown calibrant 'Pd'; known: Au, Pt, Cu" in error_line(capsys)
    # 6.0–7.0°: below Pt (111) at every pressure up to 150 GPa
    stack = synthetic([5.0, 6.0])
    narrow = save_stack(
        stack.replace(intensities=stack.curves()[:, :200], axis=stack.axis[:200], name="narrow"),
        tmp_path / "narrow.h5",
    )
    assert main(["pressure", str(narrow), "--calibrant", "Pt", "--out", str(out)]) == 2
    line = error_line(capsys)
    assert line.startswith("xrdphase: error: narrow: no line of Pt falls inside the curves' range")
