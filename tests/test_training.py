"""Tests of the pretraining loop on tiny synthetic series (CPU, one thread)."""

from __future__ import annotations

import itertools
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_xrdphase.stack import SpectraStack  # noqa: E402
from napari_xrdphase.training import batch_sizes, learning_rate, pretrain  # noqa: E402

# the smallest length whose intra-sample pieces (0.2 · L) ConvSC accepts
LENGTH = 300


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def pressure_series(n_curves: int = 16, seed: int = 0, name: str = "series") -> SpectraStack:
    """Curves of a few Gaussian peaks that shift with pressure; two peaks change at half-way."""
    rng = np.random.default_rng(seed)
    axis = np.linspace(5.0, 25.0, 400)
    pressure = np.linspace(0.0, 40.0, n_curves)
    curves = []
    for p in pressure:
        centres = np.array([8.0, 12.0, 15.0, 19.0, 22.0]) * (1 - 0.004 * p)
        if p > 20:
            centres[3:] = [13.5, 17.0]
        y = sum(np.exp(-0.5 * ((axis - c) / 0.15) ** 2) for c in centres)
        curves.append(y + 0.02 * rng.standard_normal(axis.size))
    return SpectraStack(
        np.array(curves),
        axis,
        variable=pressure,
        variable_name="pressure",
        variable_unit="GPa",
        name=name,
    )


def tiny_run(**kwargs):
    settings = {
        "method": "specrrmoco",  # exercises every objective, MoCo included
        "epochs": 1,
        "batch_size": 8,
        "k_augmentations": 2,
        "input_length": LENGTH,
        "device": "cpu",
    }
    settings.update(kwargs)
    stacks = settings.pop("stacks", [pressure_series(16)])
    return pretrain(stacks, **settings)


def weights(encoder) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in encoder.model.state_dict().items()}


# --- schedule and batching -----------------------------------------------------------------------
def test_learning_rate_warms_up_from_002_then_decays_by_cosine_to_a_thousandth():
    total, warm = 160, 10
    rates = [learning_rate(s, total, 0.15, warm) for s in range(total + 1)]
    assert rates[0] == pytest.approx(0.02)
    assert all(a < b for a, b in itertools.pairwise(rates[: warm + 1]))
    assert all(a >= b for a, b in itertools.pairwise(rates[warm:]))
    cosine_at_warm = 0.15e-3 + (0.15 - 0.15e-3) * (1 + math.cos(math.pi * warm / total)) / 2
    assert rates[warm] == pytest.approx(cosine_at_warm)
    assert rates[-1] == pytest.approx(0.15e-3)


