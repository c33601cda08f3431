"""The diffraction simulator: physics of the curves, labels, the paper suite, argument errors."""

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.signal import find_peaks

from napari_xrdphase.synth import CLASSES, PAPER_SUITE, paper_suite, simulate_series

WAVELENGTH = 12.398419843320026 / 25.6  # Å at 25.6 keV

# literature equations of state, written out independently of the simulator (V0 in Å³/cell)
BCC_FE = {"v0": 23.55, "k0": 166.0, "kp": 5.3}
HCP_FE = {"v0": 22.35, "k0": 165.3, "kp": 4.97}
HCP_C_OVER_A = 1.603
FEO = {"v0": 80.0, "k0": 180.0, "kp": 4.0}
PT_VINET = {"v0": 60.38, "k0": 277.0, "kp": 5.08}
NE_VINET = {"v0": 88.936, "k0": 1.070, "kp": 8.40}


def birch_murnaghan_volume(pressure, v0, k0, kp):
    def excess(v):
        f = (v0 / v) ** (2 / 3)
        return 1.5 * k0 * (f**3.5 - f**2.5) * (1 + 0.75 * (kp - 4) * (f - 1)) - pressure

    return brentq(excess, 0.3 * v0, 1.2 * v0, xtol=1e-12)


def vinet_volume(pressure, v0, k0, kp):
    def excess(v):
        y = (v / v0) ** (1 / 3)
        return 3 * k0 * (1 - y) / y**2 * math.exp(1.5 * (kp - 1) * (1 - y)) - pressure

    return brentq(excess, 0.2 * v0, 1.2 * v0, xtol=1e-12)


def two_theta(d):
    return math.degrees(2 * math.asin(WAVELENGTH / (2 * d)))


def bcc_110(pressure):
    a = birch_murnaghan_volume(pressure, **BCC_FE) ** (1 / 3)
    return two_theta(a / math.sqrt(2))


def bcc_200(pressure):
    a = birch_murnaghan_volume(pressure, **BCC_FE) ** (1 / 3)
    return two_theta(a / 2)


def hcp_101(pressure):
    volume = birch_murnaghan_volume(pressure, **HCP_FE)
    a = (2 * volume / (math.sqrt(3) * HCP_C_OVER_A)) ** (1 / 3)
    c = HCP_C_OVER_A * a
    return two_theta(1 / math.sqrt(4 / (3 * a * a) + 1 / (c * c)))


def feo_111(pressure):
    a = birch_murnaghan_volume(pressure, **FEO) ** (1 / 3)
    return two_theta(a / math.sqrt(3))


def peak_position(axis, curve, expected, half_width=0.25):
    """Maximum near ``expected``, refined by a parabola through the three highest points."""
    window = np.flatnonzero(np.abs(axis - expected) <= half_width)
    i = window[np.argmax(curve[window])]
    y0, y1, y2 = curve[i - 1 : i + 2].astype(np.float64)
    offset = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
    return axis[i] + offset * (axis[1] - axis[0])


def peak_contrast(axis, curve, center):
    """Mean counts within ±0.03° of ``center`` over the median of the 0.15–0.5° surroundings."""
    distance = np.abs(axis - center)
    top = curve[distance <= 0.03].mean()
    around = np.median(curve[(distance >= 0.15) & (distance <= 0.5)])
    return top / around


def test_bcc_110_peak_sits_where_the_birch_murnaghan_eos_puts_it():
    series = simulate_series("Fe", 10, 0, 2, exposure_s=50.0, seed=4)
    stack = series.stack
    shift = stack.metadata["zero_shift_deg"]
    for row in np.flatnonzero(series.labels == "before"):
        expected = bcc_110(stack.variable[row]) + shift
        observed = peak_position(stack.axis, stack.curves()[row], expected)
        assert observed == pytest.approx(expected, abs=0.01)


def test_peaks_move_to_higher_two_theta_as_pressure_rises():
    series = simulate_series("Fe", 12, 0, 2, exposure_s=20.0, seed=5)
    stack = series.stack
    before = np.flatnonzero(series.labels == "before")
    guess = [bcc_110(p) for p in stack.variable[before]]
    observed = np.array(
        [
            peak_position(stack.axis, stack.curves()[r], g)
            for r, g in zip(before, guess, strict=True)
        ]
    )
    assert np.all(np.diff(stack.variable[before]) > 0)
    assert np.corrcoef(stack.variable[before], observed)[0, 1] > 0.99
    assert observed[-1] - observed[0] > 0.15  # ≈ 0.03°/GPa over ≥ 8 GPa


