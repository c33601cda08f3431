"""Classification blind to known phases: marker and medium lines replaced by background."""

import json
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

from napari_xrdphase.phases import PhaseError, get_phase
from napari_xrdphase.phases.masking import PhaseMask, mask_phases
from napari_xrdphase.stack import SpectraStack, StackError

Q = np.linspace(2.0, 5.0, 1500)  # 1/Å
SIGMA_Q = 0.004  # line width (Gaussian σ) in 1/Å: FWHM ≈ 4.7 points


def background(q):
    return 100.0 + 20.0 * (q - 2.0)


def marker_lines(pressure, phase="Pt", height=50.0):
    """Noise-free lines of ``phase`` at ``pressure`` (GPa) on the q axis."""
    out = np.zeros_like(Q)
    for line in get_phase(phase).reflections(pressure):
        q0 = 2 * np.pi / line.d
        out += height * line.intensity / 100 * np.exp(-0.5 * ((Q - q0) / SIGMA_Q) ** 2)
    return out


def marker_stack(pressures, phase="Pt", variable_unit="GPa", **kw):
    curves = np.array([background(Q) + marker_lines(p, phase) for p in pressures])
    return SpectraStack(
        curves, Q, axis_kind="q", axis_unit="1/A", variable=np.asarray(pressures, float),
        variable_name="pressure", variable_unit=variable_unit, name="marker", **kw,
    )  # fmt: skip


def test_subtracted_lines_leave_the_background():
    stack = marker_stack(np.linspace(0.0, 40.0, 6))
    result = mask_phases(stack, ["Pt"])
    masked = result.stack.curves()
    assert result.n_masked == 6 and result.n_unknown_pressure == 0
    assert result.lines["Pt"] >= 3 and result.found == {"Pt": True}
    assert result.n_cut == 0 and result.n_subtracted >= 6 * 3
    # the lines are gone: every curve is its linear background again (lines 50 high: < 0.1 %)
    np.testing.assert_allclose(masked, np.broadcast_to(background(Q), masked.shape), atol=0.05)
    changed = np.abs(masked - stack.curves()) > 1e-3
    assert changed.any(axis=1).all()
    assert changed.mean() < 0.2  # only around the lines
    assert result.stack.metadata["ignored_phases"]["phases"] == ["Pt"]


def test_a_sample_line_crossing_a_marker_line_survives_it():
    # a sample line 1.5 FWHM (≈ 7 points) from Pt (111): a window cut would take half of it
    pressures = np.linspace(0.0, 40.0, 8)
    stack = marker_stack(pressures)
    q111 = np.array([2 * np.pi / get_phase("Pt").reflections(p)[0].d for p in pressures])
    sample = 80.0 * np.exp(-0.5 * ((Q[None, :] - q111[:, None] - 0.012) / SIGMA_Q) ** 2)
    with_sample = stack.replace(intensities=stack.curves() + sample)
    masked = mask_phases(with_sample, ["Pt"]).stack.curves()
    kept = (masked - background(Q)[None, :]).sum(axis=1) / sample.sum(axis=1)
    # the sample line keeps its area to 10 % (a ± 2 FWHM window cut keeps under 20 % of it)
    np.testing.assert_allclose(kept, 1.0, atol=0.1)


def test_a_strong_sample_line_beside_a_weaker_marker_line_is_not_taken_for_it():
    # a sample line 6 times Pt (200)'s height, 1.3 FWHM beside it in every curve: (200) is never
    # clean, so its height is its structure-factor share of Pt (111), fitted in the same curve
    pressures = np.linspace(0.0, 40.0, 8)
    stack = marker_stack(pressures)
    q200 = np.array([2 * np.pi / get_phase("Pt").reflections(p)[1].d for p in pressures])
    sample = 150.0 * np.exp(-0.5 * ((Q[None, :] - q200[:, None] + 0.012) / SIGMA_Q) ** 2)
    masked = mask_phases(stack.replace(intensities=stack.curves() + sample), ["Pt"]).stack
    kept = (masked.curves() - background(Q)[None, :]).sum(axis=1) / sample.sum(axis=1)
    np.testing.assert_allclose(kept, 1.0, atol=0.1)


def test_a_series_without_the_marker_is_left_as_it_is():
    from napari_xrdphase.synth import simulate_series

    stack = simulate_series("Fe", 10, 5, 10, n_points=1200, seed=4).stack
    result = mask_phases(stack, ["Pt", "Ne"])
    assert result.found == {"Pt": False, "Ne": False}
    assert "not found: left alone" in result.describe()
    np.testing.assert_array_equal(result.stack.curves(), stack.curves())


