"""Self-supervised pretraining of the ConvSC encoder: ``pretrain(stacks, method=...)``.

The loop is plain PyTorch without a DataLoader: every curve of every stack is prepared once
(``prepare_stack``), shuffled per epoch by a seeded ``torch.Generator`` and cut into batches
whose sizes differ by at most one (so no tiny last batch). Each step augments the batch K times
(and twice more for MoCo), computes the method's losses (``ssl.SelfSupervisedModel``) and takes
one SGD step. ``progress`` is called after every step; ``should_stop`` is polled before every
step, so a GUI can show progress and cancel within one step. With ``checkpoint=PATH`` the whole
training state is saved after every epoch and a later call resumes from it (``_checkpoint.py``);
``ddp.py`` runs the same loop in several processes.

Optimiser as in the reference code: SGD with momentum 0.9 and weight decay 1e-4; the learning
rate rises linearly from 0.02 over the first 50/800 of the steps to the cosine schedule, which
decays to lr·0.001 at the end. Unlike the reference the schedule is evaluated per step, not
per epoch, so it stays smooth with the few epochs a CPU run affords.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_METHOD,
    DEFAULT_MOCO_WEIGHT,
    FINETUNE_MAX_EPOCHS,
)

if TYPE_CHECKING:
    import torch

    from .encoder import Encoder
    from .stack import SpectraStack

# fixed hyper-parameters of the method (recorded in the encoder's config)
MOCO_MOMENTUM = 0.99
MOCO_TEMPERATURE = 0.1
QUEUE_CURVES_FACTOR = 2  # queue size = 2 × number of training curves, as in the reference
BN_SPLITS = 8
PIECE_SIZE = 0.2  # SelfTime's piece size; the reference code's value is not published
N_PIECE_CLASSES = 5
N_BINS = 5
SGD_MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
WARMUP_FRACTION = 50 / 800
WARMUP_FROM = 0.02
FINAL_LR_FRACTION = 1e-3
FEATURE_DIM = 128

# fine-tuning the built-in encoder (init="builtin"); docs/method.md, "Pretraining from the
# built-in encoder". A tenth of the from-scratch learning rate: the features are already
# useful, the heads are new and their first gradients are noise.
INITS = ("builtin", "random")
FINETUNE_LR = 0.015
# weight of ssl.anchor_loss, the relative squared distance of the backbone's features from the
# frozen built-in encoder's on the same augmented views (≈ the SSL loss's scale, ~4.5 at start)
FINETUNE_ANCHOR_WEIGHT = 1.0
# at most FINETUNE_MAX_EPOCHS (defaults.py) unless epochs= says otherwise; stop after FINETUNE_PATIENCE epochs
# in a row without a better separation score (separation.separation_score) than the best so far
FINETUNE_PATIENCE = 4


def learning_rate(step: int, total_steps: int, base_lr: float, warmup_steps: int) -> float:
    """Return the learning rate of 0-based ``step``: linear warm-up from 0.02, then cosine to base_lr·0.001."""
    eta_min = base_lr * FINAL_LR_FRACTION

    def cosine(t: float) -> float:
        return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * t / total_steps)) / 2

    if step < warmup_steps:
        start = min(WARMUP_FROM, base_lr)
        return start + (step / warmup_steps) * (cosine(warmup_steps) - start)
    return cosine(step)


def batch_sizes(n_curves: int, batch_size: int) -> list[int]:
    """Return sizes of ceil(N / batch_size) batches that differ by at most one and are all ≥ 2."""
    n_batches = max(1, min(math.ceil(n_curves / batch_size), n_curves // 2))
    base, extra = divmod(n_curves, n_batches)
    return [base + 1] * extra + [base] * (n_batches - extra)


def _validate(
    stacks: Sequence[SpectraStack],
    method: str,
    epochs: int,
    batch_size: int,
    c: float,
    k_augmentations: int,
    input_length: int,
    lr: float,
    init: str = "random",
) -> None:
    from .ssl import get_method

    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")

    spec = get_method(method)
    if len(stacks) == 0:
        raise ValueError("no stacks to train on: give at least one series of curves")
    total = sum(int(s.n_curves) for s in stacks)
    if total < 2:
        raise ValueError(f"pretraining needs at least 2 curves in total, got {total}")
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a whole number ≥ 1, got {epochs}")
    if int(batch_size) != batch_size or batch_size < 2:
        raise ValueError(
            f"batch_size must be a whole number ≥ 2 (relational reasoning pairs curves within a batch), got {batch_size}"
        )
    if not c >= 0:  # also rejects NaN
        raise ValueError(f"the MoCo weight c must be ≥ 0 (math.inf trains MoCo alone), got {c}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr}")
    if spec.objectives and spec.effective_moco_weight(c) != math.inf and k_augmentations < 2:
        raise ValueError(
            f"k_augmentations must be ≥ 2 for relational reasoning, got {k_augmentations}"
        )
    from .models import ConvSC

    shortest = int(ConvSC().minimum_length)
    needed = math.ceil(shortest / PIECE_SIZE) if "intra" in spec.objectives else shortest
    if input_length < needed:
        raise ValueError(
            f"input_length {input_length} is too short for method {method!r}: "
            f"need ≥ {needed} points"
            + (
                f" (intra-sample pieces of {PIECE_SIZE:g}·L must have ≥ {shortest} points)"
                if "intra" in spec.objectives
                else ""
            )
        )


def _data_summary(stacks: Sequence[SpectraStack]) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "n_curves": s.n_curves,
            "n_points": s.n_points,
            "axis_kind": s.axis_kind,
            "axis_unit": s.axis_unit,
            "axis_min": float(np.min(s.axis)),
            "axis_max": float(np.max(s.axis)),
            "variable_name": s.variable_name,
            "variable_unit": s.variable_unit,
            "variable_min": float(np.min(s.variable)),
            "variable_max": float(np.max(s.variable)),
        }
        for s in stacks
    ]


@contextmanager
def _deterministic(enabled: bool):
    """Turn on torch's deterministic algorithms for the block, then restore the previous setting."""
    import torch

    if not enabled:
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