def test_batches_cover_every_curve_and_differ_by_at_most_one():
    for n, b in [(900, 128), (872, 512), (32, 8), (33, 8), (3, 2), (2, 128)]:
        sizes = batch_sizes(n, b)
        assert sum(sizes) == n
        assert max(sizes) - min(sizes) <= 1
        assert min(sizes) >= 2
        assert len(sizes) == max(1, min(math.ceil(n / b), n // 2))


# --- the loop ------------------------------------------------------------------------------------
def test_progress_reports_every_step_in_order_and_config_records_the_run(tmp_path):
    reports = []
    encoder = tiny_run(
        epochs=2,
        stacks=[pressure_series(10, 0, "a"), pressure_series(7, 1, "b")],
        progress=reports.append,
    )
    steps_per_epoch = len(batch_sizes(17, 8))
    assert [r["step"] for r in reports] == list(range(1, 2 * steps_per_epoch + 1))
    assert [r["epoch"] for r in reports] == [1] * steps_per_epoch + [2] * steps_per_epoch
    first = reports[0]
    assert {
        "epoch",
        "epochs",
        "step",
        "steps_per_epoch",
        "loss",
        "losses",
        "lr",
        "elapsed_s",
        "device",
    } <= set(first)
    assert set(first["losses"]) == {"inter", "intra", "external", "moco"}
    assert first["device"] == "cpu"
    assert all(b["elapsed_s"] >= a["elapsed_s"] for a, b in itertools.pairwise(reports))

    config = encoder.config
    training = config["training"]
    assert config["method"] == "specrrmoco"
    assert training["stopped_early"] is False
    assert training["steps_completed"] == 2 * steps_per_epoch
    assert training["queue_size"] == 2 * 17
    assert training["augmentations"] == ["magnitude_warp", "angle_warp"]
    assert training["seconds_per_epoch"] > 0
    assert set(training["final_losses"]) == {"inter", "intra", "external", "moco", "total"}
    assert [s["name"] for s in config["data"]["stacks"]] == ["a", "b"]
    assert [s["n_curves"] for s in config["data"]["stacks"]] == [10, 7]
    assert config["data"]["stacks"][0]["axis_min"] == pytest.approx(5.0)
    assert config["version"]
    assert encoder.embed(pressure_series(4)).shape == (4, 128)
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.training_check import PretrainingWarning

    with pytest.warns(PretrainingWarning, match="learned nothing"):  # 6 steps: still at chance
        loaded = Encoder.load(encoder.save(tmp_path / "pretrained.safetensors"))
    assert loaded.config["training"] == json.loads(json.dumps(training))
    # the end-of-training check embedded every training curve and travels with the file
    check = loaded.training_check
    assert check == encoder.training_check and check.embedding["n_curves"] == 17
    assert check.steps == 2 * steps_per_epoch and "few_curves" in check.kinds
    assert set(check.chance_losses) == {"inter", "intra", "external", "moco"}


def test_infinite_c_trains_moco_alone_and_is_stored_as_json():
    reports = []
    encoder = tiny_run(c=math.inf, progress=reports.append)
    assert set(reports[-1]["losses"]) == {"moco"}
    assert encoder.config["training"]["moco_weight"] == "inf"


def test_should_stop_ends_training_within_one_step_and_returns_the_last_completed_step():
    reports = []
    encoder = tiny_run(
        epochs=5,
        progress=reports.append,
        should_stop=lambda: len(reports) >= 3,
    )
    assert len(reports) == 3
    assert encoder.config["training"]["stopped_early"] is True
    assert encoder.config["training"]["steps_completed"] == 3


def test_stop_before_the_first_step_returns_the_untrained_encoder():
    encoder = tiny_run(should_stop=lambda: True)
    assert encoder.config["training"]["steps_completed"] == 0
    assert encoder.config["training"]["stopped_early"] is True
    assert encoder.training_check is None  # nothing trained, nothing to check


def test_same_seed_gives_identical_weights_and_another_seed_different_ones():
    first = weights(tiny_run(seed=3))
    again = weights(tiny_run(seed=3))
    other = weights(tiny_run(seed=4))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize(
    ("method", "losses"),
    [
        ("specmoco", {"moco"}),
        ("specselftime", {"inter", "intra"}),
        ("specrr", {"inter", "intra", "external"}),
    ],
)
def test_each_method_trains_its_own_losses(method, losses):
    reports = []
    encoder = tiny_run(method=method, progress=reports.append)
    assert set(reports[-1]["losses"]) == losses
    assert encoder.config["method"] == method


def test_losses_decrease_on_a_tiny_synthetic_run():
    encoder = pretrain(
        [pressure_series(16, 0, "a"), pressure_series(16, 1, "b")],
        method="specrrmoco",
        epochs=12,
        batch_size=16,
        k_augmentations=4,
        input_length=LENGTH,
        device="cpu",
        seed=0,
    )
    history = encoder.config["training"]["epoch_losses"]
    early = {k: np.mean([h[k] for h in history[:3]]) for k in history[0]}
    late = {k: np.mean([h[k] for h in history[-3:]]) for k in history[0]}
    # the first epoch's MoCo loss is low against a queue still holding random keys.
    # In so few steps the inter-sample loss only settles from just above ln 2 to ln 2: at the
    # reference initialisation all projections start almost parallel, and the reference's own
    # log shows the inter loss at ln 2 for its first ~20 steps too. test_ssl shows that it learns.
    early["moco"] = np.mean([h["moco"] for h in history[1:4]])
    for name in ("inter", "intra", "external", "moco", "total"):
        assert late[name] < early[name], (name, early[name], late[name])


# --- invalid input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stacks": []}, "no stacks"),
        ({"method": "simclr"}, "specrrmoco"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 1}, "batch_size"),
        ({"c": -0.1}, "c must be"),
        ({"c": float("nan")}, "c must be"),
        ({"k_augmentations": 1}, "k_augmentations"),
        ({"input_length": 200}, "input_length"),
        ({"lr": 0.0}, "lr"),
        ({"augmentations": ["flip"]}, "unknown augmentation"),
    ],
)
def test_invalid_settings_raise_value_errors_that_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_run(**kwargs)


