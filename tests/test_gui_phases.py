"""The Phases dock and the session's phase methods in a real napari viewer (run under Xvfb)."""

import numpy as np
import pytest
from _waits import HANG_MS

from napari_xrdphase._widgets._data_dock import DataDock
from napari_xrdphase._widgets._phases_dock import PhasesDock
from napari_xrdphase._widgets._session import get_session
from napari_xrdphase.phases import get_phase
from napari_xrdphase.synth import simulate_series

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def pt_series():
    """A 20-curve Fe series with Pt and Ne lines (pressure 4–29 GPa as its variable)."""
    return simulate_series("Fe", 8, 4, 8, marker="Pt", medium="Ne", n_points=1500, seed=1)


def as_index(stack):
    """The same curves with the acquisition index as their variable."""
    return stack.replace(
        variable=np.arange(stack.n_curves, dtype=float), variable_name="index", variable_unit=""
    )


def two_theta(phase, pressure, wavelength, hkl="(111)"):
    return next(
        r.two_theta
        for r in get_phase(phase).reflections(pressure, wavelength=wavelength)
        if r.label == hkl
    )


def test_phase_lines_follow_each_rows_pressure_on_the_shown_axis(viewer, pt_series):
    xrd = get_session(viewer)
    layer = xrd.add_stack(pt_series.stack)
    stack = pt_series.stack
    shapes = xrd.show_phase_lines(["Pt", "Ne"])
    assert [s.name for s in shapes] == [f"{layer.name} Pt lines", f"{layer.name} Ne lines"]
    pt = shapes[0]
    texts = list(pt.features["text"])
    path = pt.data[texts.index("(111)")]
    y_of = {round((y - layer.translate[0]) / layer.scale[0]): x for y, x in path}
    for row in (2, 17):
        expected = two_theta("Pt", stack.variable[row], stack.wavelength)
        col = np.interp(expected, stack.axis, np.arange(stack.n_points))
        world = layer.translate[1] + layer.scale[1] * col
        assert y_of[row] == pytest.approx(world, abs=1e-4)
    assert y_of[17] > y_of[2]  # compression: the line moves to higher 2θ
    # Ne is fluid below 4.7 GPa: its path starts at the first row above it
    ne_rows = [round((y - layer.translate[0]) / layer.scale[0]) for y, _ in shapes[1].data[0]]
    assert stack.variable[ne_rows[0]] >= 4.7
    # on a d axis the same line sits at the d of that pressure
    xrd.set_axis("d")
    pt = next(lay for lay in viewer.layers if lay.name == f"{layer.name} Pt lines")
    shown = xrd.shown_stack(layer)
    path = pt.data[list(pt.features["text"]).index("(111)")]
    row = 10
    d = next(r.d for r in get_phase("Pt").reflections(stack.variable[row]) if r.label == "(111)")
    col = np.interp(d, shown.axis, np.arange(shown.n_points))
    x = dict((round((y - layer.translate[0]) / layer.scale[0]), x) for y, x in path)[row]
    assert x == pytest.approx(layer.translate[1] + layer.scale[1] * col, abs=1e-4)


def test_data_dock_plot_shows_the_phase_lines_as_ticks(viewer, pt_series):
    xrd = get_session(viewer)
    xrd.add_stack(pt_series.stack)
    dock = DataDock(viewer)
    xrd.show_phase_lines(["Pt", "Ne"])
    dock.plot_curve(15)
    collections = dock.plot.axes.collections
    assert [c.get_label() for c in collections] == ["Pt", "Ne"]
    segments = collections[0].get_segments()
    expected = two_theta("Pt", pt_series.stack.variable[15], pt_series.stack.wavelength)
    assert (
        min(abs(seg[0][0] - expected) for seg in segments) < 1e-4
    )  # deg: the EOS is inverted on a grid


