"""Pretraining from the built-in encoder: start, anti-forgetting term, stopping rule, reports."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_xrdphase import training  # noqa: E402
from napari_xrdphase.encoder import Encoder  # noqa: E402
from napari_xrdphase.separation import separation_score  # noqa: E402
from napari_xrdphase.synth import simulate_series  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def two_series(n_points: int = 600):
    """Two short Fe series in q-convertible 2θ (with wavelengths), compression and decompression."""
    a = simulate_series("Fe", 8, 4, 8, n_points=n_points, seed=1, name="a").stack
    b = simulate_series("Fe", 8, 4, 8, n_points=n_points, seed=2, name="b").stack
    return [a, b]


def test_fine_tuning_starts_from_the_builtin_weights_with_no_pull_at_the_first_step():
    run = training._prepare_run(
        two_series(), "xrdphase", epochs=1, batch_size=10, c=0.0, k_augmentations=2,
        input_length=1024, augmentations=None, lr=None, device="cpu", seed=0, init="builtin",
    )  # fmt: skip
    training._build_training(run)
    builtin = Encoder.builtin().model.state_dict()
    for name, value in run.model.backbone.state_dict().items():
        assert torch.equal(value, builtin[name]), name
    assert run.lr == training.FINETUNE_LR
    assert run.window["axis_range"] == Encoder.builtin().config["preprocessing"]["axis_range"]
    batch = run.curves[:10]
    views = run.augment(batch.repeat(2, 1)).reshape(2, 10, -1)
    losses = run.model.losses(views, run.bins[:10], None, run.sampling_generator)
    assert (
        float(losses["anchor"].detach()) == 0.0
    )  # the weights before the first update are the built-in
    losses["total"].backward()
    assert any(p.grad is not None for p in run.model.backbone.parameters())


def test_the_stopping_rule_stops_on_a_plateau_and_keeps_the_best_epoch(monkeypatch):
    monkeypatch.setattr(training, "FINETUNE_PATIENCE", 1)
    encoder = training.pretrain(
        two_series(), epochs=6, batch_size=10, k_augmentations=2, device="cpu", init="builtin",
        lr=1e-9,  # the weights barely move: the scores plateau
    )  # fmt: skip
    record = encoder.config["fine_tuning"]
    trained = (
        encoder.config["training"]["steps_completed"]
        // encoder.config["training"]["steps_per_epoch"]
    )
    assert record["stopped_by_rule"] is True
    assert trained < 6
    assert trained == record["chosen_epoch"] + 1  # patience 1: one epoch without improvement
    scores = record["separation_per_epoch"]
    assert len(scores) == trained + 1
    assert scores[record["chosen_epoch"]] == max(scores)
    comparison = encoder.config["builtin_comparison"]
    assert comparison["builtin_separation"] == pytest.approx(scores[0])
    assert "built-in" in comparison["message"]
    assert encoder.config["training"]["initial_weights"] == "builtin"


def test_a_fine_tuning_that_never_beats_the_builtin_encoder_returns_its_weights_and_says_so(
    monkeypatch,
):
    monkeypatch.setattr(training, "FINETUNE_PATIENCE", 1)
    # a fine-tuning scored as worse than the built-in encoder at every epoch: epoch 0 is kept
    real_score = training._Stopping.score
    calls = []

    def falling(self, run):
        calls.append(1)
        return real_score(self, run) - (0.0 if len(calls) == 1 else 10.0)

    monkeypatch.setattr(training._Stopping, "score", falling)
    encoder = training.pretrain(
        two_series(), epochs=3, batch_size=10, k_augmentations=2, device="cpu", init="builtin"
    )
    assert encoder.config["fine_tuning"]["chosen_epoch"] == 0
    builtin = Encoder.builtin().model.state_dict()
    for name, value in encoder.model.state_dict().items():
        assert torch.equal(value, builtin[name]), name
    assert "use the built-in encoder" in encoder.config["builtin_comparison"]["message"]


def test_init_random_gives_the_weights_of_the_code_before_fine_tuning_existed():
    # the sums were printed by the same run on commit 4d380ed (before init= existed)
    encoder = training.pretrain(
        two_series(), epochs=1, batch_size=10, k_augmentations=2, input_length=300,
        device="cpu", seed=3, init="random",
    )  # fmt: skip
    weights = torch.cat(
        [
            v.double().reshape(-1)
            for _, v in sorted(encoder.model.state_dict().items())
            if v.is_floating_point()
        ]
    )
    assert float(weights.abs().sum()) == pytest.approx(1844.1201768100518, rel=1e-6)
    assert float(weights.pow(2).sum()) == pytest.approx(386.4346455385621, rel=1e-6)
    assert encoder.config["training"]["initial_weights"] == "random"
    assert "fine_tuning" not in encoder.config
    assert set(encoder.config["builtin_comparison"]) >= {"separation", "builtin_separation"}


def test_init_builtin_refuses_series_it_cannot_read_in_q():
    from napari_xrdphase.stack import SpectraStack

    axis = np.linspace(5, 25, 400)
    stack = SpectraStack(np.random.default_rng(0).random((10, 400)), axis, name="no_wavelength")
    with pytest.raises(ValueError, match="wavelength"):
        training.pretrain([stack], epochs=1, batch_size=4, device="cpu", init="builtin")
    with pytest.raises(ValueError, match="init must be"):
        training.pretrain([stack], epochs=1, batch_size=4, device="cpu", init="pretrained")


def test_separation_score_is_one_for_an_embedding_of_the_pressure_and_near_zero_for_noise():
    pressure = np.tile(np.linspace(0, 40, 30), 2)
    series = np.repeat([0, 1], 30)
    ordered = np.c_[pressure, np.zeros(60)]
    # k = 5 neighbours span ±2 pressure steps: 1 − 1.7 / 13.8
    assert separation_score(ordered, pressure, series) > 0.85
    noise = np.random.default_rng(0).standard_normal((60, 8))
    assert abs(separation_score(noise, pressure, series)) < 0.25
    one_series = separation_score(ordered[:30], pressure[:30], series[:30])
    assert one_series > 0.6


def test_cli_pretrain_reports_the_comparison_and_classify_compares_both_encoders(tmp_path, capsys):
    from napari_xrdphase.cli import main
    from napari_xrdphase.io import save_stack, write_labels_csv

    stacks = two_series()
    paths = []
    for stack in stacks:
        paths.append(tmp_path / f"{stack.name}.npz")
        save_stack(stack, paths[-1], format="npz")
    model = tmp_path / "model.safetensors"
    argv = ["pretrain", *map(str, paths), "--out", str(model), "--epochs", "1"]
    assert main([*argv, "--batch-size", "10", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("compared with the built-in encoder:"))
    assert "separation" in line and "vs built-in" in line
    assert Encoder.load(model).config["fine_tuning"]["chosen_epoch"] in (0, 1)
    labels = {s.name: {0: "before", 1: "before", 2: "before", 17: "after", 18: "after",
                       19: "after", 9: "during", 10: "during"} for s in stacks}  # fmt: skip
    write_labels_csv(tmp_path / "labels.csv", labels)
    argv = ["classify", *map(str, paths), "--labels", str(tmp_path / "labels.csv")]
    argv += ["--out", str(tmp_path / "pred.csv"), "--model", str(model), "--compare-encoders"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"compare: {model}: cross-validated accuracy" in err
    assert "compare: built-in encoder: cross-validated accuracy" in err
    assert "compare: better on your labelled curves:" in err
