"""One grid for every series: the q window pretraining records and every embedding uses."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_xrdphase.cli import main
from napari_xrdphase.io import save_stack
from napari_xrdphase.preprocess import common_window, prepare_stack, window_coverage
from napari_xrdphase.stack import SpectraStack

# d-spacings (Å) of a made-up pattern; a phase change at curve 8 adds two lines
D_LINES = (2.49, 2.16, 1.53, 1.30, 1.25)
D_NEW = (2.30, 1.80)


def q_of(two_theta, wavelength):
    return 4 * np.pi * np.sin(np.radians(two_theta) / 2) / wavelength


def recorded(name, wavelength, window, n_points, n_curves=16, seed=0) -> SpectraStack:
    """The same sample recorded at ``wavelength`` over the 2θ ``window``: lines of fixed width in q."""
    rng = np.random.default_rng(seed)
    two_theta = np.linspace(*window, n_points)
    q = q_of(two_theta, wavelength)
    curves = []
    for i in range(n_curves):
        lines = D_LINES + (D_NEW if i >= 8 else ())
        strain = 1 - 0.002 * i
        curve = sum(np.exp(-0.5 * ((q - 2 * np.pi / (d * strain)) / 0.02) ** 2) for d in lines)
        curves.append(100 * curve + 5 + 0.01 * rng.standard_normal(n_points))
    return SpectraStack(
        np.array(curves), two_theta, variable=np.linspace(0, 30, n_curves),
        variable_name="pressure", variable_unit="GPa", wavelength=wavelength, name=name,
    )  # fmt: skip


def test_window_is_the_q_range_every_series_covers():
    a = recorded("a", 0.4133, (5.0, 25.0), 3000)
    b = recorded("b", 0.2952, (4.0, 20.0), 2000)
    window = common_window([a, b])
    assert window["axis_kind"] == "q" and window["axis_unit"] == "1/A"
    lo, hi = window["axis_range"]
    assert lo == pytest.approx(max(q_of(5.0, 0.4133), q_of(4.0, 0.2952)))
    assert hi == pytest.approx(min(q_of(25.0, 0.4133), q_of(20.0, 0.2952)))
    assert window_coverage(a.axis_as("q"), (lo, hi)) == pytest.approx(1.0)


def test_series_without_wavelength_fall_back_to_2theta_and_say_so():
    a = recorded("a", 0.4133, (5.0, 25.0), 600)
    b = recorded("b", 0.4133, (5.0, 25.0), 600)
    a.wavelength = b.wavelength = None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same windows: nothing to warn about
        window = common_window([a, b])
    assert window == {"axis_kind": "2theta", "axis_unit": "deg", "axis_range": [5.0, 25.0]}
    c = recorded("c", 0.4133, (6.0, 22.0), 600)
    c.wavelength = None
    with pytest.warns(UserWarning, match="a, b, c have no wavelength"):
        assert common_window([a, b, c])["axis_range"] == [6.0, 22.0]


def test_unusable_sets_of_series_are_refused_clearly():
    with_wavelength = recorded("good", 0.4133, (5.0, 25.0), 600)
    without = recorded("bare", 0.3, (5.0, 25.0), 600)
    without.wavelength = None
    q_axis = SpectraStack(with_wavelength.curves(), with_wavelength.axis_as("q"), axis_kind="q",
                          axis_unit="1/A", name="in_q")  # fmt: skip
    with pytest.raises(ValueError, match="bare have a 2θ axis and no wavelength"):
        common_window([q_axis, without])
    far = recorded("far", 0.4133, (30.0, 40.0), 600)
    with pytest.raises(ValueError, match="share no part of their q ranges"):
        common_window([with_wavelength, far])
    with pytest.raises(ValueError, match="no series"):
        common_window([])


def test_same_sample_at_another_wavelength_and_window_embeds_the_same(one_torch_thread, tmp_path):
    from napari_xrdphase.training import pretrain

    a = recorded("a", 0.4133, (5.0, 25.0), 3000)
    b = recorded("b", 0.2952, (4.0, 20.0), 2000, seed=1)
    encoder = pretrain([a, b], epochs=1, batch_size=16, seed=0, device="cpu")
    prep = encoder.config["preprocessing"]
    assert prep["axis_kind"] == "q" and prep["axis_range"] == common_window([a, b])["axis_range"]
    # prepared on the common window the two recordings are the same curves
    np.testing.assert_allclose(
        prepare_stack(a, 1024, **common_window([a, b])),
        prepare_stack(b, 1024, **common_window([a, b])),
        atol=0.05,
    )
    # (one epoch may leave the final ReLU dead: the embedding checks use live untrained weights
    # with the window the pretraining recorded)
    from napari_xrdphase.encoder import Encoder

    encoder = Encoder(Encoder.random(seed=0).model, encoder.config)
    za, zb = encoder.embed(a), encoder.embed(b)
    assert np.abs(za).max() > 0
    spread = np.abs(za - za.mean(axis=0)).mean()
    assert np.abs(za - zb).mean() < 0.1 * spread
    # each on its own 2θ range (what an encoder without a window does) they differ
    own = prepare_stack(a, 1024) - prepare_stack(b, 1024)
    assert np.abs(own).max() > 0.5

    # saved and loaded, the window goes with the model
    reloaded = type(encoder).load(encoder.save(tmp_path / "enc.safetensors"))
    np.testing.assert_allclose(reloaded.embed(b), zb, atol=1e-5)

    # a series without a wavelength cannot be placed on the q grid: a clear error
    bare = recorded("bare", 0.4133, (5.0, 25.0), 600)
    bare.wavelength = None
    with pytest.raises(ValueError, match=r"bare: .* no wavelength; give its X-ray wavelength"):
        encoder.embed(bare)
    # one that covers little of the window is embedded with a warning; none of it, refused
    narrow = recorded("narrow", 0.4133, (5.0, 10.0), 600)
    with pytest.warns(UserWarning, match=r"narrow: its curves .* cover only"):
        encoder.embed(narrow)
    outside = recorded("outside", 0.4133, (40.0, 50.0), 600)
    with pytest.raises(
        ValueError, match=r"outside: its curves .* lie outside this encoder's window"
    ):
        encoder.embed(outside)


def test_cli_wavelength_option_fills_series_without_one(tmp_path, capsys):
    stack = recorded("chi_run", 0.4133, (5.0, 25.0), 400, n_curves=4)
    stack.wavelength = None
    path = save_stack(stack, tmp_path / "chi_run.npz")
    assert main(["info", str(path), "--wavelength", "0.4133"]) == 0
    assert "wavelength: 0.4133 Å" in capsys.readouterr().out
    assert main(["info", str(path), "--wavelength", "-1"]) == 2
    assert "--wavelength must be a positive number" in capsys.readouterr().err


def test_pretraining_can_read_a_narrower_q_window(one_torch_thread):
    from napari_xrdphase.preprocess import narrowed_window
    from napari_xrdphase.training import pretrain

    a = recorded("a", 0.4133, (5.0, 25.0), 3000)
    b = recorded("b", 0.2952, (4.0, 20.0), 2000, seed=1)
    common = common_window([a, b])
    lo, hi = common["axis_range"]
    inner = (lo + 0.1 * (hi - lo), hi - 0.2 * (hi - lo))
    encoder = pretrain([a, b], epochs=1, batch_size=16, seed=0, device="cpu", q_range=inner[::-1])
    prep = encoder.config["preprocessing"]
    assert prep["axis_kind"] == "q" and prep["axis_range"] == pytest.approx(list(inner))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # both series cover the narrower window: no warning
        assert encoder.embed(a).shape == (16, encoder.feature_dim)
    with pytest.raises(ValueError, match=r"q_range .* is not inside the q range every series"):
        pretrain([a, b], epochs=1, batch_size=16, device="cpu", q_range=(lo - 0.5, hi))
    with pytest.raises(ValueError, match="two different finite values"):
        narrowed_window(common, (2.0, 2.0))
    a.wavelength = b.wavelength = None
    b_same = recorded("b", 0.4133, (5.0, 25.0), 3000)
    b_same.wavelength = None
    with pytest.raises(ValueError, match="needs every series on a q axis"):
        narrowed_window(common_window([a, b_same]), (10.0, 20.0))
