"""The independent DAC-XRD simulator (benchmarks/independent_suite.py) and its files."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from benchmarks.independent_suite import (
    PHASES,
    IndependentSeries,
    _reflections,
    independent_suite,
    line_two_theta,
    write_suite,
)

CLASSES = ("before", "during", "after")
ORDER = {c: i for i, c in enumerate(CLASSES)}


@pytest.fixture(scope="module")
def suite() -> list[IndependentSeries]:
    return independent_suite(seed=0)


def by_name(suite, name):
    return next(s for s in suite if s.name == name)


def bragg_two_theta(d: float, wavelength: float) -> float:
    return 2.0 * math.degrees(math.asin(wavelength / (2.0 * d)))


def peak_excess(s: IndependentSeries, rows, centre: float, half_width: float = 0.04):
    """Height above the local baseline near ``centre`` of the mean of ``rows``, in noise units."""
    y = np.mean(s.curves[rows], axis=0)
    x = s.two_theta - centre
    left = np.median(y[(x < -0.2) & (x > -0.6)])
    right = np.median(y[(x > 0.2) & (x < 0.6)])
    base = 0.5 * (left + right)  # a linear background cancels
    return (y[np.abs(x) < half_width].max() - base) / math.sqrt(base / len(rows))


def centroid(s: IndependentSeries, rows, centre: float, half_width: float = 0.12) -> float:
    """Centre of the peak near ``centre``: centroid of the points above half maximum."""
    y = np.mean(s.curves[rows], axis=0)
    near = np.flatnonzero(np.abs(s.two_theta - centre) < half_width)
    top = near[np.argmax(y[near])]
    base = np.median(y[(np.abs(s.two_theta - centre) > 0.3) & (np.abs(s.two_theta - centre) < 0.8)])
    half = base + 0.5 * (y[top] - base)
    lo = top
    while y[lo - 1] > half:
        lo -= 1
    hi = top
    while y[hi + 1] > half:
        hi += 1
    w = y[lo : hi + 1] - half
    return float(np.sum(s.two_theta[lo : hi + 1] * w) / np.sum(w))


def test_same_seed_same_arrays_and_different_seed_differs(suite):
    again = independent_suite(seed=0)
    other = independent_suite(seed=1)
    assert [s.name for s in again] == [s.name for s in suite]
    for a, b in zip(suite, again, strict=True):
        for field in ("two_theta", "pressure", "curves", "labels"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert (a.wavelength, a.material, a.decompression) == (
            b.wavelength,
            b.material,
            b.decompression,
        )
    for a, c in zip(suite, other, strict=True):
        assert a.curves.shape != c.curves.shape or not np.array_equal(a.curves, c.curves)
        assert a.pressure.shape != c.pressure.shape or not np.array_equal(a.pressure, c.pressure)


def test_suite_layout(suite):
    assert len(suite) == 8
    fe = [s for s in suite if s.material == "Fe"]
    feo = [s for s in suite if s.material == "FeO"]
    assert len(fe) == 5 and len(feo) == 3
    assert 1 <= sum(s.decompression for s in fe) <= 2
    assert len({s.two_theta.size for s in suite}) > 1
    for s in suite:
        n, m = s.curves.shape
        assert 60 <= n <= 300 and 1500 <= m <= 5000
        assert s.curves.dtype == np.float64 and np.all(np.isfinite(s.curves))
        assert np.all(s.curves >= 0) and np.all(s.curves == np.round(s.curves))  # counts
        assert s.pressure.shape == s.labels.shape == (n,)
        step = np.diff(s.two_theta)
        np.testing.assert_allclose(step, step[0], rtol=1e-9)
        assert 5.0 <= s.two_theta[0] <= 8.0 and 18.0 <= s.two_theta[-1] <= 30.0


def test_every_series_has_all_three_classes_in_phase_order(suite):
    for s in suite:
        assert set(s.labels) == set(CLASSES), s.name
        codes = np.array([ORDER[c] for c in s.labels])
        # labels name the phase: low-pressure phase first on compression, last on decompression
        steps = np.diff(codes if not s.decompression else codes[::-1])
        assert np.all(steps >= 0), s.name


def test_decompression_series_have_decreasing_pressure(suite):
    dec = [s for s in suite if s.decompression]
    assert dec
    for s in dec:
        assert s.material == "Fe"
        assert s.pressure[0] > 20 and s.pressure[-1] < 5
        assert np.corrcoef(np.arange(s.pressure.size), s.pressure)[0, 1] < -0.95
        assert np.mean(np.diff(s.pressure) < 0) > 0.7
        assert s.labels[0] == "after" and s.labels[-1] == "before"  # hcp at high P
        # hysteresis: on unloading hcp persists below the compression onset (~13 GPa)
        assert s.pressure[s.labels == "during"].min() < 10.5
    for s in suite:
        if not s.decompression:
            assert np.mean(np.diff(s.pressure) > 0) > 0.7 and s.pressure[0] == 0.0


def test_bcc_110_at_ambient_matches_bragg(suite):
    d110 = 2.866 / math.sqrt(2.0)
    checked = 0
    for s in suite:
        if s.material != "Fe" or s.decompression:
            continue
        ambient = np.flatnonzero(s.pressure == 0.0)
        assert ambient.size >= 1
        expected = bragg_two_theta(d110, s.wavelength)
        assert line_two_theta("Fe-bcc", (1, 1, 0), 0.0, s.wavelength) == pytest.approx(
            expected, abs=1e-9
        )
        found = centroid(s, ambient, expected)
        assert found == pytest.approx(expected, abs=0.002), s.name
        checked += 1
    assert checked >= 2


def test_hcp_100_line_only_in_hcp_curves(suite):
    s = by_name(suite, "X1")  # no crystalline pressure medium
    after = np.flatnonzero(s.labels == "after")[-5:]
    before = np.flatnonzero(s.labels == "before")[:5]
    p_after, p_before = np.median(s.pressure[after]), np.median(s.pressure[before])
    hcp100_after = line_two_theta("Fe-hcp", (1, 0, 0), p_after, s.wavelength)
    hcp100_before = line_two_theta("Fe-hcp", (1, 0, 0), p_before, s.wavelength)
    # no gold or bcc line near that position in this pressure range
    for phase, hkl in (("Au", (1, 1, 1)), ("Au", (2, 0, 0)), ("Fe-bcc", (1, 1, 0))):
        for p, t in ((p_after, hcp100_after), (p_before, hcp100_before)):
            assert abs(line_two_theta(phase, hkl, p, s.wavelength) - t) > 0.3
    assert peak_excess(s, after, hcp100_after) > 10
    assert peak_excess(s, before, hcp100_before) < 6


def test_reflection_conditions_and_rhombohedral_splitting():
    lam = 0.3344
    bcc = _reflections(PHASES["Fe-bcc"], 0.8, 3.0, (0.0, 1.0))
    assert np.all(bcc.hkl.sum(axis=1) % 2 == 0)
    hcp = _reflections(PHASES["Fe-hcp"], 0.8, 5.0, (0.0, 1.0))
    keys = {(h * h + h * k + k * k, abs(m)) for h, k, m in hcp.hkl.tolist()}
    assert (0, 1) not in keys and (1, 0) in keys and (0, 2) in keys  # (001) absent
    hcp_ca = PHASES["Fe-hcp"].c_over_a[0]
    assert 1.58 < hcp_ca < 1.62
    # FeO: a 0.6° pseudo-cubic distortion splits (111) and (220), not (200)
    p = 25.0
    pairs = (
        ((1, 1, 1), (1, 1, -1), True),
        ((2, 0, 0), (0, 0, 2), False),
        ((2, 2, 0), (2, -2, 0), True),
    )
    for one, other, split in pairs:
        a = line_two_theta("FeO-rB1", one, p, lam, distortion_deg=0.6)
        b = line_two_theta("FeO-rB1", other, p, lam, distortion_deg=0.6)
        assert (abs(a - b) > 0.02) == split, one
    cubic = line_two_theta("FeO-B1", (1, 1, 1), 0.0, lam)
    assert cubic == pytest.approx(bragg_two_theta(4.311 / math.sqrt(3.0), lam), abs=1e-9)


def test_write_suite_round_trips_through_load_stack(suite, tmp_path):
    from napari_xrdphase.io import load_stack

    paths = write_suite(suite, tmp_path)
    assert set(paths) == {s.name for s in suite}
    kinds = set()
    for p in paths.values():
        kinds |= {p.suffix} if p.is_file() else {f.suffix for f in p.iterdir()} - {".csv"}
    assert kinds == {".xy", ".chi", ".xye", ".dat", ".nxs", ".npz", ".h5"}
    for s in suite:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no resampling or other surprises
            stack = load_stack(paths[s.name])
        assert stack.n_curves == len(s.pressure), s.name
        assert stack.variable_unit == "GPa", s.name
        np.testing.assert_allclose(stack.variable, s.pressure, atol=5e-3, err_msg=s.name)
        assert stack.axis_kind == "2theta" and stack.axis_unit == "deg"
        np.testing.assert_allclose(stack.axis, s.two_theta, atol=1e-5, err_msg=s.name)
        np.testing.assert_allclose(stack.curves(), s.curves, rtol=1e-6, atol=0.5, err_msg=s.name)
        if stack.wavelength is not None:
            assert stack.wavelength == pytest.approx(s.wavelength, rel=1e-6)
    folders = [p for p in paths.values() if p.is_dir()]
    assert any((p / "f_1.xy").is_file() and (p / "f_10.xy").is_file() for p in folders)
