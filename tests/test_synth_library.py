"""The broad training library: seeds, structure types, line rules, labels, the left-out types."""

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest

from napari_xrdphase.synth_library import (
    LEFT_OUT_TYPES,
    STRUCTURE_TYPES,
    TRAINING_TYPES,
    crystal_lines,
    random_series,
    training_library,
    type_sites,
)

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location(
        "train_builtin_encoder", ROOT / "scripts" / "train_builtin_encoder.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_same_seed_gives_the_same_series_and_another_seed_another():
    a, b = random_series(123), random_series(123)
    np.testing.assert_array_equal(a.stack.intensities, b.stack.intensities)
    np.testing.assert_array_equal(a.stack.variable, b.stack.variable)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.stack.metadata == b.stack.metadata
    c = random_series(124)
    assert c.stack.intensities.shape != a.stack.intensities.shape or not np.array_equal(
        c.stack.intensities, a.stack.intensities
    )


def test_the_library_starts_a_series_from_every_training_type_and_never_a_left_out_one():
    library = training_library(2 * len(TRAINING_TYPES), seed=3)
    first = {s.stack.metadata["low_type"] for s in library}
    assert first == set(TRAINING_TYPES)
    used = {t for s in library for t in s.stack.metadata["types"]}
    assert used <= set(TRAINING_TYPES)
    assert not used & set(LEFT_OUT_TYPES)
    assert set(TRAINING_TYPES) | set(LEFT_OUT_TYPES) == set(STRUCTURE_TYPES)
    assert {s.stack.metadata["transition"] for s in library} == {"first_order", "continuous"}
    assert {s.stack.metadata["kind"] for s in library} == {"pressure", "temperature"}


def test_a_type_without_a_distortion_and_nothing_to_go_to_is_refused():
    with pytest.raises(ValueError, match="no continuous distortion"):
        random_series(0, types=("perovskite-tetragonal",))
    with pytest.raises(ValueError, match="unknown structure type"):
        random_series(0, types=("nacl",))


def test_a_library_series_is_a_stack_the_built_in_window_fits():
    series = random_series(7)
    stack = series.stack
    assert stack.intensities.shape == (stack.variable.size, stack.axis.size)
    assert np.isfinite(stack.intensities).all() and stack.intensities.min() >= 0
    q = 4 * np.pi * np.sin(np.radians(stack.axis / 2)) / stack.wavelength
    assert q[0] < 2.2 and q[-1] > 4.9


@pytest.mark.parametrize(
    ("name", "roles", "counts"),
    [
        ("fcc", {"A": "Cu"}, {"Cu": 4}),
        ("bcc", {"A": "Fe"}, {"Fe": 2}),
        ("hcp", {"A": "Mg"}, {"Mg": 2}),
        ("rocksalt", {"A": "Na", "X": "Cl"}, {"Na": 4, "Cl": 4}),
        ("fluorite", {"A": "Ca", "X": "F"}, {"Ca": 4, "F": 8}),
        ("perovskite", {"A": "Sr", "B": "Ti", "X": "O"}, {"Sr": 1, "Ti": 1, "O": 3}),
        ("rutile", {"A": "Ti", "X": "O"}, {"Ti": 2, "O": 4}),
        ("wurtzite", {"A": "Zn", "X": "O"}, {"Zn": 2, "O": 2}),
        ("spinel", {"A": "Mg", "B": "Al", "X": "O"}, {"Mg": 8, "Al": 16, "O": 32}),
        ("layered-CdI2", {"A": "Cd", "X": "I"}, {"Cd": 1, "I": 2}),
    ],
)
def test_space_group_orbits_give_the_atoms_of_the_conventional_cell(name, roles, counts):
    structure = STRUCTURE_TYPES[name]
    parameters = {p: (lo + hi) / 2 for p, lo, hi in structure.parameters}
    sites = type_sites(structure, roles, parameters)
    found = {el: sum(1 for e, _ in sites if e == el) for el in counts}
    assert found == counts


def test_bcc_and_fcc_lines_follow_their_extinction_rules():
    bcc = crystal_lines("bcc", {"A": "Fe"}, 2.87, d_min=0.7)
    assert all(sum(r.hkl) % 2 == 0 for r in bcc)
    assert bcc[0].hkl == (1, 1, 0) and bcc[0].multiplicity == 12
    fcc = crystal_lines("fcc", {"A": "Cu"}, 3.61, d_min=0.7)
    assert all(len({v % 2 for v in r.hkl}) == 1 for r in fcc)
    assert [(tuple(sorted(map(abs, r.hkl))), r.multiplicity) for r in fcc[:2]] == [
        ((1, 1, 1), 8),
        ((0, 0, 2), 6),
    ]
    # rock salt keeps fcc's rule, CsCl is primitive: (100) appears
    assert any(
        sorted(map(abs, r.hkl)) == [0, 0, 1]
        for r in crystal_lines("cscl", {"A": "Cs", "X": "Cl"}, 4.1)
    )
    assert all(
        len({v % 2 for v in r.hkl}) == 1
        for r in crystal_lines("rocksalt", {"A": "Na", "X": "Cl"}, 5.64)
    )


def test_a_tetragonal_distortion_splits_cubic_200_but_not_111():
    cubic = crystal_lines("fcc", {"A": "Cu"}, 3.61, d_min=1.2)
    split = crystal_lines("fcc", {"A": "Cu"}, 3.61, distortion="tetragonal", strain=0.02, d_min=1.2)
    assert len(cubic) == 3 and len(split) == 5  # (111), (200), (220) → (111), 2 × (200), 2 × (220)
    assert split[0].multiplicity == 8  # (111) stays one line
    d_200 = cubic[1].d
    pair = [r for r in split if abs(r.d - d_200) < 0.05 * d_200]
    assert sorted(r.multiplicity for r in pair) == [2, 4]
    long_axis = max(pair, key=lambda r: r.d)
    assert long_axis.multiplicity == 2 and long_axis.hkl[2] != 0  # (002) along the long c
    # the rhombohedral distortion splits (111) into 2 + 6 and keeps (200) one line
    rhombohedral = crystal_lines(
        "rocksalt", {"A": "Fe", "X": "O"}, 4.3, distortion="rhombohedral", strain=0.02, d_min=2.0
    )
    assert [r.multiplicity for r in rhombohedral] == [2, 6, 6]


@pytest.mark.parametrize("seed", range(8))
def test_labels_follow_the_transition_along_the_variable(seed):
    series = random_series(seed, curves=(30, 60))
    meta, labels, variable = series.stack.metadata, series.labels, series.stack.variable
    low, high = sorted((meta["transition_start"], meta["transition_end"]))
    assert variable[labels == "before"].max() < low + 1e-9
    assert variable[labels == "after"].min() > high - 1e-9
    during = variable[labels == "during"]
    assert ((during > low) & (during < high)).all()
    # in acquisition order the states come in one block each: before → during → after or back
    changes = [labels[0]] + [b for a, b in itertools.pairwise(labels) if a != b]
    increasing = meta["direction"] == "increasing"
    assert changes == (
        ["before", "during", "after"] if increasing else ["after", "during", "before"]
    )
    assert np.all(np.diff(variable) > 0) == increasing


def test_a_tiny_run_of_the_training_script_trains_on_the_library_and_repeats_itself():
    script = _script()
    first = script.train_builtin_encoder("library", n_series=2, epochs=1)
    second = script.train_builtin_encoder("library", n_series=2, epochs=1)
    builtin = first.config["builtin"]
    assert builtin["data"] == "napari_xrdphase.synth_library.training_library(2, seed=1000)"
    assert builtin["left_out_types"] == list(LEFT_OUT_TYPES)
    assert builtin["script"] == "scripts/train_builtin_encoder.py"
    assert first.config["training"]["epochs_completed"] == 1
    series = random_series(5, curves=(20, 30))
    a, b = first.embed(series.stack), second.embed(series.stack)
    assert a.shape == (series.stack.n_curves, first.feature_dim)
    np.testing.assert_array_equal(a, b)


def test_the_script_s_default_recipe_is_the_shipped_encoder_s():
    from napari_xrdphase.encoder import Encoder

    script = _script()
    _, description = script.training_series(script.SHIPPED_DATA)
    builtin = Encoder.builtin().config
    assert description == builtin["builtin"]["data"]
    assert script.EPOCHS[script.SHIPPED_DATA] == builtin["training"]["epochs"]
    with pytest.raises(ValueError, match="unknown data"):
        script.training_series("nothing")
