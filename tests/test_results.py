"""One source of truth: the labels, the boundaries and the printed summary of a series agree."""

import csv
import types
from collections import Counter

import numpy as np
import pytest

from napari_xrdphase.cli import main
from napari_xrdphase.results import classify_series, describe_series
from napari_xrdphase.stack import SpectraStack


def ramp_stack(n=30, name="ramp"):
    axis = np.linspace(5, 25, 50)
    return SpectraStack(np.ones((n, 50)), axis, variable=np.linspace(0, 29, n), name=name)


def classifier(order=("weak", "hump")):
    return types.SimpleNamespace(classes=("hump", "weak"), phase_order=order)


def test_labels_that_contradict_the_phase_order_give_per_curve_labels_and_say_why():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1, 1], size=30)
    labels = {2: "weak", 12: "hump", 22: "weak"}
    result = classify_series(classifier(), ramp_stack(), proba, labels)
    assert "contradict the phase order weak → hump" in result.note
    assert "'weak' at curve 22 comes after 'hump' at curve 12" in result.note
    np.testing.assert_array_equal(result.labels, np.array(["hump", "weak"])[proba.argmax(1)])
    assert result.describe()[1] == f"  note: {result.note}"


def test_labels_that_follow_the_order_keep_it_and_the_boundary_is_where_the_labels_change():
    proba = np.tile([0.4, 0.6], (30, 1))  # every curve leans to "weak"
    proba[20:] = [0.9, 0.1]
    labels = {2: "weak", 25: "hump"}
    result = classify_series(classifier(), ramp_stack(), proba, labels)
    assert result.note == ""
    assert list(result.labels[:20]) == ["weak"] * 20 and list(result.labels[20:]) == ["hump"] * 10
    (boundary,) = result.boundaries
    assert (boundary.from_label, boundary.to_label) == ("weak", "hump")
    assert boundary.index_before <= 19 < 20 <= boundary.index_after


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["hump"] * 30, "  no transition: every curve is 'hump'"),
        (
            ["hump", "weak"] * 15,
            "  no boundary: the phases alternate without a settled run of curves",
        ),
    ],
)
def test_the_summary_never_claims_more_than_the_labels_say(labels, expected):
    lines = describe_series("ramp", np.array(labels), [])
    assert lines[0] == "ramp:" and lines[-1].startswith(expected)
    if len(set(labels)) > 1:
        assert "hump 15, weak 15" in lines[-1]


def test_a_class_labelled_on_both_sides_of_another_gives_no_order():
    from napari_xrdphase.classify import check_labels, labelled_phase_order

    stack = ramp_stack()
    labelled = check_labels([stack], {"ramp": {2: "weak", 12: "hump", 22: "weak", 24: "weak"}})
    order, why = labelled_phase_order(labelled)
    assert order is None and "contradict any single phase order" in why
    other = ramp_stack(name="other")
    labelled = check_labels(
        [stack, other],
        {"ramp": {2: "weak", 12: "hump", 22: "weak"}, "other": {1: "weak", 20: "hump"}},
    )
    order, why = labelled_phase_order(labelled)
    assert order == ("weak", "hump") and "labels of ramp contradict the phase order" in why


def test_alternating_labels_give_a_summary_that_agrees_with_the_predictions_csv(
    tmp_path, capsys, one_torch_thread
):
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.io import save_stack
    from napari_xrdphase.synth import simulate_series

    series = simulate_series("Fe", 10, 4, 16, n_points=600, seed=2, name="alt")
    data = save_stack(series.stack, tmp_path / "alt.npz")
    labels = tmp_path / "labels.csv"
    rows = [(2, "weak"), (8, "hump"), (14, "weak"), (20, "hump"), (26, "weak"), (28, "weak")]
    labels.write_text("dataset,index,label\n" + "".join(f"alt,{i},{c}\n" for i, c in rows))
    model = Encoder.random(seed=1).save(tmp_path / "model.safetensors")
    outputs = {}
    for mode in ("ordered", "unordered"):
        out = tmp_path / f"{mode}.csv"
        argv = ["classify", str(data), "--labels", str(labels), "--model", str(model)]
        argv += ["--out", str(out)] + (["--unordered"] if mode == "unordered" else [])
        assert main(argv) == 0
        printed = capsys.readouterr()
        with open(out, newline="") as handle:
            csv_labels = [row["label"] for row in csv.DictReader(handle)]
        outputs[mode] = csv_labels
        counts = Counter(csv_labels)
        summary = printed.out
        if len(counts) == 1:
            assert f"every curve is {csv_labels[0]!r}" in summary
        else:
            assert "every curve is" not in summary
            assert ", ".join(f"{c} {n}" for c, n in counts.items()) in summary
        assert "phases in order of rising" not in printed.err
        if mode == "ordered":
            assert "contradict any single phase order" in printed.err
    # the ordered run said why it labelled each curve on its own: the same CSV as --unordered
    assert outputs["ordered"] == outputs["unordered"]
