"""Pressure from the calibrant's own lines: accuracy, overlaps, refusals, the CLI."""

import csv

import numpy as np
import pytest

from napari_xrdphase.cli import main
from napari_xrdphase.io import save_stack, write_labels_csv
from napari_xrdphase.phases import get_phase
from napari_xrdphase.pressure import PressureError, fit_pressure, with_fitted_pressure
from napari_xrdphase.stack import SpectraStack
from napari_xrdphase.synth import simulate_series


def series(marker, seed, n=(8, 4, 12), points=2000, **kwargs):
    """A simulated Fe compression series (to ≈ 25–40 GPa) with a marker."""
    return simulate_series("Fe", *n, marker=marker, n_points=points, seed=seed, **kwargs).stack


def synthetic(pressures, marker="Pt", extra=(), drop=(), wavelength=0.4133, seed=0):
    """Gaussian lines of ``marker`` at ``pressures`` plus ``extra`` 2θ lines, Poisson noise."""
    axis = np.linspace(6.0, 22.0, 3200)
    rng = np.random.default_rng(seed)
    phase = get_phase(marker)
    curves = []
    for k, pressure in enumerate(pressures):
        rate = np.full(axis.shape, 200.0)
        for line in phase.reflections(pressure, wavelength=wavelength):
            if line.hkl in drop:
                continue
            rate += 50 * line.intensity * np.exp(-0.5 * ((axis - line.two_theta) / 0.015) ** 2)
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