def _build_model(
    spec: Any, moco_weight: float, queue_size: int, seed: int, device: torch.device
) -> Any:
    import torch

    from .models import (
        ConvSC,
        ExternalVariableHead,
        InterRelationHead,
        IntraRelationHead,
        ProjectionHead,
    )
    from .ssl import SelfSupervisedModel

    hidden = spec.head_hidden
    queue_generator = torch.Generator().manual_seed(seed + 5)
    model = SelfSupervisedModel(
        ConvSC(feature_dim=FEATURE_DIM, bn_splits=BN_SPLITS, seed=seed),
        ProjectionHead(FEATURE_DIM, FEATURE_DIM, seed=seed + 1),
        spec,
        moco_weight=moco_weight,
        inter_head=InterRelationHead(FEATURE_DIM, hidden, seed=seed + 2),
        intra_head=IntraRelationHead(FEATURE_DIM, N_PIECE_CLASSES, hidden, seed=seed + 3),
        external_head=ExternalVariableHead(FEATURE_DIM, N_BINS, seed=seed + 4),
        piece_size=PIECE_SIZE,
        n_piece_classes=N_PIECE_CLASSES,
        queue_size=queue_size,
        feature_dim=FEATURE_DIM,
        momentum=MOCO_MOMENTUM,
        temperature=MOCO_TEMPERATURE if spec.temperature is None else spec.temperature,
        generator=queue_generator,
    )
    if spec.init == "positive_final_bn":
        # the reference init draws the last BN scale from N(0, 0.05): tiny and negative half the
        # time, so the final ReLU passes almost nothing and the embedding starts (and can stay)
        # collapsed. A scale of +1 keeps half of the normalised outputs alive from the start.
        # The MoCo key encoder was copied before this line, so it is overwritten below as well.
        with torch.no_grad():
            model.backbone.reduce_bn.weight.fill_(1.0)
            if model.moco is not None:
                model.moco.key_encoder.load_state_dict(model.query_encoder.state_dict())
    return model.to(device)


def _builtin_start(
    window: dict[str, Any], q_range: Sequence[float] | None, input_length: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the built-in encoder's weights to start from and the window to train on.

    The built-in weights learnt lines at the input positions of their own q window, so that
    window is kept whenever the series cover it; a series covering only part of it narrows the
    window to that part (with a warning: lines then sit at other positions at first); a
    ``q_range`` is the user's choice and is taken as given. Series without a q axis (2θ with no
    wavelength) or outside the window raise ValueError.
    """
    from .encoder import Encoder
    from .preprocess import narrowed_window

    builtin = Encoder.builtin()
    prep = builtin.config.get("preprocessing", {})
    lo, hi = (float(v) for v in prep["axis_range"])
    if int(input_length) != builtin.input_length:
        raise ValueError(
            f"init='builtin' fine-tunes the built-in encoder, which reads {builtin.input_length} "
            f"points per curve: leave input_length at {builtin.input_length}, or use init='random'"
        )
    if window["axis_kind"] != prep["axis_kind"]:
        raise ValueError(
            f"init='builtin' reads the curves in q like the built-in encoder (q {lo:g}–{hi:g} "
            "1/Å): give the X-ray wavelength of the 2θ series, or use init='random'"
        )
    common_lo, common_hi = window["axis_range"]
    note = None
    if q_range is not None:
        window = narrowed_window(window, q_range)
        wlo, whi = window["axis_range"]
        if (wlo, whi) != (lo, hi):
            note = (
                f"q_range {wlo:.4g}–{whi:.4g} 1/Å: the built-in weights, which learnt q "
                f"{lo:g}–{hi:g}, start on another grid"
            )
    else:
        inside_lo, inside_hi = max(lo, common_lo), min(hi, common_hi)
        if not inside_hi > inside_lo:
            raise ValueError(
                f"the series cover q {common_lo:.4g}–{common_hi:.4g} 1/Å, outside the built-in "
                f"encoder's window (q {lo:g}–{hi:g} 1/Å): use init='random'"
            )
        window = {**window, "axis_range": [inside_lo, inside_hi]}
        if (inside_lo, inside_hi) != (lo, hi):
            note = (
                f"the series cover only q {inside_lo:.4g}–{inside_hi:.4g} 1/Å of the built-in "
                f"encoder's window (q {lo:g}–{hi:g} 1/Å): fine-tuning reads that part, so the "
                "lines sit at other input positions than the built-in weights learnt"
            )
            warnings.warn(note, UserWarning, stacklevel=4)
    state = {k: v.detach().clone() for k, v in builtin.model.state_dict().items()}
    return {"state": state, "window": [lo, hi], "window_note": note}, window


def _start_from(model: Any, start: dict[str, Any], device: Any) -> None:
    """Load the built-in weights into ``model``'s backbone and anchor it to a frozen copy of them."""
    import copy

    model.backbone.load_state_dict(start["state"], strict=True)
    if model.moco is not None:
        model.moco.key_encoder.load_state_dict(model.query_encoder.state_dict())
    frozen = copy.deepcopy(model.backbone).to(device)
    # train mode: batch statistics of the same batch as the fine-tuned copy (not the running
    # statistics of the built-in training data), so equal weights give equal features
    frozen.train()
    model.set_anchor(frozen, FINETUNE_ANCHOR_WEIGHT)