def test_hcp_lines_are_absent_before_coexist_during_and_replace_bcc_after():
    series = simulate_series("Fe", 8, 6, 8, exposure_s=10.0, seed=6)
    stack, curves = series.stack, series.stack.curves()
    shift = stack.metadata["zero_shift_deg"]
    for row, (label, pressure) in enumerate(zip(series.labels, stack.variable, strict=True)):
        hcp = peak_contrast(stack.axis, curves[row], hcp_101(pressure) + shift)
        bcc = peak_contrast(stack.axis, curves[row], bcc_200(pressure) + shift)
        if label == "before":
            assert hcp < 1.05 and bcc > 2.0, (row, pressure)
        elif label == "during":  # both phases, the bcc share shrinking to a few per cent
            assert hcp > 1.1 and bcc > 1.1, (row, pressure)
        else:
            assert hcp > 2.0 and bcc < 1.05, (row, pressure)


def count_maxima(axis, curve, center, half_width=0.5):
    window = np.abs(axis - center) <= half_width
    smooth = np.convolve(curve[window].astype(np.float64), np.ones(5) / 5, mode="same")
    peaks, _ = find_peaks(smooth, prominence=0.04 * smooth.max())
    return len(peaks)


def test_feo_111_line_is_single_before_and_split_after():
    series = simulate_series("FeO", 6, 4, 12, exposure_s=20.0, seed=7)
    stack, curves = series.stack, series.stack.curves()
    centers = [feo_111(p) + stack.metadata["zero_shift_deg"] for p in stack.variable]
    for row in np.flatnonzero(series.labels == "before"):
        assert count_maxima(stack.axis, curves[row], centers[row]) == 1, row
    for row in np.flatnonzero(series.labels == "after")[-6:]:
        assert count_maxima(stack.axis, curves[row], centers[row]) == 2, row
    onset = stack.metadata["rhombohedral_onset_gpa"]
    assert 14.0 < onset < 17.5
    assert np.all(stack.variable[series.labels == "before"] < onset)
    assert np.all(stack.variable[series.labels != "before"] > onset)


def test_pt_calibrant_line_follows_its_own_equation_of_state():
    plain = simulate_series("Fe", 6, 0, 2, exposure_s=20.0, seed=8)
    with_pt = simulate_series("Fe", 6, 0, 2, exposure_s=20.0, calibrant=True, seed=8)
    stack = with_pt.stack
    shift = stack.metadata["zero_shift_deg"]
    for row, pressure in enumerate(stack.variable):
        a = vinet_volume(pressure, **PT_VINET) ** (1 / 3)
        expected = two_theta(a / math.sqrt(3)) + shift
        assert peak_position(stack.axis, stack.curves()[row], expected) == pytest.approx(
            expected, abs=0.01
        )
        assert peak_contrast(plain.stack.axis, plain.stack.curves()[row], expected) < 1.05


def test_neon_lines_appear_only_once_the_medium_has_frozen():
    series = simulate_series("Fe", 16, 0, 2, exposure_s=20.0, medium="Ne", seed=9)
    stack = series.stack
    before = series.labels == "before"
    contrast = []
    for row in np.flatnonzero(before):
        a = vinet_volume(stack.variable[row], **NE_VINET) ** (1 / 3)
        ne_200 = two_theta(a / 2) + stack.metadata["zero_shift_deg"]
        contrast.append(peak_contrast(stack.axis, stack.curves()[row], ne_200))
    contrast = np.array(contrast)
    liquid = stack.variable[before] < 4.7
    assert liquid.any() and (~liquid).any()
    assert np.all(contrast[liquid] < 1.03)
    assert np.median(contrast[~liquid]) > 1.08  # Ne (Z = 10) scatters weakly: small but present


def test_counts_scale_with_exposure_and_relative_noise_falls():
    short = (
        simulate_series("Fe", 4, 2, 4, exposure_s=0.1, seed=10).stack.curves().astype(np.float64)
    )
    long = (
        simulate_series("Fe", 4, 2, 4, exposure_s=10.0, seed=10).stack.curves().astype(np.float64)
    )
    assert long.sum() / short.sum() == pytest.approx(100.0, rel=0.02)

    def relative_noise(curves):
        second_difference = curves[:, :-2] - 2 * curves[:, 1:-1] + curves[:, 2:]
        return np.median(np.abs(second_difference)) / np.median(curves)

    assert relative_noise(short) > 5 * relative_noise(long)


