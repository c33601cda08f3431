"""The built-in encoder on a real measured series: a BaTiO3 temperature ramp (tests/data/batio3_ramp).

Run as a user would: two labelled curves per phase, far from the transitions, and
`xrdphase classify` with the shipped encoder. The published analysis puts the transitions at
185, 280 and 400 K, each on a measured curve (5 K apart); a boundary lies midway between two
curves, so it is "within one curve" when at most one curve lies between it and the published
temperature.
"""

import csv

import numpy as np
import pytest

from benchmarks.real_series import (
    DATA,
    PUBLISHED_K,
    WAVELENGTH,
    boundaries_from_labels,
    classify_with_builtin,
    curves_between,
    far_labels,
    published_phase,
)
from napari_xrdphase.cli import main
from napari_xrdphase.io import load_stack, write_labels_csv

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_shipped_batio3_ramp_is_the_documented_series():
    stack = load_stack(DATA)
    assert stack.intensities.shape == (60, 3488)
    assert (stack.variable_name, stack.variable_unit) == ("temperature", "K")
    np.testing.assert_array_equal(stack.variable, np.arange(150.0, 446.0, 5.0))
    assert stack.sources[0] == "BTO_150K_tth.npy"
    assert stack.wavelength is None  # the source states none; the README says what to give


def test_user_labels_are_far_from_every_published_transition():
    labels = far_labels(np.arange(150.0, 446.0, 5.0), 2)
    temperatures = {150.0 + 5 * row: phase for row, phase in labels.items()}
    assert temperatures == {
        150: "R", 155: "R", 230: "O", 235: "O", 335: "T", 340: "T", 440: "C", 445: "C"
    }  # fmt: skip


def test_builtin_encoder_places_batio3_transitions_within_one_curve_of_published(tmp_path):
    temperature = load_stack(DATA).variable
    labels_csv = write_labels_csv(
        tmp_path / "labels.csv", {"batio3_ramp": far_labels(temperature, 2)}
    )
    out = tmp_path / "predictions.csv"

    code = main(
        ["classify", str(DATA), "--labels", str(labels_csv), "--out", str(out),
         "--wavelength", str(WAVELENGTH)]
    )  # fmt: skip

    assert code == 0
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    predicted = np.array([row["label"] for row in rows])
    np.testing.assert_array_equal([float(row["temperature"]) for row in rows], temperature)
    found = boundaries_from_labels(temperature, predicted)
    assert not np.isnan(found).any(), f"phases not in the order R, O, T, C: {predicted}"
    for boundary, published in zip(found, PUBLISHED_K, strict=True):
        between = curves_between(temperature, boundary, published)
        assert between <= 1, (
            f"boundary at {boundary} K, published {published} K: {between} curves apart"
        )
    # every curve farther than one curve from a published transition has the published phase
    truth = published_phase(temperature)
    near = np.min(np.abs(temperature[:, None] - np.array(PUBLISHED_K)), axis=1) <= 5.0
    np.testing.assert_array_equal(predicted[~near], truth[~near])


@pytest.mark.xfail(
    strict=True,
    reason="the boundaries move by up to 2 curves within the wavelength's uncertainty (the source "
    "states none; estimated 0.167 Å): T → C at 412.5 K with 0.166 Å and 387.5 K with 0.168 Å, "
    "published 400 K (docs/benchmarks.md, Real measured series)",
)
@pytest.mark.parametrize("wavelength", [0.166, 0.168])
def test_batio3_transitions_stay_within_one_curve_across_the_wavelength_estimate(wavelength):
    from napari_xrdphase.encoder import Encoder

    stack = load_stack(DATA)
    stack.wavelength = wavelength
    scored = classify_with_builtin(stack, Encoder.builtin(), far_labels(stack.variable, 2), seed=0)

    between = [item["curves_between"] for item in scored["transitions"]]
    assert None not in between and max(between) <= 1, f"curves between: {between}"
