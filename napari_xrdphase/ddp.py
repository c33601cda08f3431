"""Multi-process data-parallel pretraining (PyTorch DistributedDataParallel), one process per GPU.

Launch with ``torchrun``::

    torchrun --nproc_per_node 4 --standalone -m napari_xrdphase.ddp run_017.nxs run_018.nxs \\
        --out encoder.safetensors --method xrdphase --epochs 200 --batch-size 128

Every process reads the same files and prepares every curve. Each epoch the seeded permutation
of ``pretrain`` (the same on every rank) is cut into ``world_size`` equal shards of
``N // world_size`` curves (the few left over are different curves each epoch); each process
trains on its shard with its own sampling and augmentation generators, and DDP averages the
gradients, so the weights stay identical on every rank. ``--batch-size`` is per process: the
effective batch is ``world_size`` times larger, and an epoch has ``world_size`` times fewer steps.

MoCo methods work too: the keys of every process are gathered (``all_gather``) before they are
enqueued, so all processes hold the same queue. Batch-norm running statistics, which each process
updates on its own shard, are averaged across processes at the end; rank 0 then saves the encoder.
Backend: nccl on CUDA, gloo on CPU. Checkpoints (``pretrain(checkpoint=...)``) are not supported
here yet.

The training loop, schedule, model and config are those of ``training.pretrain`` (its private
building blocks are reused), so a run with one process equals ``pretrain`` with the same seed.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .defaults import DEFAULT_METHOD

if TYPE_CHECKING:
    from .encoder import Encoder
    from .stack import SpectraStack


def _losses_module(model: Any) -> Any:
    """Return an ``nn.Module`` whose ``forward`` is ``model.losses`` (what DDP wraps)."""
    from torch import nn

    class Losses(nn.Module):
        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return self.model.losses(*args, **kwargs)

    return Losses(model)


def _gather_keys(keys: Any) -> Any:
    import torch
    import torch.distributed as dist

    keys = keys.contiguous()
    parts = [torch.empty_like(keys) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, keys)
    return torch.cat(parts)


def _synchronise_buffers(model: Any) -> None:
    """Average the batch-norm running statistics over the processes; copy other buffers from rank 0."""
    import torch
    import torch.distributed as dist

    world = dist.get_world_size()
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if buffer.is_floating_point() and "running_" in name.rsplit(".", 1)[-1]:
                dist.all_reduce(buffer)
                buffer.div_(world)
            else:
                dist.broadcast(buffer, 0)


def pretrain_distributed(
    stacks: Sequence[SpectraStack],
    method: str = DEFAULT_METHOD,
    *,
    progress: Callable[[dict], None] | None = None,
    **settings: Any,
) -> Encoder:
    """Pretrain like ``training.pretrain`` in every process of an initialised process group.

    ``settings`` are ``training.pretrain``'s (``epochs``, ``batch_size``, ``c``,
    ``k_augmentations``, ``input_length``, ``augmentations``, ``lr``, ``device``, ``seed``)
    with the same defaults; there is no checkpointing or early stop. Every rank must call it
    with the same stacks and settings; each returns the same encoder (identical weights).
    ``batch_size`` is per process.
    """
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from .training import (
        _build_training,
        _deterministic,
        _encoder_of,
        _masked,
        _prepare_run,
        _recalibrate,
        _run_settings,
        _train_epochs,
    )

    settings = _run_settings(**settings)
    if settings["init"] != "random":
        raise ValueError(
            "the multi-process run trains from random weights only (init='random'); "
            "fine-tune the built-in encoder with training.pretrain"
        )
    if not dist.is_initialized():
        raise RuntimeError("initialise torch.distributed first (launch with torchrun)")
    stacks, mask = _masked(stacks, settings.pop("ignore_phases"))
    run = _prepare_run(
        stacks,
        method,
        **settings,
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
    )
    with _deterministic(not run.on_cuda):
        _build_training(run)
        wrapped = DistributedDataParallel(
            _losses_module(run.model),
            device_ids=[run.torch_device.index] if run.on_cuda else None,
            # the MoCo queue is kept identical by gathering keys, and the batch-norm statistics
            # are averaged at the end: no per-step broadcast of (possibly large) buffers
            broadcast_buffers=False,
        )
        run.losses = wrapped
        if run.model.moco is not None:
            run.model.moco.gather_keys = _gather_keys
        try:
            _train_epochs(run, progress if run.rank == 0 else None)
        finally:
            if run.model.moco is not None:
                run.model.moco.gather_keys = None
        _recalibrate(run)  # each process on its own augmented views; averaged next
        _synchronise_buffers(run.model)
    encoder = _encoder_of(run)
    if mask is not None:
        encoder.config["ignored_phases"] = mask.as_dict()
    return encoder


def _init_process_group(device: str) -> str:
    """Initialise torch.distributed from torchrun's environment (or as a world of one); return the device."""
    import torch
    import torch.distributed as dist

    if "WORLD_SIZE" not in os.environ:  # started without torchrun: a world of one process
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        os.environ.update(
            RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
        return f"cuda:{local_rank}"
    dist.init_process_group("gloo")
    return "cpu"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser: ``xrdphase pretrain``'s options plus input length and K."""
    from .cli import add_pretraining_arguments

    parser = argparse.ArgumentParser(
        prog="python -m napari_xrdphase.ddp",
        description="multi-process (DDP) pretraining; launch with torchrun --nproc_per_node N",
    )
    add_pretraining_arguments(
        parser, out_help="model file (rank 0 writes it); --batch-size is per process"
    )
    parser.add_argument("--input-length", type=int, default=1024)
    parser.add_argument("--k-augmentations", type=int, default=4)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run multi-process pretraining; every rank prints the SHA-256 of its final weights."""
    import torch.distributed as dist

    from .cli import CommandError, _load_all, _output_path, progress_printer, report_training_check
    from .encoder import _weights_digest

    args = build_parser().parse_args(argv)
    device = _init_process_group(args.device)
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        stacks = _load_all(args.paths, args.wavelength, args.variable)
        out = _output_path(args, inputs=args.paths)
        if rank == 0:
            n = sum(s.n_curves for s in stacks)
            print(
                f"pretraining {args.method} on {n} curves from {len(stacks)} series "
                f"with {world} processes ({device})",
                file=sys.stderr,
            )
        encoder = pretrain_distributed(
            stacks,
            method=args.method,
            epochs=args.epochs,
            batch_size=args.batch_size,
            c=args.c,
            k_augmentations=args.k_augmentations,
            input_length=args.input_length,
            device=device,
            seed=args.seed,
            q_range=args.q_range,
            progress=progress_printer() if rank == 0 else None,
        )
        digest = _weights_digest(dict(encoder.model.state_dict()))
        print(f"[rank {rank}/{world}] weights sha256 {digest}", file=sys.stderr, flush=True)
        if rank == 0:
            path = encoder.save(out)
            print(f"wrote {path}", file=sys.stderr)
            report_training_check(encoder)
        dist.barrier()
    except (CommandError, ValueError, OSError) as exc:
        print(f"error (rank {rank}): {exc}", file=sys.stderr)
        return 2
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