def test_overlapping_windows_give_one_straight_background():
    stack = marker_stack([10.0, 20.0])
    # (111) and (200) lie 0.43 1/Å (215 points) apart: ± 25 FWHM (± 118 points) windows overlap
    result = mask_phases(stack, ["Pt"], width=25.0, fwhm_points=4.7)
    masked = result.stack.curves()
    assert result.lines["Pt"] == 3
    np.testing.assert_allclose(masked, np.broadcast_to(background(Q), masked.shape), atol=0.05)


def test_lines_outside_the_axis_are_skipped_and_the_rest_masked():
    narrow = Q < 3.0  # only Pt (111) at q ≈ 2.8 is on this axis
    curves = np.array([background(Q) + marker_lines(p) for p in (5.0, 15.0)])[:, narrow]
    stack = SpectraStack(
        curves, Q[narrow], axis_kind="q", axis_unit="1/A", variable=[5.0, 15.0],
        variable_unit="GPa", name="short",
    )  # fmt: skip
    result = mask_phases(stack, ["Pt"])
    assert result.lines == {"Pt": 1}
    expected = np.broadcast_to(background(Q[narrow]), curves.shape)
    np.testing.assert_allclose(result.stack.curves(), expected, atol=0.05)


def test_a_medium_is_masked_only_above_its_freezing_pressure():
    stack = marker_stack([2.0, 8.0], phase="Ne")
    masked = mask_phases(stack, ["Ne"]).stack.curves()
    np.testing.assert_array_equal(masked[0], stack.curves()[0])  # fluid Ne: left alone
    np.testing.assert_allclose(masked[1], background(Q), atol=0.05)


def test_curves_without_a_pressure_are_left_unmasked_and_counted():
    stack = marker_stack([5.0, 10.0, 15.0], variable_unit="")
    result = mask_phases(stack, ["Pt"])
    assert result.n_unknown_pressure == 3 and result.n_masked == 0
    np.testing.assert_array_equal(result.stack.curves(), stack.curves())
    assert "3 curves left unmasked because their pressure is unknown" in result.describe()
    # explicit pressures, NaN where unknown
    result = mask_phases(stack, ["Pt"], pressures=[5.0, np.nan, 15.0])
    assert result.n_unknown_pressure == 1 and result.n_masked == 2
    np.testing.assert_array_equal(result.stack.curves()[1], stack.curves()[1])


def test_a_pressure_in_kbar_is_converted():
    stack = marker_stack([100.0, 200.0], variable_unit="kbar")  # 10 and 20 GPa
    curves = np.array([background(Q) + marker_lines(p) for p in (10.0, 20.0)])
    stack = stack.replace(intensities=curves)
    masked = mask_phases(stack, ["Pt"]).stack.curves()
    np.testing.assert_allclose(masked, np.broadcast_to(background(Q), masked.shape), atol=0.05)


def test_an_unknown_phase_names_the_known_ones():
    with pytest.raises(PhaseError, match=r"unknown phase 'Unobtainium'.*Au, Pt"):
        PhaseMask(("Pt", "Unobtainium"))
    with pytest.raises(PhaseError, match=r"no pressure scale 'Nope'.*Fei2007"):
        PhaseMask(("Pt",), scales=(("Pt", "Nope"),))


def test_two_theta_without_a_wavelength_is_refused():
    stack = SpectraStack(
        np.ones((3, 50)), np.linspace(5, 25, 50), variable=[1.0, 2.0, 3.0],
        variable_unit="GPa", name="no_lambda",
    )  # fmt: skip
    with pytest.raises(StackError, match="no_lambda: its 2θ axis states no wavelength"):
        mask_phases(stack, ["Pt"])


def test_two_theta_and_d_axes_place_the_lines_where_q_does():
    from napari_xrdphase.synth import simulate_series

    stack = simulate_series("Fe", 4, 0, 0, calibrant=True, n_points=1200, seed=3).stack
    on_two_theta = mask_phases(stack, ["Pt"], fwhm_points=6.0).stack
    in_d = mask_phases(stack.with_axis("d"), ["Pt"], fwhm_points=6.0).stack
    changed_2t = on_two_theta.curves() != stack.curves()
    changed_d = in_d.curves() != stack.with_axis("d").curves()
    # the d axis runs backwards over the same points
    np.testing.assert_array_equal(changed_2t, changed_d)
    assert changed_2t.any(axis=1).all()