def test_use_as_pressure_puts_the_fitted_pressure_on_an_index_series(viewer, pt_series, qtbot):
    xrd = get_session(viewer)
    truth = pt_series.stack.variable.copy()
    layer = xrd.add_stack(as_index(pt_series.stack))
    dock = PhasesDock(viewer)
    dock.marker.value = "Pt"
    worker = dock.start_pressure_fit()
    with qtbot.waitSignal(worker.finished, timeout=HANG_MS):
        pass
    qtbot.waitUntil(lambda: dock.worker is None, timeout=HANG_MS)
    stack = xrd.compute_stack(layer)
    assert (stack.variable_name, stack.variable_unit) == ("pressure", "GPa")
    np.testing.assert_allclose(stack.variable, truth, atol=0.3)
    assert stack.metadata["own_variable"]["name"] == "index"
    assert len(dock.plot.axes.lines) >= 1  # the pressure-vs-curve plot
    # the lines now follow the fitted pressure
    shapes = xrd.show_phase_lines(["Pt"])
    assert len(shapes[0].data) >= 2


def test_failed_curves_keep_the_variable_and_say_so(viewer, pt_series, monkeypatch):
    from napari.utils import notifications

    warned = []
    monkeypatch.setattr(notifications, "show_warning", warned.append)
    from napari_xrdphase.synth import simulate_series

    xrd = get_session(viewer)
    plain = simulate_series("Fe", 2, 1, 2, n_points=1500, seed=1).stack  # no Pt at all
    mixed = pt_series.stack.replace(
        intensities=np.vstack([pt_series.stack.curves(), plain.curves()[:1]]),
        variable=np.arange(21, dtype=float), variable_name="index", variable_unit="", sources=None,
    )  # fmt: skip
    layer = xrd.add_stack(mixed)
    fit = xrd.fit_pressure("Pt")
    assert len(warned) == 1 and "1 of 21 curves have no Pt pressure (curves 20" in warned[0]
    assert "the variable stays index" in warned[0]
    assert fit.failed.sum() == 1
    assert xrd.compute_stack(layer).variable_name == "index"
    pressures = xrd.phase_pressures()
    assert np.isnan(pressures[20]) and np.isfinite(pressures[:20]).all()


def test_ignore_in_classification_reaches_the_classifier(viewer, pt_series):
    xrd = get_session(viewer)
    xrd.add_stack(pt_series.stack, ground_truth=pt_series.labels)
    dock = PhasesDock(viewer)
    dock.marker.value = "Pt"
    dock.medium.value = "Ne"
    dock.ignore.value = True
    assert xrd.ignore_phases == ["Pt", "Ne"]
    xrd.apply_ground_truth([0, 1, 18, 19])
    xrd.classify()
    assert "curves seen without the lines of Pt, Ne" in str(xrd.classifier.summary)
    dock.ignore.value = False
    assert xrd.ignore_phases == []


def test_bad_input_gives_one_notification(viewer, pt_series, errors, tmp_path):
    xrd = get_session(viewer)
    xrd.add_stack(pt_series.stack.replace(wavelength=None))
    dock = PhasesDock(viewer)
    dock.marker.value = "Pt"
    assert dock.show_lines() == []
    assert len(errors) == 1 and "wavelength" in errors[0]
    assert not [lay for lay in viewer.layers if lay.name.endswith("lines")]
    assert dock.add_jcpds(tmp_path / "nothing.jcpds") is None
    assert len(errors) == 2 and "nothing.jcpds" in errors[1]
    bad = tmp_path / "bad.jcpds"
    bad.write_text("VERSION: 4\nK0: 100\nK0P: five\n")
    assert dock.add_jcpds(bad) is None
    assert len(errors) == 3 and "bad.jcpds" in errors[2]
    index = pt_series.stack.replace(
        variable=np.arange(20.0), variable_name="index", variable_unit=""
    )
    xrd.add_stack(index.replace(name="by index"))
    assert dock.show_lines() == []
    assert len(errors) >= 4 and "Use as pressure" in errors[-1]


