"""Suggestions: which curves to label next (built-in encoder, short simulated series)."""

import csv
import itertools
import warnings

import numpy as np
import pytest

from napari_xrdphase.cli import main
from napari_xrdphase.encoder import Encoder
from napari_xrdphase.io import save_stack
from napari_xrdphase.stack import StackError
from napari_xrdphase.suggest import suggest_curves
from napari_xrdphase.synth import simulate_series


@pytest.fixture(scope="module")
def series():
    encoder = Encoder.builtin()
    fe = simulate_series("Fe", 10, 4, 12, n_points=1500, seed=1, name="Fe")
    feo = simulate_series("FeO", 10, 6, 12, n_points=1500, seed=3, name="FeO")
    stacks = [fe.stack, feo.stack]
    embeddings = {s.name: encoder.embed(s) for s in stacks}
    truth = {"Fe": np.asarray(fe.labels), "FeO": np.asarray(feo.labels)}
    return encoder, stacks, embeddings, truth


def _fe_labels(truth):
    y = truth["Fe"]
    return {"Fe": {int(np.flatnonzero(y == c)[2]): str(c) for c in np.unique(y)}}


def test_suggestions_are_unlabelled_spread_and_the_same_for_the_same_seed(series):
    encoder, stacks, embeddings, truth = series
    labels = _fe_labels(truth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = suggest_curves(encoder, stacks, labels, 6, seed=4, embeddings=embeddings)
        again = suggest_curves(encoder, stacks, labels, 6, seed=4, embeddings=embeddings)
    assert first == again and len(first) == 6
    assert not any(s.index in labels.get(s.dataset, {}) for s in first)
    assert len({(s.dataset, s.index) for s in first}) == 6
    assert {s.dataset for s in first} == {"Fe", "FeO"}  # the unlabelled series is asked about
    for name in ("Fe", "FeO"):  # never five neighbours: picks in a series lie apart
        rows = sorted(s.index for s in first if s.dataset == name)
        assert all(b - a >= 2 for a, b in itertools.pairwise(rows))
    assert all(s.predicted in ("before", "during", "after") for s in first)
    assert all(0 < s.confidence <= 1 and s.novelty >= 0 for s in first)


def test_with_no_labels_curves_are_spread_over_each_series(series):
    encoder, stacks, embeddings, truth = series
    picks = suggest_curves(encoder, stacks, None, 6, seed=0, embeddings=embeddings)
    assert len(picks) == 6 and [p.dataset for p in picks[:2]] == ["Fe", "FeO"]  # alternating
    for name in ("Fe", "FeO"):
        rows = [p.index for p in picks if p.dataset == name]
        assert len(rows) == 3
        # one group of similar curves each: at least the first and the last phase are asked
        assert {"before", "after"} <= {str(truth[name][r]) for r in rows}
    assert all(p.predicted == "" and np.isnan(p.confidence) for p in picks)
    assert picks == suggest_curves(encoder, stacks, {}, 6, seed=0, embeddings=embeddings)


def test_a_bad_count_is_a_one_line_error(series):
    encoder, stacks, embeddings, _ = series
    with pytest.raises(StackError, match="whole number ≥ 1"):
        suggest_curves(encoder, stacks, None, 0, embeddings=embeddings)


def test_suggest_command_writes_the_csv_and_keeps_an_existing_one(series, tmp_path, capsys):
    _, stacks, _, _ = series
    paths = [str(save_stack(s, tmp_path / f"{s.name}.npz")) for s in stacks]
    out = tmp_path / "suggest.csv"
    assert main(["suggest", *paths, "--out", str(out), "-n", "4"]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["dataset", "index", "pressure", "predicted", "confidence", "novelty"]
    assert len(rows) == 4 and {r["dataset"] for r in rows} == {"Fe", "FeO"}
    assert "no labels yet" in capsys.readouterr().err
    assert main(["suggest", *paths, "--out", str(out)]) == 2
    assert "suggest.csv" in capsys.readouterr().err
