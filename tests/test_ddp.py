"""Multi-process (DDP) pretraining with torchrun on CPU (gloo, 2 processes)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed")

from napari_xrdphase.io import save_stack  # noqa: E402
from napari_xrdphase.stack import SpectraStack  # noqa: E402


def tiny_series(seed: int, name: str, n_curves: int = 16, n_points: int = 300) -> SpectraStack:
    rng = np.random.default_rng(seed)
    axis = np.linspace(5.0, 25.0, n_points)
    pressure = np.linspace(0.0, 40.0, n_curves)
    curves = []
    for p in pressure:
        centres = np.array([8.0, 12.0, 15.0, 19.0, 22.0]) * (1 - 0.004 * p)
        if p > 20:
            centres[3:] = [13.5, 17.0]
        curves.append(
            sum(np.exp(-0.5 * ((axis - c) / 0.15) ** 2) for c in centres)
            + 0.02 * rng.standard_normal(n_points)
        )
    return SpectraStack(np.array(curves), axis, variable=pressure, variable_name="pressure",
                        variable_unit="GPa", name=name)  # fmt: skip


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
@pytest.mark.parametrize("method", ["specrrmoco"])  # relational heads and the gathered MoCo queue
def test_torchrun_two_processes_train_identical_weights_and_rank0_saves_the_encoder(
    tmp_path, method
):
    from napari_xrdphase.encoder import Encoder

    paths = [
        str(save_stack(tiny_series(0, "a"), tmp_path / "a.npz")),
        str(save_stack(tiny_series(1, "b"), tmp_path / "b.npz")),
    ]
    out = tmp_path / "encoder.safetensors"
    launcher = (
        [shutil.which("torchrun")]
        if shutil.which("torchrun")
        else [sys.executable, "-m", "torch.distributed.run"]
    )
    command = [
        *launcher,
        "--nproc_per_node", "2", "--standalone", "-m", "napari_xrdphase.ddp", *paths,
        "--out", str(out), "--method", method, "--epochs", "1", "--batch-size", "8",
        "--input-length", "300", "--k-augmentations", "2", "--device", "cpu",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    digests = dict(re.findall(r"\[rank (\d)/2\] weights sha256 ([0-9a-f]{64})", log))
    assert set(digests) == {"0", "1"}, log
    assert digests["0"] == digests["1"]
    assert log.count("training check: ") == 1, log  # rank 0 reports the end-of-training check
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two steps: the check says it learned nothing
        encoder = Encoder.load(out)
    assert encoder.training_check.embedding["n_curves"] == 32
    training = encoder.config["training"]
    assert training["world_size"] == 2
    assert training["curves_per_process_per_epoch"] == 16
    assert training["steps_completed"] == 2  # 16 curves per process in batches of 8
    assert encoder.config["data"]["n_curves"] == 32
    assert training["queue_size"] == 64
    assert encoder.embed(tiny_series(2, "c", 4)).shape == (4, 128)


def test_distributed_settings_are_pretrains_with_its_defaults():
    import inspect

    from napari_xrdphase.ddp import pretrain_distributed
    from napari_xrdphase.training import _run_settings, pretrain

    settings = _run_settings(epochs=3)
    signature = inspect.signature(pretrain).parameters
    assert settings["epochs"] == 3
    assert settings["batch_size"] == signature["batch_size"].default
    assert "checkpoint" not in settings and "progress" not in settings
    # a misspelt or unsupported setting is refused before any process group is needed
    with pytest.raises(TypeError, match="unknown pretraining settings: batchsize, checkpoint"):
        pretrain_distributed([tiny_series(0, "a")], batchsize=8, checkpoint="x")
