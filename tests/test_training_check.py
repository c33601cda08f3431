"""The end-of-training check: chance losses, collapsed embeddings, too few curves."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from napari_xrdphase.training_check import (
    MIN_CURVES,
    PretrainingWarning,
    TrainingCheck,
    chance_losses,
    check_curve_count,
    check_embeddings,
    check_losses,
    check_training,
    embedding_statistics,
    external_bin_entropy,
    piece_class_entropy,
)

torch = pytest.importorskip("torch")


# --- chance values, against the losses of ssl.py -------------------------------------------------
def test_inter_and_moco_chance_values_are_the_ssl_losses_of_an_encoder_that_learned_nothing():
    from napari_xrdphase.ssl import MomentumContrast, inter_sample_loss

    features = torch.nn.functional.normalize(torch.randn(4, 6, 8), dim=2)
    # a head that cannot tell the pairs apart outputs the same logit for all of them
    assert float(inter_sample_loss(lambda pairs: torch.zeros(len(pairs)), features)) == (
        pytest.approx(chance_losses(["inter"])["inter"])
    )
    moco = MomentumContrast(torch.nn.Linear(8, 8), queue_size=30, dim=8)
    moco.queue.copy_(torch.nn.functional.normalize(torch.ones(30, 8), dim=1))
    same = moco.queue[:5].clone()  # collapsed: every query, key and queued key alike
    symmetric = 2 * float(moco.contrastive_loss(same, same))
    assert symmetric == pytest.approx(chance_losses([], uses_moco=True, queue_size=30)["moco"])


@pytest.mark.parametrize("length", [300, 1024])
def test_intra_chance_is_the_entropy_of_the_distance_classes_ssl_assigns(length):
    from napari_xrdphase.ssl import piece_distance_labels

    width = int(0.2 * length)
    starts = torch.arange(length - width)
    first, second = torch.meshgrid(starts, starts, indexing="ij")
    labels = piece_distance_labels(first.reshape(-1), second.reshape(-1), length, 5)
    p = torch.bincount(labels, minlength=5).double() / labels.numel()
    entropy = float(-(p * p.log()).sum())
    assert piece_class_entropy(length, 0.2, 5) == pytest.approx(entropy, rel=1e-12)
    assert entropy < math.log(5)  # near pieces are the most common class


def test_external_chance_is_ln_5_for_series_that_divide_evenly_and_a_little_less_otherwise():
    from napari_xrdphase.ssl import series_bin_labels

    assert external_bin_entropy([50], 5) == pytest.approx(math.log(5))
    assert external_bin_entropy([50, 25], 5) == pytest.approx(math.log(5))
    bins = torch.cat([series_bin_labels(24, 5), series_bin_labels(7, 5)])
    p = torch.bincount(bins).double() / len(bins)
    assert external_bin_entropy([24, 7], 5) == pytest.approx(float(-(p * p.log()).sum()))
    assert external_bin_entropy([24, 7], 5) < math.log(5)


# --- losses --------------------------------------------------------------------------------------
def builtin_config():
    from napari_xrdphase.encoder import Encoder

    return Encoder.builtin().config


def truncated(config, epochs):
    training = dict(config["training"], epoch_losses=config["training"]["epoch_losses"][:epochs])
    return dict(config, training=dict(training, steps_completed=12 * epochs))


def test_the_built_in_encoders_recorded_losses_leave_chance_only_after_its_first_epochs():
    config = builtin_config()  # 60 epochs of 12 steps on the paper suite's 1516 curves
    assert check_training(truncated(config, 8)).kinds == ("chance_losses",)
    # by epoch 12 the external loss has moved (inter still at ln 2): learning, not chance
    assert check_training(truncated(config, 12)).ok
    final = check_training(config)
    assert final.ok and final.learned
    assert final.final_losses["inter"] < 0.6 * math.log(2)
    assert final.chance_losses["external"] == pytest.approx(math.log(5), abs=0.01)


def test_a_small_run_that_learned_is_not_at_chance_but_has_few_curves():
    # recorded: xrdphase on simulate_series("Fe", 20, 10, 20, n_points=1000, seed=1), batch 16,
    # input length 300, 40 epochs (160 steps): the last five epochs
    last = [
        {"spread": 0.867, "inter": 0.591, "external": 1.427, "intra": 1.461},
        {"spread": 0.867, "inter": 0.600, "external": 1.428, "intra": 1.419},
        {"spread": 0.865, "inter": 0.595, "external": 1.430, "intra": 1.459},
        {"spread": 0.868, "inter": 0.585, "external": 1.428, "intra": 1.440},
        {"spread": 0.864, "inter": 0.592, "external": 1.432, "intra": 1.464},
    ]
    config = {
        "training": {
            "objectives": ["inter", "intra", "external"],
            "moco_weight": 0.0,
            "input_length": 300,
            "epoch_losses": [{"inter": 0.693, "external": 1.61, "intra": 1.6}] * 35 + last,
            "steps_completed": 160,
        },
        "data": {"n_curves": 50, "stacks": [{"n_curves": 50}]},
    }
    check = check_training(config)
    assert check.kinds == ("few_curves",) and check.learned
    assert check.final_losses["external"] == pytest.approx(1.429, abs=1e-3)


def test_a_loss_above_chance_or_not_a_number_has_not_learned_either():
    chance = {"inter": math.log(2), "external": math.log(5)}
    assert check_losses({"inter": 0.70, "external": 1.65}, chance) is not None
    assert check_losses({"inter": float("nan"), "external": 1.6}, chance) is not None
    assert check_losses({"inter": 0.60, "external": 1.6}, chance) is None  # inter learned


def test_the_intra_loss_alone_does_not_count_as_learning():
    chance = chance_losses(["inter", "intra", "external"], series_sizes=[50])
    final = {"inter": 0.693, "external": 1.605, "intra": 1.2}
    finding = check_losses(final, chance, steps=60)
    assert finding is not None and finding.kind == "chance_losses"
    assert "only the intra loss moved" in finding.message
    assert "ln 2 = 0.693" in finding.message and "ln 5 = 1.609" in finding.message
    assert "built-in encoder" in finding.message and "60 optimisation steps" in finding.message


def test_moco_alone_is_judged_on_its_own_loss():
    chance = chance_losses([], uses_moco=True, queue_size=100)
    assert check_losses({"moco": chance["moco"] * 0.99}, chance) is not None
    assert check_losses({"moco": chance["moco"] * 0.8}, chance) is None


def test_only_the_last_epochs_are_averaged():
    config = {
        "training": {
            "objectives": ["inter"],
            "moco_weight": 0.0,
            "epoch_losses": [{"inter": 0.3}] * 12 + [{"inter": 0.69}] * 4,
        },
        "data": {"n_curves": 1000, "stacks": [{"n_curves": 1000}]},
    }
    check = check_training(config)
    assert check.epochs_averaged == 4 and check.kinds == ("chance_losses",)


# --- embeddings ----------------------------------------------------------------------------------
def test_constant_dead_one_dimensional_or_nan_embeddings_are_collapsed():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 1.0, 128)
    constant = np.tile(base, (40, 1))
    dead = np.zeros((40, 128))
    line = base + np.outer(rng.standard_normal(40), rng.standard_normal(128))
    broken = rng.standard_normal((40, 128))
    broken[3, 7] = np.nan
    for embeddings in (constant, dead, line, broken):
        finding = check_embeddings(embedding_statistics(embeddings))
        assert finding is not None and finding.kind == "collapsed"
        assert "built-in encoder" in finding.message


def test_spread_or_tiny_but_real_variation_is_not_collapsed():
    rng = np.random.default_rng(1)
    spread = rng.standard_normal((40, 128))
    assert check_embeddings(embedding_statistics(spread)) is None
    # an untrained encoder's outputs vary by ~2e-4 of their size and still classify
    base = rng.uniform(0.1, 1.0, 128)
    tiny = base * (1 + 2e-4 * rng.standard_normal((40, 128)))
    stats = embedding_statistics(tiny)
    assert stats["varying_outputs"] == 128 and check_embeddings(stats) is None


def test_an_encoder_whose_outputs_are_all_dead_is_found_on_real_curves():
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.synth import simulate_series

    encoder = Encoder.random(0, input_length=256)
    with torch.no_grad():  # the reference init of seed 0: a negative last scale, all outputs 0
        encoder.model.reduce_bn.weight.copy_(-encoder.model.reduce_bn.weight.abs())
    curves = simulate_series("Fe", 6, 4, 6, n_points=400, seed=1).stack
    stats = embedding_statistics(encoder.embed(curves))
    assert stats["varying_outputs"] == 0
    assert "all 128 of its outputs are the same" in check_embeddings(stats).message


# --- curves --------------------------------------------------------------------------------------
def test_too_few_curves_is_a_finding_with_its_threshold():
    finding = check_curve_count(50)
    assert finding.kind == "few_curves"
    assert "Only 50 curves" in finding.message and f"fewer than {MIN_CURVES}" in finding.message
    assert check_curve_count(MIN_CURVES) is None


# --- the stored verdict --------------------------------------------------------------------------
def test_the_verdict_round_trips_through_json_and_garbage_reads_as_none():
    config = truncated(builtin_config(), 8)
    config["data"] = dict(config["data"], n_curves=40)
    check = check_training(config, np.zeros((40, 128)))
    assert check.kinds == ("chance_losses", "collapsed", "few_curves") and not check.learned
    again = TrainingCheck.from_dict(json.loads(json.dumps(check.to_dict())))
    assert again == check
    assert again.warning() == " ".join(check.messages)
    assert [f.kind for f in again.problems] == ["chance_losses", "collapsed"]
    for garbage in (None, "x", {}, {"findings": "x"}, {"findings": [], "steps": "many"}):
        assert TrainingCheck.from_dict(garbage) is None


def test_files_without_a_check_load_without_a_warning(tmp_path):
    from napari_xrdphase.encoder import Encoder

    path = Encoder.random(0, input_length=256).save(tmp_path / "old.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PretrainingWarning)
        assert Encoder.load(path).training_check is None


# --- end to end: structureless curves ------------------------------------------------------------
@pytest.fixture
def noise_file(tmp_path):
    from napari_xrdphase.io import save_stack
    from napari_xrdphase.stack import SpectraStack

    rng = np.random.default_rng(0)
    n = 24
    noise = SpectraStack(
        rng.standard_normal((n, 400)),  # no peaks, no background: nothing to learn
        np.linspace(5.0, 25.0, 400),
        variable=np.linspace(0.0, 30.0, n),
        variable_name="pressure",
        variable_unit="GPa",
        name="noise",
    )
    return save_stack(noise, tmp_path / "noise.npz")


@pytest.mark.usefixtures("one_torch_thread")
def test_pretraining_on_noise_warns_on_the_command_line_in_the_file_and_on_loading(
    noise_file, tmp_path, capsys
):
    from safetensors import safe_open

    from napari_xrdphase.cli import main
    from napari_xrdphase.encoder import METADATA_KEY, Encoder

    model = tmp_path / "noise.safetensors"
    argv = ["pretrain", str(noise_file), "--init", "random", "--out", str(model), "--epochs", "3", "--batch-size", "8",
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "training check: did not learn" in err
    assert "xrdphase: warning: The pretraining learned nothing" in err
    assert "xrdphase: warning: Only 24 curves" in err

    with safe_open(str(model), framework="pt") as handle:
        stored = json.loads(handle.metadata()[METADATA_KEY])["training_check"]
    assert stored["learned"] is False
    assert [f["kind"] for f in stored["findings"]] == ["chance_losses", "few_curves"]
    assert stored["chance_losses"]["inter"] == pytest.approx(math.log(2))
    assert stored["embedding"]["n_curves"] == 24

    with pytest.warns(PretrainingWarning, match="learned nothing") as caught:
        loaded = Encoder.load(model)
    assert len(caught) == 1 and "Only 24 curves" not in str(caught[0].message)
    assert loaded.training_check.kinds == ("chance_losses", "few_curves")

    labels = tmp_path / "labels.csv"
    labels.write_text(
        "dataset,index,label\n" + "".join(f"noise,{i},before\n" for i in range(4))
        + "".join(f"noise,{i},after\n" for i in range(20, 24))
    )  # fmt: skip
    argv = ["classify", str(noise_file), "--labels", str(labels), "--out",
            str(tmp_path / "pred.csv"), "--model", str(model)]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().err.count("learned nothing") == 1  # loading warns once