def test_a_jcpds_phase_is_offered_and_drawn(viewer, pt_series, tmp_path):
    xrd = get_session(viewer)
    xrd.add_stack(pt_series.stack)
    path = tmp_path / "myau.jcpds"
    path.write_text(
        "VERSION: 4\nCOMMENT: gold\nK0: 167.0\nK0P: 5.5\nSYMMETRY: CUBIC\nA: 4.0786\n"
        "DIHKL: 2.3548 100 1 1 1\nDIHKL: 2.0393 52 2 0 0\n"
    )
    dock = PhasesDock(viewer)
    assert dock.add_jcpds(path) == "myau"
    assert "myau" in dock.reference.choices
    shapes = xrd.show_phase_lines(["myau"])
    assert sorted(shapes[0].features["text"]) == ["(111)", "(200)"]


def test_demo_pressure_from_fits_every_series_and_draws_the_marker(viewer, pt_series, capsys):
    import argparse

    from napari_xrdphase.cli import _demo_pressure, build_parser

    args = build_parser().parse_args(["demo", "--pressure-from", "Pt"])
    assert (args.pressure_from, args.pressure_scale) == ("Pt", None)
    xrd = get_session(viewer)
    layer = xrd.add_stack(as_index(pt_series.stack))
    _demo_pressure(viewer, xrd, argparse.Namespace(pressure_from="Pt", pressure_scale=None))
    stack = xrd.compute_stack(layer)
    assert stack.variable_unit == "GPa"
    np.testing.assert_allclose(stack.variable, pt_series.stack.variable, atol=0.3)
    assert any(lay.name == f"{layer.name} Pt lines" for lay in viewer.layers)
    assert "0 of 20 curves failed" in capsys.readouterr().err


def test_a_cif_phase_is_offered_and_drawn(viewer, pt_series, errors, tmp_path):
    xrd = get_session(viewer)
    xrd.add_stack(pt_series.stack)
    cif = (
        "data_au\n_cell_length_a 4.0786\n_cell_length_b 4.0786\n_cell_length_c 4.0786\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        "_space_group_name_H-M_alt 'F m -3 m'\n"
        "loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
        "Au1 0 0 0\n"
    )
    plain = tmp_path / "plainau.cif"
    plain.write_text(cif)
    with_eos = tmp_path / "myau.cif"
    with_eos.write_text(cif + "_xrdphase_eos_K0 167\n_xrdphase_eos_K0_prime 6\n")
    dock = PhasesDock(viewer)
    assert dock.add_jcpds(with_eos) == "myau"
    assert "myau" in dock.reference.choices
    shapes = xrd.show_phase_lines(["myau"])
    assert {"(111)", "(200)"} <= set(shapes[0].features["text"])
    assert dock.add_jcpds(plain) == "plainau"
    dock.reference.value = "plainau"
    assert dock.show_lines() == []
    assert "no equation of state" in errors[-1]


def test_ignore_in_classification_reaches_suggest_and_propose_phases(viewer, pt_series):
    from napari_xrdphase.segment import propose_phases
    from napari_xrdphase.suggest import suggest_curves

    xrd = get_session(viewer)
    xrd.add_stack(pt_series.stack, ground_truth=pt_series.labels)
    xrd.apply_ground_truth([0, 1, 18, 19])
    dock = PhasesDock(viewer)
    dock.marker.value = "Pt"
    dock.medium.value = "Ne"
    dock.ignore.value = True
    stack, labels = xrd.stack, xrd.labels
    masked = suggest_curves(xrd.encoder, [stack], labels, 4, ignore_phases=["Pt", "Ne"])
    plain = suggest_curves(xrd.encoder, [stack], labels, 4)
    assert masked != plain  # the lines change the suggestions: the test can tell them apart
    assert xrd.suggest(n=4) == masked
    seen = xrd.propose_phases()[stack.name].labels
    expected = propose_phases(xrd.encoder, [stack], ignore_phases=["Pt", "Ne"])[0].labels
    np.testing.assert_array_equal(seen, expected)