class _Stopping:
    """The stopping rule of a fine-tuning: the separation score of each epoch on a fixed subset.

    Epoch 0 is the built-in encoder as shipped. After each epoch the batch norms are
    recomputed (as at the end of a run) and the subset embedded; the best epoch's backbone
    state is kept, and training stops after ``patience`` epochs in a row without a better
    score (``separation.separation_score``).
    """

    def __init__(self, run: _Run, patience: int) -> None:
        from .separation import evenly_spaced

        self.patience = int(patience)
        self.index = evenly_spaced(run.n_curves)
        variable = np.concatenate([np.asarray(s.variable, dtype=np.float64) for s in run.stacks])
        series = np.concatenate([np.full(s.n_curves, i) for i, s in enumerate(run.stacks)])
        self.variable, self.series = variable[self.index], series[self.index]
        self.scores: list[float] = []
        self.best_epoch = 0
        self.best_score = -math.inf
        self.best_state: dict[str, Any] | None = None
        self.since_best = 0

    def score(self, run: _Run) -> float:
        """Return the separation score of ``run``'s backbone as it stands (eval mode)."""
        from .separation import separation_score

        return separation_score(_embed_rows(run, self.index), self.variable, self.series)

    def record(self, run: _Run, epoch: int) -> bool:
        """Score the weights after ``epoch`` (0: the start); return True when training should stop."""
        if epoch > 0:
            _recalibrate(run)
        value = self.score(run)
        self.scores.append(value)
        if len(run.history) >= epoch > 0:
            run.history[epoch - 1]["separation"] = value
        if value > self.best_score or self.best_state is None:
            self.best_score = value if math.isfinite(value) else self.best_score
            self.best_epoch = epoch
            self.best_state = {
                k: v.detach().clone() for k, v in run.model.backbone.state_dict().items()
            }
            self.since_best = 0
            return False
        self.since_best += 1
        return self.since_best >= self.patience

    def restore_best(self, run: _Run) -> None:
        """Put the best epoch's backbone state (with its batch-norm statistics) back in ``run``."""
        if self.best_state is not None:
            run.model.backbone.load_state_dict(self.best_state)


class _Run:
    """Everything one pretraining run holds: settings, data, generators, model and progress.

    ``pretrain`` and the multi-process entry point (``ddp.py``) build one with
    :func:`_prepare_run`, add the model with :func:`_build_training`, run :func:`_train_epochs`
    and turn it into an ``Encoder`` with :func:`_encoder_of`; ``_checkpoint.py`` saves and
    restores it.
    """

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


_NOT_RUN_SETTINGS = ("progress", "should_stop", "checkpoint", "resume")


def _masked(stacks: Sequence[SpectraStack], ignore_phases: Any) -> tuple[list, Any]:
    """Return the stacks with the lines of ``ignore_phases`` removed, and the mask (None: none)."""
    from .phases.masking import masked_stacks

    return masked_stacks(stacks, ignore_phases or ())


def _embed_rows(run: _Run, rows: np.ndarray) -> np.ndarray:
    """Return the backbone's embeddings of the prepared curves ``rows``, in eval mode, 256 at a time."""
    import torch

    backbone = run.model.backbone
    was_training = backbone.training
    backbone.eval()
    index = torch.from_numpy(np.asarray(rows)).to(run.curves.device)
    try:
        with torch.no_grad():
            return torch.cat(
                [
                    backbone(run.curves[index[i : i + 256]]).float().cpu()
                    for i in range(0, len(index), 256)
                ]
            ).numpy()
    finally:
        backbone.train(was_training)


def _run_settings(**settings: Any) -> dict[str, Any]:
    """Return ``pretrain``'s run settings (epochs, batch size, …) at its defaults, updated by ``settings``.

    The one list of the settings and their defaults, shared by ``ddp.pretrain_distributed``;
    a name that is not one of them raises TypeError.
    """
    import inspect

    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(pretrain).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in _NOT_RUN_SETTINGS
    }
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise TypeError(f"unknown pretraining settings: {', '.join(unknown)}")
    return {**defaults, **settings}


