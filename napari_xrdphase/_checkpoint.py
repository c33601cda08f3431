"""Pretraining checkpoints: the complete state of a run after an epoch, without pickle.

One safetensors file holds every tensor (model with heads, MoCo key encoder, queue and pointer;
the optimiser's per-parameter state; the states of the shuffle, sampling and augmentation
generators as uint8 tensors) and, in its metadata, JSON with the rest: the settings, a
fingerprint of the data, the epoch and step counters, the loss history, the optimiser's
param_groups and the GradScaler state, plus a SHA-256 of the tensors. Loading reads tensors and
JSON only, so opening a checkpoint cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._files import atomic_write_bytes

CHECKPOINT_KEY = "napari_xrdphase_checkpoint"
CHECKSUM_KEY = "napari_xrdphase_sha256"
FORMAT = "napari-xrdphase pretraining checkpoint"
FORMAT_VERSION = 1
_GENERATORS = ("shuffle", "sampling", "augment")
_FINGERPRINT_ROWS = 256


def run_settings(run: Any) -> dict[str, Any]:
    """Return the settings that must match for a checkpoint to continue ``run`` exactly."""
    return {
        "method": run.method,
        "epochs": run.epochs,
        "batch_size": run.batch_size,
        "c": float(run.c) if math.isfinite(run.c) else "inf",
        "k_augmentations": run.k_augmentations,
        "input_length": run.input_length,
        "augmentations": json.loads(
            json.dumps(
                [s if isinstance(s, str) else [s[0], dict(s[1])] for s in run.augmentation_names]
            )
        ),
        "lr": float(run.lr),
        "seed": run.seed,
        "device_type": run.torch_device.type,
        "world_size": run.world_size,
        "rank": run.rank,
        "init": getattr(run, "init", "random"),
    }


def data_fingerprint(run: Any) -> dict[str, Any]:
    """Return the curve count, the series names and sizes and a SHA-256 of a sample of the prepared curves."""
    prepared = np.ascontiguousarray(run.prepared, dtype=np.float32)
    rows = np.unique(np.linspace(0, prepared.shape[0] - 1, _FINGERPRINT_ROWS).astype(int))
    digest = hashlib.sha256(f"{list(prepared.shape)}|{rows.tolist()}|".encode())
    digest.update(prepared[rows].tobytes())
    return {
        "n_curves": int(prepared.shape[0]),
        "stacks": [[str(s.name), int(s.n_curves)] for s in run.stacks],
        "sample_sha256": digest.hexdigest(),
    }


def _digest(tensors: dict[str, torch.Tensor], text: str) -> str:
    digest = hashlib.sha256(text.encode())
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _generators(run: Any) -> dict[str, torch.Generator]:
    return {
        "shuffle": run.shuffle_generator,
        "sampling": run.sampling_generator,
        "augment": run.augment_generator,
    }


def save_checkpoint(run: Any, path: str | os.PathLike) -> Path:
    """Write the state of ``run`` (after ``run.epochs_done`` epochs) to ``path`` atomically."""
    from safetensors.torch import save as safetensors_bytes

    tensors: dict[str, torch.Tensor] = {}
    # clones: the backbone is registered twice (backbone.*, query_encoder.0.*) and safetensors
    # refuses tensors that share memory
    for name, tensor in run.model.state_dict().items():
        tensors[f"model/{name}"] = tensor.detach().to("cpu").contiguous().clone()
    optimizer = run.optimizer.state_dict()
    optimizer_scalars: dict[str, dict[str, Any]] = {}
    for index, state in optimizer["state"].items():
        scalars = {}
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars[key] = value
        optimizer_scalars[str(index)] = scalars
    for name, generator in _generators(run).items():
        tensors[f"rng/{name}"] = generator.get_state().to("cpu").clone()
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "settings": run_settings(run),
        "data": data_fingerprint(run),
        "epochs_done": run.epochs_done,
        "step": run.step,
        "history": run.history,
        "seconds": run.seconds,
        "optimizer_param_groups": optimizer["param_groups"],
        "optimizer_state": optimizer_scalars,
        "scaler": run.scaler.state_dict(),
    }
    text = json.dumps(state, sort_keys=True)
    metadata = {CHECKPOINT_KEY: text, CHECKSUM_KEY: _digest(tensors, text)}
    return atomic_write_bytes(path, safetensors_bytes(tensors, metadata=metadata))


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Return (JSON state, tensors) of a checkpoint file; ValueError if it is not one or is damaged."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types, OSError or ValueError
        raise ValueError(
            f"{path}: not a readable pretraining checkpoint (safetensors): {exc}; "
            "delete it or pass resume=False to start afresh"
        ) from None
    text = metadata.get(CHECKPOINT_KEY)
    if text is None:
        raise ValueError(
            f"{path}: a safetensors file, but not a napari-xrdphase pretraining checkpoint"
        )
    if metadata.get(CHECKSUM_KEY) != _digest(tensors, text):
        raise ValueError(
            f"{path}: the checkpoint is damaged (its checksum does not match); "
            "delete it or pass resume=False to start afresh"
        )
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: the checkpoint's metadata is not valid JSON ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a napari-xrdphase pretraining checkpoint")
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format {state.get('format_version')!r}; this version reads "
            f"format {FORMAT_VERSION}"
        )
    return state, tensors


def restore_checkpoint(run: Any, path: str | os.PathLike) -> None:
    """Load the checkpoint at ``path`` into ``run`` (built by ``_build_training``); ValueError if it belongs to another run."""
    path = Path(path)
    state, tensors = read_checkpoint(path)
    expected, found = run_settings(run), state.get("settings", {})
    differences = [
        f"{key} {found.get(key)!r} (now {expected[key]!r})"
        for key in expected
        if found.get(key) != expected[key]
    ]
    if differences:
        raise ValueError(
            f"{path}: the checkpoint was written with other settings: {'; '.join(differences)}. "
            "Use the same settings, another checkpoint path, or resume=False"
        )
    expected, found = data_fingerprint(run), state.get("data", {})
    if found != expected:
        what = (
            f"{found.get('n_curves')} curves in {found.get('stacks')}"
            if found.get("n_curves") != expected["n_curves"]
            or found.get("stacks") != expected["stacks"]
            else "curves with other values"
        )
        raise ValueError(
            f"{path}: the checkpoint was written for other data ({what}; now "
            f"{expected['n_curves']} curves in {expected['stacks']}). Use the same series, "
            "another checkpoint path, or resume=False"
        )
    try:
        model_state = {
            name[len("model/") :]: tensor.to(run.torch_device)
            for name, tensor in tensors.items()
            if name.startswith("model/")
        }
        run.model.load_state_dict(model_state, strict=True)
        optimizer_state: dict[int, dict[str, Any]] = {}
        for index, scalars in state["optimizer_state"].items():
            optimizer_state[int(index)] = dict(scalars)
        for name, tensor in tensors.items():
            if name.startswith("optimizer/"):
                _, index, key = name.split("/", 2)
                optimizer_state.setdefault(int(index), {})[key] = tensor.to(run.torch_device)
        run.optimizer.load_state_dict(
            {"state": optimizer_state, "param_groups": state["optimizer_param_groups"]}
        )
        if state["scaler"]:
            run.scaler.load_state_dict(state["scaler"])
        for name, generator in _generators(run).items():
            generator.set_state(tensors[f"rng/{name}"])
        epochs_done, step = int(state["epochs_done"]), int(state["step"])
        history = [dict(h) for h in state["history"]]
        seconds = float(state["seconds"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: the checkpoint does not fit this run: {exc}") from None
    if step != epochs_done * run.steps_per_epoch or not 0 <= epochs_done <= run.epochs:
        raise ValueError(
            f"{path}: inconsistent checkpoint (step {step} after {epochs_done} epochs)"
        )
    run.epochs_done, run.step, run.history = epochs_done, step, history
    run.seconds_before = seconds
    run.resumed_from_epoch = epochs_done