def test_fewer_than_two_curves_in_total_is_an_error():
    one_curve = SimpleNamespace(n_curves=1, name="single")
    with pytest.raises(ValueError, match="at least 2 curves"):
        pretrain([one_curve])


def test_default_method_is_xrdphase_with_physics_augmentations_spread_and_no_moco():
    from napari_xrdphase.augment import PHYSICS_PIPELINE

    encoder = pretrain(
        [pressure_series(12, 0, "a")], epochs=1, batch_size=6, k_augmentations=2,
        input_length=LENGTH, device="cpu",
    )  # fmt: skip
    training = encoder.config["training"]
    assert encoder.config["method"] == "xrdphase"
    assert set(training["final_losses"]) == {"inter", "intra", "external", "spread", "total"}
    assert training["spread_weight"] == 1.0
    assert training["uses_moco"] is False
    assert [step if isinstance(step, str) else step[0] for step in training["augmentations"]] == [
        step if isinstance(step, str) else step[0] for step in PHYSICS_PIPELINE
    ]


def test_series_grouped_order_is_a_permutation_with_batches_inside_one_series():
    from napari_xrdphase.training import series_grouped_order

    sizes, batch = [50, 70, 30, 9], 16
    owner = np.repeat(np.arange(len(sizes)), sizes)
    order = series_grouped_order(sizes, batch // 2, torch.Generator().manual_seed(0)).numpy()
    assert sorted(order.tolist()) == list(range(sum(sizes)))
    again = series_grouped_order(sizes, batch // 2, torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_array_equal(order, again)  # seeded

    # chunks of 8 curves of one series: a batch of 16 holds at most 3 series (2 when aligned),
    # where a random permutation mixes 3–4
    def series_per_batch(rows):
        return [np.unique(owner[rows[i : i + batch]]).size for i in range(0, rows.size, batch)]

    assert max(series_per_batch(order)) <= 3
    # the order switches series only between chunks (22 of them: ceil(size / 8) per series)
    assert np.count_nonzero(np.diff(owner[order])) <= sum(-(-n // 8) for n in sizes) - 1
    shuffled = torch.randperm(sum(sizes), generator=torch.Generator().manual_seed(0)).numpy()
    assert np.mean(series_per_batch(order)) < np.mean(series_per_batch(shuffled))


def test_a_method_with_series_batches_trains_and_records_it():
    from napari_xrdphase import ssl

    with pytest.raises(ValueError, match="unknown batches 'mixed'"):
        ssl.MethodSpec(("inter",), 0.0, "bad", batches="mixed")
    stacks = [pressure_series(12, 0, "a"), pressure_series(10, 1, "b")]
    encoder = tiny_run(method="xrdphase", stacks=stacks, batch_size=6)
    assert encoder.config["training"]["batches"] == ssl.METHODS["xrdphase"].batches
    assert tiny_run(stacks=stacks).config["training"]["batches"] == "random"  # the paper's


# --- checkpoint and resume -----------------------------------------------------------------------
def test_a_run_stopped_after_two_epochs_and_resumed_equals_an_uninterrupted_run(tmp_path):
    from safetensors import safe_open

    stacks = [pressure_series(10, 0, "a"), pressure_series(7, 1, "b")]
    steps_per_epoch = len(batch_sizes(17, 8))
    uninterrupted = tiny_run(epochs=3, stacks=stacks, seed=5)
    checkpoint = tmp_path / "run.ckpt"
    reports = []
    stopped = tiny_run(
        epochs=3,
        stacks=stacks,
        seed=5,
        checkpoint=checkpoint,
        progress=reports.append,
        should_stop=lambda: len(reports) >= 2 * steps_per_epoch,
    )
    assert stopped.config["training"]["stopped_early"] is True
    assert checkpoint.is_file()
    with safe_open(str(checkpoint), framework="pt") as handle:
        names = set(handle.keys())
        state = json.loads(handle.metadata()["napari_xrdphase_checkpoint"])
    assert state["epochs_done"] == 2 and state["step"] == 2 * steps_per_epoch
    assert {"model/moco.queue", "model/moco.queue_ptr", "rng/shuffle", "rng/augment"} <= names
    assert any(name.startswith("model/moco.key_encoder.") for name in names)
    assert any(name.startswith("optimizer/") for name in names)

    resumed_reports = []
    resumed = tiny_run(
        epochs=3, stacks=stacks, seed=5, checkpoint=checkpoint, progress=resumed_reports.append
    )
    assert [r["step"] for r in resumed_reports] == list(
        range(2 * steps_per_epoch + 1, 3 * steps_per_epoch + 1)
    )
    expected, got = weights(uninterrupted), weights(resumed)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    training = resumed.config["training"]
    assert training["resumed_from_epoch"] == 2
    assert training["epoch_losses"] == uninterrupted.config["training"]["epoch_losses"]
    assert training["stopped_early"] is False and training["steps_completed"] == 3 * steps_per_epoch


def test_a_checkpoint_of_other_data_or_another_method_is_refused(tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    tiny_run(stacks=[pressure_series(16, 0, "a")], checkpoint=checkpoint)
    with pytest.raises(ValueError, match="other data"):
        tiny_run(stacks=[pressure_series(16, 1, "a")], checkpoint=checkpoint)
    with pytest.raises(ValueError, match="other data"):
        tiny_run(stacks=[pressure_series(17, 0, "a")], checkpoint=checkpoint)
    with pytest.raises(ValueError, match="other settings: method"):
        tiny_run(stacks=[pressure_series(16, 0, "a")], method="specrr", checkpoint=checkpoint)
    # resume=False starts afresh and overwrites the checkpoint
    tiny_run(stacks=[pressure_series(16, 0, "a")], method="specrr", checkpoint=checkpoint,
             resume=False)  # fmt: skip
    tiny_run(stacks=[pressure_series(16, 0, "a")], method="specrr", checkpoint=checkpoint)


def test_a_corrupt_checkpoint_is_refused_clearly(tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    tiny_run(checkpoint=checkpoint)
    data = bytearray(checkpoint.read_bytes())
    data[-100] ^= 0xFF  # inside the tensor bytes
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        tiny_run(checkpoint=checkpoint)
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable pretraining checkpoint"):
        tiny_run(checkpoint=checkpoint)


def test_cli_pretrain_writes_and_resumes_a_checkpoint(tmp_path):
    from napari_xrdphase.cli import main
    from napari_xrdphase.io import save_stack

    series = save_stack(pressure_series(12, 0, "a"), tmp_path / "a.npz")
    checkpoint = tmp_path / "state.ckpt"
    # from scratch: the series has no wavelength, which fine-tuning the built-in encoder needs
    argv = ["pretrain", str(series), "--init", "random", "--out", str(tmp_path / "enc.safetensors"), "--epochs", "1",
            "--batch-size", "6", "--method", "specrr", "--device", "cpu", "--checkpoint",
            str(checkpoint)]  # fmt: skip
    assert main(argv) == 0
    assert checkpoint.is_file()
    assert main(argv) == 2  # the model it wrote is kept
    argv.append("--overwrite")
    assert main(argv) == 0  # resumes after the last epoch: nothing left to train
    assert main([*argv[:-7], "--method", "specselftime", *argv[-5:]]) != 0  # other settings


def test_batch_norm_statistics_are_recomputed_on_the_clean_training_curves():
    from napari_xrdphase.models import ConvSC
    from napari_xrdphase.training import recalibrate_batch_norms

    model = ConvSC(bn_splits=4)
    torch.manual_seed(0)
    curves = torch.rand(48, 256)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for m in norms:  # statistics far from the data's, as after a few training steps
        m.running_mean.fill_(5.0)
        m.running_var.fill_(100.0)
    model.train()
    for m in norms:
        m.num_splits = 1  # statistics of the whole batch, not of 4 groups
    with torch.no_grad():
        batch_statistics = model(curves)  # train mode: normalised by this batch's statistics
    for m in norms:
        m.num_splits = 4
    recalibrate_batch_norms(model, curves, batch_size=64)
    assert model.training  # left in the mode it was in
    assert [(m.momentum, m.num_splits) for m in norms] == [(0.1, 4)] * len(norms)
    model.eval()
    with torch.no_grad():
        running_statistics = model(curves)
    # one batch of all curves: the running statistics are that batch's (variance unbiased)
    scale = batch_statistics.abs().max()
    assert scale > 0
    assert (running_statistics - batch_statistics).abs().max() < 0.05 * scale


def test_pretraining_ends_with_recalibrated_batch_norms():
    encoder = tiny_run(epochs=1)
    assert (
        "of each of the 16 training curves" in encoder.config["training"]["batch_norm_statistics"]
    )
    bn1 = encoder.model.bn1
    assert int(bn1.num_batches_tracked) == 1  # one pass of the 16 curves, not the training steps