def _prepare_run(
    stacks: Sequence[SpectraStack] | SpectraStack,
    method: str,
    *,
    epochs: int,
    batch_size: int,
    c: float,
    k_augmentations: int,
    input_length: int,
    augmentations: Sequence[str] | None,
    lr: float | None,
    device: str,
    seed: int,
    q_range: Sequence[float] | None = None,
    init: str = "random",
    rank: int = 0,
    world_size: int = 1,
) -> _Run:
    """Validate the settings, prepare every curve and seed the generators (no model yet).

    With ``world_size`` > 1 every epoch's seeded permutation (the same on all ranks) is cut into
    ``world_size`` equal shards of ``N // world_size`` curves; the sampling and augmentation
    generators are seeded per rank. Rank 0 of a world of 1 is exactly ``pretrain``.
    """
    import torch

    from .augment import PAPER_PIPELINE, make_augmentation
    from .encoder import resolve_device
    from .preprocess import common_window, narrowed_window, prepare_stack
    from .ssl import get_method, series_bin_labels
    from .stack import SpectraStack

    if isinstance(stacks, SpectraStack):
        stacks = [stacks]
    stacks = list(stacks)
    spec = get_method(method)
    init = str(init).strip().lower()
    if lr is None:
        lr = FINETUNE_LR if init == "builtin" else (0.15 if spec.lr is None else spec.lr)
    if epochs is None:
        epochs = FINETUNE_MAX_EPOCHS if init == "builtin" else DEFAULT_EPOCHS
    if augmentations is None and spec.augmentations is not None:
        augmentations = spec.augmentations
    _validate(stacks, method, epochs, batch_size, c, k_augmentations, input_length, lr, init)
    total = sum(int(s.n_curves) for s in stacks)
    if total // world_size < 2:
        raise ValueError(
            f"{total} curves cannot be shared by {world_size} processes: each needs at least 2"
        )
    method = str(method).strip().lower()
    epochs, batch_size, k_augmentations = int(epochs), int(batch_size), int(k_augmentations)
    input_length, seed = int(input_length), int(seed)
    torch_device, device_reason = resolve_device(device)
    # per-rank streams; rank 0 keeps the seeds of a single-process run
    rank_seed = seed + 1000 * int(rank)
    shuffle_generator = torch.Generator().manual_seed(seed)  # the same on every rank
    sampling_generator = torch.Generator().manual_seed(rank_seed + 1)  # piece starts, key shuffles
    augment_generator = torch.Generator(device=torch_device).manual_seed(rank_seed + 2)
    augmentation_names = tuple(PAPER_PIPELINE if augmentations is None else augmentations)
    augment = make_augmentation(augmentation_names, augment_generator)  # checks the names

    window = common_window(stacks)  # one grid for every series: q whenever wavelengths are known
    start = None
    if init == "builtin":
        start, window = _builtin_start(window, q_range, input_length)
    elif q_range is not None:
        window = narrowed_window(window, q_range)
    prepared = np.concatenate([prepare_stack(s, input_length, **window) for s in stacks], axis=0)
    bins = torch.cat([series_bin_labels(s.n_curves, N_BINS) for s in stacks])
    n_curves = prepared.shape[0]
    shard = n_curves // world_size
    sizes = batch_sizes(shard, batch_size)
    steps_per_epoch = len(sizes)
    total_steps = epochs * steps_per_epoch
    return _Run(
        stacks=stacks,
        spec=spec,
        method=method,
        epochs=epochs,
        batch_size=batch_size,
        c=c,
        moco_weight=spec.effective_moco_weight(c),
        k_augmentations=k_augmentations,
        input_length=input_length,
        window=window,
        augmentation_names=augmentation_names,
        lr=lr,
        seed=seed,
        rank=int(rank),
        world_size=int(world_size),
        torch_device=torch_device,
        device_reason=device_reason,
        on_cuda=torch_device.type == "cuda",
        shuffle_generator=shuffle_generator,
        sampling_generator=sampling_generator,
        augment_generator=augment_generator,
        augment=augment,
        prepared=prepared,
        curves=torch.from_numpy(prepared).to(torch_device),
        bins=bins.to(torch_device),
        n_curves=n_curves,
        shard=shard,
        sizes=sizes,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        warmup_steps=round(WARMUP_FRACTION * total_steps),
        queue_size=QUEUE_CURVES_FACTOR * n_curves,
        history=[],
        step=0,
        epochs_done=0,
        stopped_early=False,
        seconds_before=0.0,
        resumed_from_epoch=None,
        model=None,
        losses=None,
        init=init,
        start=start,
        stopping=None,
        stopped_by_rule=False,
    )


def _build_training(run: _Run) -> None:
    """Add the model, optimiser, gradient scaler and autocast context to ``run``."""
    import torch

    run.model = _build_model(run.spec, run.moco_weight, run.queue_size, run.seed, run.torch_device)
    if run.start is not None:
        _start_from(run.model, run.start, run.torch_device)
    run.model.train()
    parameters = [p for p in run.model.parameters() if p.requires_grad]
    run.optimizer = torch.optim.SGD(
        parameters, lr=run.lr, momentum=SGD_MOMENTUM, weight_decay=WEIGHT_DECAY
    )
    run.scaler = torch.amp.GradScaler("cuda", enabled=run.on_cuda)
    run.autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.float16)) if run.on_cuda else nullcontext
    )


