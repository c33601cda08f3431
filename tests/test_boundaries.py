import numpy as np
import pytest

from napari_xrdphase.boundaries import (
    BOUNDARY_COLUMNS,
    Boundary,
    boundaries_table,
    find_boundaries,
    phase_labels,
    ramp_directions,
)


def labels(text):
    """'BBBDDAA' -> ['before', 'before', 'before', 'during', 'during', 'after', 'after']."""
    names = {"B": "before", "D": "during", "A": "after", "x": "other"}
    return [names[c] for c in text]


def test_clean_two_phase_step_gives_the_interval_between_the_neighbouring_curves():
    pressure = np.arange(10) * 2.0  # 0, 2, ..., 18 GPa
    [boundary] = find_boundaries(pressure, labels("BBBBBBAAAA"), unit="GPa")
    assert (boundary.from_label, boundary.to_label) == ("before", "after")
    assert (boundary.index_before, boundary.index_after) == (5, 6)
    assert (boundary.low, boundary.high) == (10.0, 12.0)
    assert boundary.value == 11.0
    assert boundary.uncertainty == 1.0
    assert str(boundary) == "before → after at 11.0 ± 1.0 GPa"


def test_clean_three_phase_steps_give_two_exact_boundaries():
    pressure = np.linspace(0.0, 29.0, 30)
    found = find_boundaries(pressure, labels("B" * 12 + "D" * 8 + "A" * 10))
    assert [(b.from_label, b.to_label) for b in found] == [
        ("before", "during"),
        ("during", "after"),
    ]
    assert [(b.index_before, b.index_after) for b in found] == [(11, 12), (19, 20)]
    assert [(b.low, b.high, b.value) for b in found] == [(11.0, 12.0, 11.5), (19.0, 20.0, 19.5)]


def test_values_come_from_the_variable_not_from_row_numbers():
    temperature = np.array([300.0, 310.0, 325.0, 345.0, 370.0, 400.0, 435.0, 475.0])
    [boundary] = find_boundaries(temperature, labels("BBBBAAAA"), unit="K")
    assert (boundary.low, boundary.high, boundary.value) == (345.0, 370.0, 357.5)
    assert str(boundary) == "before → after at 358 ± 12 K"


def test_decompression_keeps_acquisition_order_and_orders_low_below_high():
    pressure = np.linspace(30.0, 0.0, 16)  # 30, 28, ..., 0 GPa
    [boundary] = find_boundaries(pressure, labels("A" * 7 + "B" * 9))
    assert (boundary.from_label, boundary.to_label) == ("after", "before")
    assert (boundary.index_before, boundary.index_after) == (6, 7)
    assert (boundary.low, boundary.high) == (16.0, 18.0)
    assert boundary.value == 17.0


def test_compression_then_decompression_gives_both_crossings_in_order():
    pressure = np.concatenate([np.arange(0.0, 20.0, 2.0), np.arange(20.0, 0.0, -2.0)])
    predicted = labels("B" * 6 + "A" * 8 + "B" * 6)
    found = find_boundaries(pressure, predicted)
    assert [(b.from_label, b.to_label, b.value) for b in found] == [
        ("before", "after", 11.0),
        ("after", "before", 13.0),
    ]


def test_a_single_flip_inside_a_phase_makes_no_boundary():
    pressure = np.arange(30.0)
    predicted = labels("B" * 15 + "A" * 15)
    predicted[5] = "after"
    predicted[24] = "during"
    [boundary] = find_boundaries(pressure, predicted)
    assert (boundary.index_before, boundary.index_after) == (14, 15)


def test_two_consecutive_flips_are_absorbed_but_three_make_a_phase():
    pressure = np.arange(30.0)
    two = labels("B" * 10 + "AA" + "B" * 5 + "A" * 13)
    assert len(find_boundaries(pressure, two)) == 1
    three = labels("B" * 10 + "AAA" + "B" * 4 + "A" * 13)
    assert [(b.index_before, b.index_after) for b in find_boundaries(pressure, three)] == [
        (9, 10),
        (12, 13),
        (16, 17),
    ]
    assert len(find_boundaries(pressure, three, min_run=4)) == 1


