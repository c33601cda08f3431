"""``xrdphase pretrain``: pretraining an encoder, its progress and its end-of-training reports."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import _load_all, _output_path, _print_err
from .classifying import _phase_mask


def progress_printer(every_s: float = 2.0):
    """Return a ``pretrain`` progress callback printing a line to stderr every ``every_s`` s."""
    last = [0.0]

    def report(info: dict) -> None:
        now = info["elapsed_s"]
        if now - last[0] >= every_s or info["step"] == info["total_steps"]:
            last[0] = now
            losses = " ".join(f"{k}={v:.3f}" for k, v in info["losses"].items())
            print(
                f"epoch {info['epoch']}/{info['epochs']} step {info['step_in_epoch']}/"
                f"{info['steps_per_epoch']} loss={info['loss']:.4f} ({losses}) "
                f"lr={info['lr']:.3g} {now:.0f}s on {info['device']}",
                file=sys.stderr,
            )

    return report


def cmd_pretrain(args: argparse.Namespace) -> None:
    """Pretrain an encoder without labels on every curve of the given series."""
    from ..training import pretrain

    stacks = _load_all(
        args.paths,
        args.wavelength,
        args.variable,
        getattr(args, "pressure_from", None),
        getattr(args, "pressure_scale", None),
    )
    out = _output_path(args, inputs=[*args.paths, args.checkpoint])
    n = sum(s.n_curves for s in stacks)
    print(f"pretraining {args.method} on {n} curves from {len(stacks)} series", file=sys.stderr)
    mask = _phase_mask(args)
    if mask:
        print(f"curves seen without the lines of {mask.describe()}", file=sys.stderr)
    encoder = pretrain(
        stacks,
        method=args.method,
        epochs=args.epochs,
        batch_size=args.batch_size,
        c=args.c,
        device=args.device,
        seed=args.seed,
        q_range=args.q_range,
        progress=progress_printer(),
        checkpoint=args.checkpoint,
        ignore_phases=mask,
        init=args.init,
    )
    path = encoder.save(out)
    print(f"wrote {path}", file=sys.stderr)
    report_training_check(encoder)
    report_builtin_comparison(encoder)


def report_builtin_comparison(encoder: Any) -> None:
    """Print whether the encoder separates the training curves better than the built-in one."""
    comparison = encoder.config.get("builtin_comparison")
    if comparison:
        print(f"compared with the built-in encoder: {comparison['message']}", file=sys.stderr)


def report_training_check(encoder: Any) -> None:
    """Print the end-of-training check to stderr: its summary, then one warning per finding."""
    check = encoder.training_check
    if check is None:
        return
    print(f"training check: {check.summary()}", file=sys.stderr)
    for message in check.messages:
        _print_err(f"warning: {message}")