def test_same_seed_gives_identical_series_and_another_seed_differs():
    a = simulate_series("FeO", 5, 3, 5, calibrant=True, medium="Ne", n_points=800, seed=11)
    b = simulate_series("FeO", 5, 3, 5, calibrant=True, medium="Ne", n_points=800, seed=11)
    c = simulate_series("FeO", 5, 3, 5, calibrant=True, medium="Ne", n_points=800, seed=12)
    assert np.array_equal(a.stack.curves(), b.stack.curves())
    assert np.array_equal(a.stack.variable, b.stack.variable)
    assert np.array_equal(a.labels, b.labels) and a.stack.metadata == b.stack.metadata
    assert not np.array_equal(a.stack.curves(), c.stack.curves())
    assert not np.array_equal(a.stack.variable, c.stack.variable)


def test_stack_describes_a_pressure_series_at_25_6_kev():
    series = simulate_series("Fe", 3, 2, 3, seed=13)
    stack = series.stack
    assert stack.n_points == 4000 and stack.n_curves == 8
    assert (stack.axis_kind, stack.axis_unit) == ("2theta", "deg")
    assert stack.axis[0] == pytest.approx(5.0) and stack.axis[-1] == pytest.approx(25.0)
    assert (stack.variable_name, stack.variable_unit) == ("pressure", "GPa")
    assert stack.wavelength == pytest.approx(12.398 / 25.6, rel=1e-4)
    assert stack.metadata["material"] == "Fe" and stack.metadata["seed"] == 13
    assert stack.curves().dtype == np.float32 and np.all(stack.curves() >= 0)
    assert np.all(np.floor(stack.curves()) == stack.curves())  # photon counts
    assert series.labels.dtype.kind == "U" and set(series.labels) <= set(CLASSES)


def test_two_theta_range_and_energy_set_the_axis():
    narrow = simulate_series("Fe", 2, 0, 2, two_theta_range=(10.0, 16.0), n_points=600, seed=14)
    assert narrow.stack.axis[0] == 10.0 and narrow.stack.axis[-1] == 16.0
    assert narrow.stack.n_points == 600
    # the default window covers the same d-spacings at another energy
    harder = simulate_series("Fe", 2, 0, 2, energy_kev=51.2, n_points=600, seed=14).stack
    d = harder.axis_as("d")
    assert d[0] == pytest.approx(WAVELENGTH / (2 * math.sin(math.radians(2.5))), rel=1e-6)
    assert d[-1] == pytest.approx(WAVELENGTH / (2 * math.sin(math.radians(12.5))), rel=1e-6)


def test_compression_labels_run_before_to_after_and_during_may_be_empty():
    series = simulate_series("Fe", 7, 0, 5, n_points=500, seed=15)
    assert series.labels.tolist() == ["before"] * 7 + ["after"] * 5
    assert np.all(np.diff(series.stack.variable) > 0)


def test_decompression_runs_from_high_to_low_pressure_starting_in_hcp():
    series = simulate_series("Fe", 5, 4, 7, decompression=True, exposure_s=10.0, seed=16)
    stack, curves = series.stack, series.stack.curves()
    assert np.all(np.diff(stack.variable) < 0)
    # labels name the state: hcp is "after" the transition whichever way the ramp runs
    assert series.labels.tolist() == ["after"] * 7 + ["during"] * 4 + ["before"] * 5
    shift = stack.metadata["zero_shift_deg"]
    first, last = stack.variable[0], stack.variable[-1]
    assert peak_contrast(stack.axis, curves[0], hcp_101(first) + shift) > 2.0
    assert peak_contrast(stack.axis, curves[0], bcc_200(first) + shift) < 1.05
    assert peak_contrast(stack.axis, curves[-1], bcc_200(last) + shift) > 2.0
    assert peak_contrast(stack.axis, curves[-1], hcp_101(last) + shift) < 1.05
    # the reverse transition happens at lower pressure than the forward one (hysteresis)
    assert stack.metadata["transition_start_gpa"] < 12.0
    assert stack.metadata["transition_end_gpa"] < stack.metadata["transition_start_gpa"]