def test_flips_back_and_forth_near_the_transition_widen_its_interval():
    pressure = np.arange(20.0)
    clean = find_boundaries(pressure, labels("B" * 10 + "A" * 10))[0]
    noisy = find_boundaries(pressure, labels("B" * 8 + "ABAB" + "A" * 8))[0]
    assert (clean.index_before, clean.index_after) == (9, 10)
    assert (noisy.index_before, noisy.index_after) == (7, 12)
    assert (noisy.low, noisy.high, noisy.value) == (7.0, 12.0, 9.5)
    assert noisy.uncertainty > clean.uncertainty


def test_a_flip_far_from_the_transition_does_not_widen_it():
    pressure = np.arange(30.0)
    predicted = labels("B" * 15 + "A" * 15)
    predicted[10] = "after"  # 4 settled 'before' curves between it and the transition
    [boundary] = find_boundaries(pressure, predicted)
    assert (boundary.index_before, boundary.index_after) == (14, 15)
    predicted[12] = "after"  # now only 2 settled curves: it counts as part of the transition
    [boundary] = find_boundaries(pressure, predicted)
    assert (boundary.index_before, boundary.index_after) == (9, 15)


def test_a_curve_of_a_third_class_between_two_phases_widens_the_interval():
    [boundary] = find_boundaries(np.arange(12.0), labels("BBBBBBxAAAAA"))
    assert (boundary.from_label, boundary.to_label) in {("before", "after")}
    assert (boundary.index_before, boundary.index_after) == (5, 7)


def test_no_transition_gives_no_boundaries():
    assert find_boundaries(np.arange(10.0), labels("B" * 10)) == []
    assert find_boundaries(np.arange(10.0), labels("BBBBABBBBB")) == []
    assert find_boundaries(np.arange(1.0), labels("B")) == []
    assert find_boundaries(np.arange(0.0), []) == []


def test_probabilities_make_uncertain_flips_cheap_and_confident_runs_count():
    pressure = np.arange(12.0)
    classes = ["before", "after"]
    predicted = labels("BBBBAAABBBBB")
    # three 'after' curves that are barely so: relabelling them costs little
    unsure = np.array([[0.9, 0.1]] * 12)
    unsure[4:7] = [0.45, 0.55]
    assert find_boundaries(pressure, predicted, unsure, classes) == []
    sure = unsure.copy()
    sure[4:7] = [0.02, 0.98]
    assert len(find_boundaries(pressure, predicted, sure, classes)) == 2


def test_class_names_may_be_passed_without_probabilities():
    [boundary] = find_boundaries(np.arange(6.0), labels("BBBAAA"), classes=["before", "after"])
    assert boundary.to_label == "after"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variable": np.arange(5.0)}, "6 predicted labels for 5 values"),
        ({"variable": [0, 1, np.nan, 3, 4, 5]}, "NaN or inf"),
        ({"probabilities": np.full((6, 2), 0.5)}, "pass the classes"),
        ({"probabilities": np.full((6, 3), 0.3), "classes": ["before", "after"]}, "expected"),
        ({"classes": ["before", "during"]}, r"\['after'\] are not among the classes"),
        ({"min_run": 0}, "min_run must be at least 1"),
    ],
)
def test_inconsistent_inputs_raise_value_error(kwargs, message):
    arguments = {"variable": np.arange(6.0), "predicted": labels("BBBAAA"), **kwargs}
    with pytest.raises(ValueError, match=message):
        find_boundaries(**arguments)


def test_boundaries_table_has_the_csv_columns_and_plain_values():
    found = find_boundaries(np.arange(0.0, 20.0, 2.0), labels("BBBBBAAAAA"), unit="GPa")
    assert boundaries_table(found) == [
        {
            "from_label": "before",
            "to_label": "after",
            "value": 9.0,
            "low": 8.0,
            "high": 10.0,
            "index_before": 4,
            "index_after": 5,
        }
    ]
    assert tuple(boundaries_table(found)[0]) == BOUNDARY_COLUMNS


def test_boundary_string_rounds_value_to_the_uncertainty():
    boundary = Boundary("bcc", "hcp", 14.2371, 13.6371, 14.8371, 3, 4, unit="GPa")
    assert str(boundary) == "bcc → hcp at 14.2 ± 0.6 GPa"
    assert str(Boundary("a", "b", 14.25, 14.1, 14.4, 0, 1)) == "a → b at 14.25 ± 0.15"
    assert str(Boundary("a", "b", 5.0, 5.0, 5.0, 0, 1)) == "a → b at 5 ± 0"