def series_grouped_order(sizes: Sequence[int], chunk: int, generator) -> Any:
    """Return an epoch's curve order made of shuffled runs of ``chunk`` curves of one series.

    Each series' curves are shuffled and cut into chunks of at most ``chunk``; the chunks are
    shuffled and concatenated. Cut into batches of about two chunks (``xrdphase``), a batch
    then holds a few series, so many inter-sample negatives (other curves of the batch) are
    other curves of the same series — other pressures and phases — instead of curves of other
    series, which differ in geometry and background and are told apart trivially. Whole-batch
    chunks (every negative within the series) did as well on an independent simulator's suite
    but cost 5–10 points of Fe on the paper suite (docs/benchmarks.md).
    """
    import torch

    chunks = []
    start = 0
    for size in sizes:
        rows = start + torch.randperm(int(size), generator=generator)
        chunks += list(torch.split(rows, int(chunk)))
        start += int(size)
    picked = torch.randperm(len(chunks), generator=generator)
    return torch.cat([chunks[i] for i in picked.tolist()])


def _train_epochs(
    run: _Run,
    progress: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    after_epoch: Callable[[_Run], None] | None = None,
) -> None:
    """Train from ``run.epochs_done`` to ``run.epochs``; ``after_epoch`` runs after each complete epoch."""
    import torch

    start_time = time.perf_counter()
    run.start_time = start_time
    steps_per_epoch = run.steps_per_epoch
    for epoch in range(run.epochs_done, run.epochs):
        if run.spec.batches == "series":
            # chunks of half a batch: about half of the negatives stay within one series
            chunk = max(1, run.sizes[0] // 2)
            sizes = [s.n_curves for s in run.stacks]
            order = series_grouped_order(sizes, chunk, run.shuffle_generator)
        else:
            order = torch.randperm(run.n_curves, generator=run.shuffle_generator)
        if run.world_size > 1:
            order = order[run.rank * run.shard : (run.rank + 1) * run.shard]
        order = order.to(run.torch_device)
        epoch_sums: dict[str, float] = {}
        first = 0
        for step_in_epoch, size in enumerate(run.sizes):
            if should_stop is not None and should_stop():
                run.stopped_early = True
                break
            rows = order[first : first + size]
            first += size
            step_lr = learning_rate(run.step, run.total_steps, run.lr, run.warmup_steps)
            for group in run.optimizer.param_groups:
                group["lr"] = step_lr
            losses = _train_step(
                run.model,
                run.optimizer,
                run.scaler,
                run.autocast,
                run.augment,
                run.curves[rows],
                run.bins[rows],
                run.k_augmentations,
                run.sampling_generator,
                run.losses,
            )
            run.step += 1
            for name, value in losses.items():
                epoch_sums[name] = epoch_sums.get(name, 0.0) + value
            if progress is not None:
                progress(
                    {
                        "epoch": epoch + 1,
                        "epochs": run.epochs,
                        "step": run.step,
                        "step_in_epoch": step_in_epoch + 1,
                        "steps_per_epoch": steps_per_epoch,
                        "total_steps": run.total_steps,
                        "loss": losses["total"],
                        "losses": {k: v for k, v in losses.items() if k != "total"},
                        "lr": step_lr,
                        "elapsed_s": run.seconds_before + time.perf_counter() - start_time,
                        "device": str(run.torch_device),
                    }
                )
        if epoch_sums:
            done = run.step - epoch * steps_per_epoch
            run.history.append({name: value / done for name, value in epoch_sums.items()})
        if run.stopped_early:
            break
        run.epochs_done = epoch + 1
        stop = run.stopping is not None and run.stopping.record(run, epoch + 1)
        if after_epoch is not None:
            run.seconds = run.seconds_before + time.perf_counter() - start_time
            after_epoch(run)
        if stop:
            run.stopped_by_rule = True
            break
    run.seconds = run.seconds_before + time.perf_counter() - start_time


def pretrain(
    stacks: Sequence[SpectraStack],
    method: str = DEFAULT_METHOD,
    *,
    epochs: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    c: float = DEFAULT_MOCO_WEIGHT,
    k_augmentations: int = 4,
    input_length: int = 1024,
    augmentations: Sequence[str] | None = None,
    lr: float | None = None,
    device: str = "auto",
    seed: int = 0,
    q_range: Sequence[float] | None = None,
    progress: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = True,
    ignore_phases: Any = None,
    init: str = "random",
) -> Encoder:
    """Return an ``Encoder`` pretrained without labels on every curve of ``stacks`` by ``method``.

    ``method`` is a key of ``ssl.METHODS`` (``specrrmoco``, ``specrr``, ``specmoco``,
    ``specselftime``); ``c`` weighs the MoCo loss where the method uses it. ``progress`` gets a
    dict after every step; when ``should_stop()`` returns True the encoder as of the last
    completed step is returned with ``config["training"]["stopped_early"] = True``.

    With ``checkpoint`` (a file path) the complete training state is written there, atomically,
    after every epoch (safetensors + JSON, no pickle). If the file exists and ``resume`` is
    True, training continues after its last completed epoch and ends with exactly the weights
    of an uninterrupted run; a checkpoint of other data or settings raises ValueError. With
    ``resume=False`` an existing checkpoint is ignored and overwritten.

    ``ignore_phases`` (names such as ``["Pt", "Ne"]``, 'Pt,Ne' or a ``phases.masking.PhaseMask``):
    the lines of these markers and media are fitted and subtracted from every curve before
    training (at each curve's pressure, ``phases.masking``); the encoder records the mask in
    ``config["ignored_phases"]`` and classifiers fitted on it apply the same mask.

    ``init="random"`` (the default here, the paper's recipe) trains from freshly drawn
    weights for ``epochs`` (default 60). ``init="builtin"`` (the default of ``xrdphase
    pretrain``, the Encoder dock and ``xrd.pretrain``) fine-tunes the built-in encoder on its
    q window with lr 0.015 (``lr`` unless given) and a pull of its features toward the frozen
    built-in ones (``ssl.anchor_loss``), scores each epoch by ``separation.separation_score``
    on up to 512 of the curves and stops after 4 epochs without a better score, at most
    ``epochs`` (default 30); the best epoch's weights are returned, the built-in ones when no
    epoch beat them. Either way ``config["builtin_comparison"]`` says whether the encoder
    separates these curves better than the built-in one.
    """
    from ._checkpoint import restore_checkpoint, save_checkpoint

    stacks, mask = _masked(stacks, ignore_phases)
    run = _prepare_run(
        stacks,
        method,
        epochs=epochs,
        batch_size=batch_size,
        c=c,
        k_augmentations=k_augmentations,
        input_length=input_length,
        augmentations=augmentations,
        lr=lr,
        device=device,
        seed=seed,
        q_range=q_range,
        init=init,
    )
    with _deterministic(not run.on_cuda):
        _build_training(run)
        if run.start is not None:
            run.stopping = _Stopping(run, FINETUNE_PATIENCE)
            run.stopping.record(run, 0)
        after_epoch = None
        if checkpoint is not None:
            checkpoint = Path(checkpoint)
            if resume and checkpoint.exists():
                restore_checkpoint(run, checkpoint)

            def after_epoch(run: _Run) -> None:
                save_checkpoint(run, checkpoint)

        _train_epochs(run, progress, should_stop, after_epoch)
        if run.stopping is None:
            _recalibrate(run)
        else:
            if run.stopped_early and run.step > run.epochs_done * run.steps_per_epoch:
                # a part epoch, stopped by the user: a candidate like a whole one
                run.stopping.record(run, run.epochs_done + 1)
            run.stopping.restore_best(run)
    encoder = _encoder_of(run)
    if mask is not None:
        encoder.config["ignored_phases"] = mask.as_dict()
    if run.stopping is None:
        comparison = compare_with_builtin(encoder, run.stacks)
    else:
        comparison = _comparison(
            run.stopping.best_score, run.stopping.scores[0], run.stopping.best_epoch
        )
    encoder.config["builtin_comparison"] = comparison
    return encoder


def _comparison(
    score: float,
    builtin_score: float,
    best_epoch: int | None = None,
    name: str = "fine-tuned encoder",
) -> dict[str, Any]:
    """Return the ``builtin_comparison`` record: both scores, which is better and a sentence."""
    from .separation import SEPARATION_CURVES, SEPARATION_K

    better = bool(math.isfinite(score) and math.isfinite(builtin_score) and score > builtin_score)
    scores = f"separation {score:.3f} vs built-in {builtin_score:.3f} on your curves"
    if best_epoch == 0:
        message = (
            f"no epoch separated your curves better than the built-in encoder ({scores}): the "
            "model written holds the built-in weights; use the built-in encoder"
        )
    elif better:
        message = f"{name}: {scores}"
    else:
        message = f"{name}: {scores}; use the built-in encoder"
    return {
        "measure": (
            f"separation_score: k-NN ({SEPARATION_K}) agreement of the external variable with "
            f"neighbours in other series, on up to {SEPARATION_CURVES} curves (1 − d_knn / d_random)"
        ),
        "separation": None if not math.isfinite(score) else float(score),
        "builtin_separation": None if not math.isfinite(builtin_score) else float(builtin_score),
        "better_than_builtin": better,
        "message": message,
    }


def compare_with_builtin(encoder: Encoder, stacks: Sequence[SpectraStack]) -> dict[str, Any]:
    """Return ``encoder``'s separation score on ``stacks`` against the built-in encoder's.

    Each reads the curves on its own window; the same evenly spaced curves are scored
    (``separation.separation_score``). When the built-in encoder cannot read the series the
    record says so (``better_than_builtin`` None).
    """
    from .encoder import Encoder
    from .separation import evenly_spaced, separation_score

    variable = np.concatenate([np.asarray(s.variable, dtype=np.float64) for s in stacks])
    series = np.concatenate([np.full(s.n_curves, i) for i, s in enumerate(stacks)])
    index = evenly_spaced(len(variable))
    scores = []
    for candidate in (encoder, Encoder.builtin()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                embeddings = np.concatenate([candidate.embed(s) for s in stacks])
        except ValueError as exc:
            return {
                "separation": None,
                "builtin_separation": None,
                "better_than_builtin": None,
                "message": f"not compared with the built-in encoder: {exc}",
            }
        scores.append(separation_score(embeddings[index], variable[index], series[index]))
    return _comparison(scores[0], scores[1], name="pretrained encoder")


def recalibrate_batch_norms(
    backbone: Any,
    curves: Any,
    batch_size: int = 256,
    transform: Callable[[Any], Any] | None = None,
) -> None:
    """Recompute every batch norm's running statistics of ``backbone`` on ``curves`` (no grad).

    During training the running statistics trail the weights (momentum 0.1 per step, starting
    from variance 1): a short run leaves them far from the true ones, and in evaluation most
    outputs of the final ReLU can be dead. This replaces them by the average over batches of
    ``curves`` (each batch passed through ``transform`` first, e.g. the training
    augmentations), computed with the final weights.
    """
    import torch

    norms = [m for m in backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or len(curves) < 2:
        return
    saved = [(m.momentum, getattr(m, "num_splits", None)) for m in norms]
    was_training = backbone.training
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
            if hasattr(m, "num_splits"):
                m.num_splits = 1
        backbone.train()
        step = max(2, int(batch_size))
        with torch.no_grad():
            for start in range(0, len(curves), step):
                batch = curves[start : start + step]
                if len(batch) < 2:  # a batch of one has no variance
                    break
                backbone(batch if transform is None else transform(batch))
    finally:
        for m, (momentum, splits) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if splits is not None:
                m.num_splits = splits
        backbone.train(was_training)


def _recalibrate(run: _Run) -> None:
    """Recompute the backbone's batch-norm statistics at the end of ``run`` (``recalibrate_batch_norms``).

    On the training distribution (one augmented view of every curve), as exact statistics
    instead of lagging ones: +2.8 / +7.7 points of Fe precision / recall after 3 epochs, ±0 to
    +1.3 after 20 (docs/method.md).
    """
    import torch

    order = torch.randperm(run.n_curves, generator=torch.Generator().manual_seed(run.seed))
    recalibrate_batch_norms(
        run.model.backbone, run.curves[order.to(run.curves.device)], transform=run.augment
    )


def _encoder_of(run: _Run) -> Encoder:
    """Return the trained backbone of ``run`` as an ``Encoder`` with the run recorded in its config."""
    import torch

    from . import __version__
    from .encoder import Encoder, default_config

    spec, model, lr, c, moco_weight = run.spec, run.model, run.lr, run.c, run.moco_weight
    step, steps_per_epoch, history = run.step, run.steps_per_epoch, run.history
    elapsed = run.seconds
    backbone = model.backbone.eval()
    training = {
        "method": run.method,
        "objectives": list(spec.objectives),
        "uses_moco": model.uses_moco,
        "c": float(c) if math.isfinite(c) else "inf",
        # JSON has no infinity: "inf" means MoCo alone
        "moco_weight": moco_weight if math.isfinite(moco_weight) else "inf",
        "augmentations": _augmentations_json(run.augmentation_names),
        "epochs": run.epochs,
        "epochs_completed": step / steps_per_epoch,
        "steps_completed": step,
        "steps_per_epoch": steps_per_epoch,
        "batch_size": run.batch_size,
        "batch_sizes": run.sizes,
        "k_augmentations": run.k_augmentations,
        "input_length": run.input_length,
        "lr": float(lr),
        "lr_schedule": (
            f"per step: linear warm-up from {min(WARMUP_FROM, lr):g} over {run.warmup_steps} "
            f"steps, then cosine to {lr * FINAL_LR_FRACTION:g}"
        ),
        "warmup_steps": run.warmup_steps,
        "optimizer": "SGD",
        "sgd_momentum": SGD_MOMENTUM,
        "weight_decay": WEIGHT_DECAY,
        "moco_momentum": MOCO_MOMENTUM,
        "moco_temperature": (MOCO_TEMPERATURE if spec.temperature is None else spec.temperature),
        "init": spec.init,
        "batches": spec.batches,
        "spread_weight": spec.spread_weight,
        "queue_size": run.queue_size if model.uses_moco else 0,
        "bn_splits": BN_SPLITS,
        "piece_size": PIECE_SIZE,
        "n_piece_classes": N_PIECE_CLASSES,
        "n_bins": N_BINS,
        "head_hidden": spec.head_hidden,
        "projection_dim": FEATURE_DIM,
        "seed": run.seed,
        "device": str(run.torch_device),
        "device_reason": run.device_reason,
        "mixed_precision": "float16 autocast + GradScaler" if run.on_cuda else None,
        "cpu_threads": torch.get_num_threads() if not run.on_cuda else None,
        "seconds": elapsed,
        "seconds_per_epoch": elapsed / (step / steps_per_epoch) if step else None,
        "final_losses": history[-1] if history else {},
        "epoch_losses": history,
        "stopped_early": run.stopped_early,
        "batch_norm_statistics": f"recomputed on one augmented view of each of the {run.n_curves} training curves",
    }
    training["initial_weights"] = run.init
    if run.resumed_from_epoch is not None:
        training["resumed_from_epoch"] = run.resumed_from_epoch
    if run.world_size > 1:
        training["world_size"] = run.world_size
        training["curves_per_process_per_epoch"] = run.shard
    config = {
        "method": run.method,
        "method_description": spec.description,
        "input_length": run.input_length,
        "preprocessing": {**default_config(backbone)["preprocessing"], **run.window},
        "training": training,
        "data": {
            "n_curves": int(run.n_curves),
            "n_stacks": len(run.stacks),
            "stacks": _data_summary(run.stacks),
        },
        "version": __version__,
    }
    if run.start is not None:
        config["fine_tuning"] = _fine_tuning_record(run)
    check = _check_run(run, config)
    if check is not None:
        config["training_check"] = check.to_dict()
    return Encoder(backbone, config)


def _fine_tuning_record(run: _Run) -> dict[str, Any]:
    """Return what a fine-tuning of the built-in encoder did, for the model config."""
    from .separation import SEPARATION_CURVES, SEPARATION_K

    stopping = run.stopping
    record: dict[str, Any] = {
        "from": "the built-in encoder (models_data/builtin_encoder.safetensors)",
        "builtin_window": run.start["window"],
        "window_note": run.start["window_note"],
        "lr": float(run.lr),
        "anti_forgetting": (
            "ssl.anchor_loss: ‖f − f₀‖² / ‖f₀‖² between the backbone's features and the frozen "
            "built-in encoder's features of the same augmented views, both in train mode"
        ),
        "anchor_weight": FINETUNE_ANCHOR_WEIGHT,
    }
    if stopping is not None:
        scores = [None if not math.isfinite(v) else float(v) for v in stopping.scores]
        record["stopping_rule"] = (
            f"separation_score (k = {SEPARATION_K}) on {len(stopping.index)} of the "
            f"{run.n_curves} curves (at most {SEPARATION_CURVES}, evenly spaced) after every "
            f"epoch, batch norms recomputed; stop after {stopping.patience} epochs without a "
            f"better score, at most {run.epochs} epochs; keep the best epoch (0: the built-in "
            "encoder as shipped)"
        )
        record["separation_per_epoch"] = scores  # index 0: the built-in encoder
        record["chosen_epoch"] = stopping.best_epoch
        record["stopped_by_rule"] = bool(run.stopped_by_rule)
    return record


def _check_run(run: _Run, config: dict[str, Any]) -> Any:
    """Return the end-of-training check (``training_check.check_training``) of ``run``.

    The trained backbone embeds up to ``EMBEDDING_SAMPLE`` of the prepared training curves,
    evenly spaced. None when no step was taken; a failure of the check itself is a warning,
    never the loss of the trained encoder.
    """
    import warnings

    from .training_check import EMBEDDING_SAMPLE, check_training

    if not run.step:
        return None
    try:
        index = np.unique(np.linspace(0, run.n_curves - 1, EMBEDDING_SAMPLE).round().astype(int))
        return check_training(config, _embed_rows(run, index))
    except Exception as exc:  # the check must not cost the user the trained encoder
        warnings.warn(f"the end-of-training check failed: {exc}", RuntimeWarning, stacklevel=2)
        return None


def _augmentations_json(names: Sequence[Any]) -> list[Any]:
    return [step if isinstance(step, str) else [step[0], dict(step[1])] for step in names]


def _train_step(
    model: Any,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    autocast: Callable[[], Any],
    augment: Callable[[torch.Tensor], torch.Tensor],
    batch: torch.Tensor,
    bin_labels: torch.Tensor,
    k_augmentations: int,
    generator: torch.Generator,
    compute_losses: Callable[..., dict[str, torch.Tensor]] | None = None,
) -> dict[str, float]:
    """Run one optimisation step on a batch; return its losses as floats.

    ``compute_losses`` replaces ``model.losses`` (the multi-process run passes its
    DistributedDataParallel wrapper, which averages the gradients across processes).
    """
    if compute_losses is None:
        compute_losses = model.losses
    b, length = batch.shape
    # augmentations run in float32, outside autocast: half precision would blur the warps
    views = (
        augment(batch.repeat(k_augmentations, 1)).reshape(k_augmentations, b, length)
        if model.uses_relational
        else None
    )
    moco_views = augment(batch.repeat(2, 1)).reshape(2, b, length) if model.uses_moco else None
    with autocast():
        losses = compute_losses(
            views,
            bin_labels,
            None if moco_views is None else (moco_views[0], moco_views[1]),
            generator,
        )
    total = losses["total"]
    values = {name: float(value.detach()) for name, value in losses.items()}
    if not math.isfinite(values["total"]) and not scaler.is_enabled():
        raise FloatingPointError(
            f"the training loss became {values['total']}; lower the learning rate lr"
        )
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.step(optimizer)
    scaler.update()
    return values