def test_paper_suite_matches_the_table_counts_and_proportions():
    suite = paper_suite(seed=0, n_points=300)
    assert [s.stack.name for s in suite] == [f"D{i}" for i in range(1, 10)]
    counts = {s.stack.name: tuple(int(np.sum(s.labels == c)) for c in CLASSES) for s in suite}
    for spec in PAPER_SUITE:
        assert counts[spec.name] == (spec.n_before, spec.n_during, spec.n_after)
    assert counts["D1"] == (17, 0, 43)
    assert counts["D9"] == (90, 65, 305)
    assert sum(s.stack.n_curves for s in suite) == 1516
    assert sum(s.stack.n_curves for s in suite if s.stack.name in ("D1", "D4", "D8", "D9")) == 872
    assert [spec.name for spec in PAPER_SUITE if spec.pretraining] == ["D1", "D4", "D8", "D9"]
    materials = [s.stack.metadata["material"] for s in suite]
    assert materials == ["Fe"] * 7 + ["FeO"] * 2
    for spec, series in zip(PAPER_SUITE, suite, strict=True):
        assert series.stack.metadata["exposure_s"] == spec.exposure_s
        steps = np.diff(series.stack.variable)
        assert np.all(steps < 0) if spec.decompression else np.all(steps > 0)
    assert any(spec.decompression for spec in PAPER_SUITE)


def test_paper_suite_is_reproducible_by_seed():
    a = paper_suite(seed=3, n_points=100)
    b = paper_suite(seed=3, n_points=100)
    c = paper_suite(seed=4, n_points=100)
    assert all(
        np.array_equal(x.stack.curves(), y.stack.curves()) for x, y in zip(a, b, strict=True)
    )
    assert not np.array_equal(a[0].stack.curves(), c[0].stack.curves())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"material": "Cu"}, "unknown material"),
        ({"n_before": -1}, "n_before"),
        ({"n_during": 1.5}, "n_during"),
        ({"n_before": 1, "n_during": 0, "n_after": 0}, "at least 2 curves"),
        ({"two_theta_range": (20.0, 10.0)}, "two_theta_range"),
        ({"two_theta_range": (0.0, 10.0)}, "two_theta_range"),
        ({"two_theta_range": (5.0, 190.0)}, "two_theta_range"),
        ({"two_theta_range": "wide"}, "two_theta_range"),
        ({"exposure_s": 0.0}, "exposure_s"),
        ({"medium": "He"}, "medium"),
        ({"n_points": 4}, "n_points"),
        ({"energy_kev": -1.0}, "energy_kev"),
        ({"seed": -3}, "seed"),
    ],
)
def test_invalid_arguments_raise_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate_series(**kwargs)


def test_marker_lines_sit_where_the_phase_eos_puts_them_and_leave_the_sample_unchanged():
    from napari_xrdphase.phases import get_phase

    plain = simulate_series("Fe", 6, 0, 4, exposure_s=20.0, seed=21)
    with_au = simulate_series("Fe", 6, 0, 4, exposure_s=20.0, marker="Au", seed=21)
    stack = with_au.stack
    assert stack.metadata["marker"] == "Au"
    extra = stack.curves() - plain.stack.curves()
    assert np.all(extra >= 0) and extra.sum() > 0  # the same sample counts plus the Au lines
    assert np.array_equal(stack.variable, plain.stack.variable)
    shift = stack.metadata["zero_shift_deg"]
    gold = get_phase("Au")
    for row, pressure in enumerate(stack.variable):
        expected = gold.reflections(pressure, wavelength=WAVELENGTH)[0].two_theta + shift
        assert peak_position(stack.axis, extra[row], expected, 0.1) == pytest.approx(
            expected, abs=0.01
        )


def test_argon_medium_lines_appear_only_once_it_is_solid():
    from napari_xrdphase.phases import get_phase

    plain = simulate_series("Fe", 30, 0, 2, exposure_s=20.0, n_points=1000, seed=20)
    with_ar = simulate_series("Fe", 30, 0, 2, exposure_s=20.0, n_points=1000, medium="ar", seed=20)
    extra = with_ar.stack.curves() - plain.stack.curves()
    pressure = with_ar.stack.variable
    liquid = pressure < 1.3
    assert liquid.any() and (~liquid).any()
    assert np.all(extra[liquid] == 0)
    assert np.all(extra[~liquid].sum(axis=1) > 0)
    assert with_ar.stack.metadata["medium"] == "Ar"
    assert get_phase("Ar").reflections(5.0)[0].hkl == (1, 1, 1)


def test_separate_lines_renders_calibrant_and_neon_without_touching_the_sample():
    plain = simulate_series("FeO", 4, 2, 4, n_points=800, seed=23)
    lined = simulate_series(
        "FeO", 4, 2, 4, n_points=800, seed=23, calibrant=True, medium="Ne", separate_lines=True
    )
    assert lined.stack.metadata["marker"] == "Pt"
    assert np.all(lined.stack.curves() >= plain.stack.curves())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"marker": "Unobtainium"}, "unknown marker 'Unobtainium'; use None or one of Au, Pt"),
        ({"marker": "Au", "calibrant": True}, "not both"),
    ],
)
def test_marker_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate_series(**kwargs)