def test_the_interval_spans_the_curves_that_keep_some_probability_of_the_other_phase():
    pressure = np.arange(12.0)
    classes = ["before", "after"]
    predicted = labels("BBBBBBAAAAAA")
    proba = np.array([[0.99, 0.01]] * 6 + [[0.01, 0.99]] * 6)
    [sharp] = find_boundaries(pressure, predicted, proba, classes)
    assert (sharp.low, sharp.high) == (5.0, 6.0)
    proba[3:6] = [0.7, 0.3]  # the last three 'before' curves keep 30 % of 'after'
    proba[6:8] = [0.15, 0.85]  # the first two 'after' curves 15 % of 'before'
    [wide] = find_boundaries(pressure, predicted, proba, classes)
    assert (wide.index_before, wide.index_after) == (3, 7)
    # the value stays where the predicted phase changes; the widening makes its ± larger
    assert (wide.low, wide.high, wide.value) == (3.0, 7.0, 5.5)
    assert wide.uncertainty == 2.5 and str(wide) == "before → after at 5.5 ± 2.5"
    assert wide.row == sharp.row == 5.5  # where the GUI draws the line: the change of phase
    [strict] = find_boundaries(pressure, predicted, proba, classes, min_probability=0.2)
    assert (strict.low, strict.high) == (3.0, 6.0)
    [off] = find_boundaries(pressure, predicted, proba, classes, min_probability=1.0)
    assert (off.low, off.high) == (5.0, 6.0)
    with pytest.raises(ValueError, match="min_probability must be in"):
        find_boundaries(pressure, predicted, proba, classes, min_probability=0)


# --- phases in order along the ramp --------------------------------------------------------------
ORDER = ("before", "during", "after")


def probabilities_of(text, confidence=0.8):
    """One row per letter of ``text`` (B/D/A), ``confidence`` on that class, the rest shared."""
    rows = np.full((len(text), 3), (1 - confidence) / 2)
    for i, c in enumerate(text):
        rows[i, "BDA".index(c)] = confidence
    return rows


def letters(names):
    return "".join({"before": "B", "during": "D", "after": "A"}[n] for n in names)


def test_ramp_directions_follow_compression_and_decompression_legs():
    up, down = np.linspace(0, 30, 6), np.linspace(24, 0, 5)
    np.testing.assert_array_equal(ramp_directions(up), [1] * 6)
    np.testing.assert_array_equal(ramp_directions(up[::-1]), [-1] * 6)
    # the step that reaches row 6 (30 → 24 GPa) is the first of the decompression leg
    np.testing.assert_array_equal(ramp_directions(np.r_[up, down]), [1] * 6 + [-1] * 5)
    np.testing.assert_array_equal(ramp_directions(np.full(5, 3.0)), [0] * 5)


def test_scatter_of_the_readings_below_the_turn_fraction_stays_in_one_leg():
    pressure = np.linspace(0, 30, 40) + np.tile([0.0, 1.5], 20)  # 0.7 GPa back every other step
    assert set(ramp_directions(pressure)) == {1}
    assert set(ramp_directions(pressure, turn_fraction=0.01)) == {1, -1}


def test_without_an_order_each_curve_gets_its_most_probable_class():
    p = probabilities_of("BBABDDBAA")
    assert letters(phase_labels(np.arange(9.0), p, ORDER)) == "BBABDDBAA"


def test_in_order_the_phases_never_step_back_on_compression():
    # a block of "after" at the lowest pressures and a "before" flip inside "during"
    text = "AAA" + "B" * 9 + "DDBDD" + "A" * 8
    found = letters(
        phase_labels(np.linspace(0, 30, len(text)), probabilities_of(text), ORDER, ORDER)
    )
    assert found == "BBB" + "B" * 9 + "DDDDD" + "A" * 8


def test_in_order_decompression_runs_the_other_way_and_a_round_trip_keeps_its_hysteresis():
    down = "A" * 8 + "DD" + "B" * 6
    pressure = np.linspace(30, 0, len(down))
    assert letters(phase_labels(pressure, probabilities_of(down), ORDER, ORDER)) == down
    # up and back down: the transition back happens at a lower pressure than the way up
    trip = "B" * 6 + "DD" + "A" * 8 + "A" * 5 + "DD" + "B" * 3
    pressure = np.r_[np.linspace(0, 30, 16), np.linspace(28, 0, 10)]
    assert letters(phase_labels(pressure, probabilities_of(trip), ORDER, ORDER)) == trip