def test_an_on_disk_stack_is_masked_as_its_curves_are_read(tmp_path):
    stack = marker_stack(np.linspace(0.0, 40.0, 7))
    with h5py.File(tmp_path / "s.h5", "w") as handle:
        handle["i"] = stack.curves()
    with h5py.File(tmp_path / "s.h5", "r") as handle:
        lazy = stack.replace(intensities=handle["i"])
        assert lazy.is_lazy
        eager = mask_phases(stack, ["Pt"], fwhm_points=5.0).stack.curves()
        masked = mask_phases(lazy, ["Pt"], fwhm_points=5.0).stack
        assert masked.is_lazy
        # the same profiles; fits batched differently agree to far below the noise
        np.testing.assert_allclose(masked.curves(), eager, atol=1e-3)
        np.testing.assert_allclose(masked.curves([5, 1]), eager[[5, 1]], atol=1e-3)


# --- the classifier --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bcc_with_ne():
    """A labelled Fe series without medium, and an Fe series that stays bcc while Ne freezes."""
    from napari_xrdphase.synth import simulate_series

    train = simulate_series("Fe", 12, 6, 14, n_points=1000, seed=1, name="train")
    labels = {"train": {i: str(train.labels[i]) for i in range(0, 32, 3)}}
    test = simulate_series("Fe", 30, 0, 0, n_points=1000, seed=5, medium="Ne", name="test")
    return train.stack, labels, test.stack


def test_a_series_that_only_gains_medium_lines_stays_one_phase(bcc_with_ne):
    from napari_xrdphase.classify import fit_classifier
    from napari_xrdphase.encoder import Encoder

    train, labels, test = bcc_with_ne
    assert (test.variable < 4.7).any() and (test.variable > 4.7).any()  # Ne freezes mid-series
    classifier = fit_classifier(Encoder.builtin(), [train, test], labels, ignore_phases=["Ne"])
    assert classifier.ignored.phases == ("Ne",)
    assert "curves seen without the lines of Ne" in str(classifier.summary)
    assert np.all(classifier.predict(test) == "before")


def test_the_classifier_masks_when_it_predicts_and_its_file_says_so(bcc_with_ne, tmp_path):
    from napari_xrdphase.classify import Classifier, fit_classifier
    from napari_xrdphase.encoder import Encoder

    train, labels, test = bcc_with_ne
    encoder = Encoder.builtin()
    classifier = fit_classifier(encoder, [train, test], labels, ignore_phases="Ne")
    masked = mask_phases(test, ["Ne"]).stack
    np.testing.assert_allclose(
        classifier.predict_proba(test), classifier.predict_proba(encoder.embed(masked)), atol=1e-6
    )
    path = classifier.save(tmp_path / "clf.safetensors")
    again = Classifier.load(path, encoder)
    assert again.summary.ignored_phases["phases"] == ["Ne"]
    np.testing.assert_allclose(again.predict_proba(test), classifier.predict_proba(test))


def test_series_without_a_pressure_are_classified_unmasked_with_a_note(bcc_with_ne):
    from napari_xrdphase.classify import fit_classifier
    from napari_xrdphase.encoder import Encoder

    train, labels, test = bcc_with_ne
    by_index = test.replace(variable=None, variable_name="index", variable_unit="")
    with pytest.warns(UserWarning, match="test: 30 of 30 curves keep the lines of Ne"):
        fit_classifier(Encoder.builtin(), [train, by_index], labels, ignore_phases=["Ne"])


# --- the command line ------------------------------------------------------------------------


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "napari_xrdphase.cli", *args], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def pt_suite(tmp_path_factory):
    from napari_xrdphase.io import save_stack
    from napari_xrdphase.synth import simulate_series

    folder = tmp_path_factory.mktemp("pt")
    truth = {}
    for name, seed, calibrant in [("plain", 1, False), ("with_pt", 2, True)]:
        series = simulate_series(
            "Fe", 12, 6, 14, n_points=900, seed=seed, name=name, calibrant=calibrant
        )
        save_stack(series.stack, folder / f"{name}.npz")
        truth[name] = series.labels
    rows = "".join(f"plain,{i},{truth['plain'][i]}\n" for i in range(0, 32, 3))
    (folder / "labels.csv").write_text("dataset,index,label\n" + rows)
    return folder