def test_the_order_keeps_confident_curves_and_relabels_the_least_probable_ones():
    p = probabilities_of("BBBDBBDDDAAA")
    p[4] = [0.45, 0.55, 0.0]  # the odd "before" inside "during" is nearly a "during"
    found = letters(phase_labels(np.linspace(0, 11, 12), p, ORDER, ORDER))
    assert found == "BBBDDDDDDAAA"


def test_labelled_curves_keep_their_labels_in_order():
    text = "BBBBDDDDAAAA"
    p = probabilities_of(text)
    found = phase_labels(np.arange(12.0), p, ORDER, ORDER, labels={2: "during"})
    assert letters(found) == "BBDDDDDDAAAA"


def test_labels_against_the_order_or_a_constant_variable_give_the_most_probable_class():
    text = "BBADDDAB"
    p = probabilities_of(text)
    contradicting = {0: "after", 7: "before"}  # after then before on a compression leg
    assert letters(phase_labels(np.arange(8.0), p, ORDER, ORDER, labels=contradicting)) == text
    assert letters(phase_labels(np.full(8, 5.0), p, ORDER, ORDER)) == text


def test_an_order_that_is_not_of_the_classes_is_rejected():
    with pytest.raises(ValueError, match="not an ordering of the classes"):
        phase_labels(np.arange(3.0), probabilities_of("BDA"), ORDER, ("before", "after"))
    with pytest.raises(ValueError, match="expected \\(curves, 3\\)"):
        phase_labels(np.arange(3.0), np.ones((3, 2)) / 2, ORDER, ORDER)


def test_boundaries_in_phase_order_never_step_back():
    text = "B" * 8 + "A" * 4 + "B" * 6 + "DDD" + "A" * 8  # a confident block of "after" too early
    pressure = np.linspace(0, 28, len(text))
    p = probabilities_of(text, 0.9)
    free = find_boundaries(pressure, labels(text), p, ORDER)
    assert [(b.from_label, b.to_label) for b in free][:2] == [
        ("before", "after"),
        ("after", "before"),
    ]
    ordered_labels = phase_labels(pressure, p, ORDER, ORDER)
    found = find_boundaries(pressure, ordered_labels, p, ORDER, phase_order=ORDER)
    steps = [(b.from_label, b.to_label) for b in found]
    assert all(ORDER.index(b) > ORDER.index(a) for a, b in steps)
    assert steps[-1] == ("during", "after")


def test_soft_probabilities_widen_each_interval_only_within_its_two_phases():
    # a strongly regularised probe: every class keeps ≥ 15 % on every curve
    text = "B" * 10 + "D" * 6 + "A" * 10
    p = probabilities_of(text, confidence=0.7)
    pressure = np.linspace(0, 25, len(text))
    first, second = find_boundaries(pressure, labels(text), p, ORDER)
    assert (first.index_before, first.index_after) == (0, 15)
    assert (second.index_before, second.index_after) == (10, 25)
    assert first.low == 0.0 and second.high == 25.0 and first.high < second.high


def test_boundaries_of_labels_in_phase_order_are_where_those_labels_change():
    # near-uniform probabilities (a strongly regularised probe) and a two-curve "during": the
    # free segmentation would merge it away, but the labels a predictions file holds have it
    text = "B" * 10 + "DD" + "A" * 10
    pressure = np.linspace(0, 21, len(text))
    p = np.full((len(text), 3), 0.3)
    p[np.arange(len(text)), [ORDER.index(name) for name in labels(text)]] = 0.4
    ordered_labels = phase_labels(pressure, p, ORDER, ORDER)
    assert letters(ordered_labels) == text
    found = find_boundaries(pressure, ordered_labels, p, ORDER, phase_order=ORDER)
    assert [(b.from_label, b.to_label) for b in found] == [
        ("before", "during"),
        ("during", "after"),
    ]
    assert [b.row for b in found] == [9.5, 11.5]
    assert [b.value for b in found] == [pytest.approx(9.5), pytest.approx(11.5)]
    # the same labels without the order are segmented freely, and these weak runs merge
    assert len(find_boundaries(pressure, ordered_labels, p, ORDER)) < 2