def test_cli_ignore_phases_end_to_end_records_what_was_ignored(pt_suite, tmp_path):
    from napari_xrdphase.encoder import Encoder

    paths = [str(pt_suite / f"{n}.npz") for n in ("plain", "with_pt")]
    model = tmp_path / "enc.safetensors"
    result = run_cli(
        "pretrain", *paths, "--out", str(model), "--epochs", "1", "--batch-size", "32",
        "--method", "specrr", "--device", "cpu", "--ignore-phases", "pt",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "curves seen without the lines of Pt" in result.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch learns nothing: the check says so
        recorded = Encoder.load(model).config["ignored_phases"]
    assert recorded["phases"] == ["Pt"] and recorded["width_fwhm"] == 2.0

    labels, out = str(pt_suite / "labels.csv"), tmp_path / "pred.csv"
    # a classifier on that model ignores what the model ignored, and says so
    result = run_cli(
        "classify", *paths, "--labels", labels, "--out", str(out), "--model", str(model)
    )
    assert result.returncode == 0, result.stderr
    assert "curves seen without the lines of Pt" in result.stderr
    # the built-in encoder with the flag
    result = run_cli(
        "classify", *paths, "--labels", labels, "--out", str(out), "--overwrite",
        "--ignore-phases", "Pt,Ne", "--ignore-width", "1.5",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "without the lines of Pt, Ne (fitted lines subtracted; ± 1.5 FWHM cut" in result.stderr


def test_cli_unknown_phase_is_a_one_line_error(pt_suite, tmp_path):
    paths = [str(pt_suite / f"{n}.npz") for n in ("plain", "with_pt")]
    result = run_cli(
        "classify", *paths, "--labels", str(pt_suite / "labels.csv"),
        "--out", str(tmp_path / "p.csv"), "--ignore-phases", "Pt,Kryptonite",
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("xrdphase: error: unknown phase 'Kryptonite'; built in: Au, Pt")
    assert not (tmp_path / "p.csv").exists()


def test_every_classifying_command_takes_ignore_phases():
    from napari_xrdphase.cli import build_parser

    parser = build_parser()
    for argv in (
        ["pretrain", "run", "--out", "m.safetensors"],
        ["classify", "run", "--labels", "l.csv", "--out", "p.csv"],
        ["watch", "run", "--labels", "l.csv", "--out", "p.csv"],
        ["suggest", "run", "--out", "s.csv"],
        ["segment", "run", "--out", "s.csv"],
    ):
        args = parser.parse_args([*argv, "--ignore-phases", "Pt,Ne", "--pressure-from", "Pt"])
        assert args.ignore_phases == "Pt,Ne" and args.ignore_width == 2.0
        assert args.pressure_from == "Pt"
        assert parser.parse_args(argv).ignore_phases is None  # the default: see the help
    for command in ("suggest", "segment"):
        text = " ".join(run_cli(command, "--help").stdout.split())
        assert "(default: what the --model was pretrained with, else none; '' for none)" in text
    assert json.dumps(PhaseMask(("pt", "NE")).as_dict())  # names canonical, JSON-ready
    assert PhaseMask(("pt", "NE")).phases == ("Pt", "Ne")


# --- suggest and segment -----------------------------------------------------------------------


class RecordingEncoder:
    """A fixed random projection of the curves (ReLU) that keeps every curve it embeds."""

    def __init__(self, n_points, dim=16, seed=0):
        self.projection = np.random.default_rng(seed).standard_normal((n_points, dim))
        self.config = {}
        self.seen = []

    def embed(self, stack, batch_size=4096, device=None):
        self.seen.append(np.array(stack.curves()))
        return np.maximum(self.seen[-1] @ self.projection, 0.0).astype(np.float32)


def marker_and_sample(n=30):
    """A series whose sample never changes while the Pt lines move with pressure."""
    stack = marker_stack(np.linspace(2.0, 40.0, n))
    sample = 80 * np.exp(-0.5 * ((Q - 3.1) / SIGMA_Q) ** 2)
    noisy = np.random.default_rng(0).poisson(stack.curves() + sample).astype(np.float32)
    return stack.replace(intensities=noisy)


@pytest.mark.parametrize("command", ["suggest", "segment"])
def test_suggest_and_segment_embed_the_curves_without_the_ignored_lines(command):
    from napari_xrdphase.segment import propose_phases, strain_aligned
    from napari_xrdphase.suggest import suggest_curves

    stack = marker_and_sample()
    masked = mask_phases(stack, ["Pt"]).stack
    assert np.abs(masked.curves() - stack.curves()).max() > 20  # the lines were there to remove
    # segment embeds the curves strain-aligned along the series, suggest as they are
    seen_as = strain_aligned if command == "segment" else (lambda s: s)
    for ignore, expected in ((["Pt"], masked), ([], stack)):
        expected = seen_as(expected).curves()
        encoder = RecordingEncoder(Q.size)
        if command == "suggest":
            found = suggest_curves(encoder, [stack], None, 3, ignore_phases=ignore)
            assert len(found) == 3
        else:
            (segments,) = propose_phases(encoder, [stack], ignore_phases=ignore)
            assert len(segments.labels) == stack.n_curves
        (seen,) = encoder.seen
        np.testing.assert_allclose(seen, expected, rtol=1e-6)


def test_suggest_and_segment_default_to_the_mask_the_encoder_was_pretrained_with():
    from napari_xrdphase.segment import propose_phases, strain_aligned

    stack = marker_and_sample()
    encoder = RecordingEncoder(Q.size)
    encoder.config = {"ignored_phases": PhaseMask(("Pt",)).as_dict()}
    propose_phases(encoder, [stack])
    expected = strain_aligned(mask_phases(stack, ["Pt"]).stack).curves()
    np.testing.assert_allclose(encoder.seen[0], expected, rtol=1e-6)


@pytest.fixture(scope="module")
def pt_series_by_index(tmp_path_factory):
    """A simulated Fe series with Pt lines, numbered by index (no pressure log), with labels."""
    from napari_xrdphase.io import save_stack
    from napari_xrdphase.synth import simulate_series

    folder = tmp_path_factory.mktemp("pt_index")
    series = simulate_series("Fe", 10, 4, 10, n_points=1200, seed=3, name="fe", marker="Pt")
    indexed = series.stack.replace(
        variable=np.arange(24.0), variable_name="index", variable_unit=""
    )
    path = save_stack(indexed, folder / "fe.npz")
    rows = "".join(f"fe,{i},{series.labels[i]}\n" for i in (0, 2, 12, 21, 23))
    (folder / "labels.csv").write_text("dataset,index,label\n" + rows)
    return path, folder / "labels.csv"


def test_cli_suggest_and_segment_ignore_the_marker_at_its_fitted_pressure(
    pt_series_by_index, tmp_path
):
    path, labels = pt_series_by_index
    ignore = ("--pressure-from", "Pt", "--ignore-phases", "Pt")
    result = run_cli(
        "suggest", str(path), "--labels", str(labels), "--out", str(tmp_path / "s.csv"), *ignore
    )
    assert result.returncode == 0, result.stderr
    assert "fe: pressure from Pt (Fei2007)" in result.stderr
    assert "curves seen without the lines of Pt (fitted lines subtracted" in result.stderr
    assert "keep the lines" not in result.stderr  # every curve has its fitted pressure
    header = (tmp_path / "s.csv").read_text().splitlines()[0]
    assert header.startswith("dataset,index,pressure")
    result = run_cli("segment", str(path), "--out", str(tmp_path / "g.csv"), *ignore)
    assert result.returncode == 0, result.stderr
    assert "curves seen without the lines of Pt" in result.stderr
    assert len((tmp_path / "g.csv").read_text().splitlines()) == 25
    assert "GPa" in result.stdout


def test_cli_segment_without_a_pressure_keeps_the_lines_and_says_so(pt_series_by_index, tmp_path):
    path, _ = pt_series_by_index
    out = tmp_path / "g.csv"
    result = run_cli("segment", str(path), "--out", str(out), "--ignore-phases", "Pt")
    assert result.returncode == 0, result.stderr
    assert "warning: fe: 24 of 24 curves keep the lines of Pt: its external variable is" in (
        result.stderr
    )


@pytest.mark.parametrize("command", ["suggest", "segment"])
def test_cli_suggest_and_segment_name_the_known_phases_for_an_unknown_one(
    pt_series_by_index, tmp_path, command
):
    path, _ = pt_series_by_index
    out = tmp_path / "out.csv"
    result = run_cli(command, str(path), "--out", str(out), "--ignore-phases", "Kryptonite")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("xrdphase: error: unknown phase 'Kryptonite'; built in: Au, Pt")
    assert not out.exists()
