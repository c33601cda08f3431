"""CPU/GPU speed: pretraining seconds per epoch and inference microseconds per curve.

Median of repeated runs in one process; prints numbers and writes JSON. On CPU, inference is
timed for the eager ``ConvSC.forward`` (in sub-batches of 256, as ``Encoder.embed`` ran it
before the fast path, and of ``CPU_SUB_BATCH``) and for ``ConvSC.infer``, calls interleaved
in one process so that other jobs on the machine slow all of them alike; ratios are reported
next to the µs per curve, for the forward pass alone and for ``Encoder.embed`` end to end.

    python -m benchmarks.speed [--device cpu] [--epochs 2] [--threads 2] [--repeats 7]
                               [--inference-lengths 1024 512] [--out benchmarks/results/speed.json]

``--epochs 0`` (or ``--methods`` with no names) times inference only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from benchmarks.protocol import PRETRAIN_SERIES


def measure(
    device: str = "cpu",
    epochs: int = 2,
    methods=("xrdphase", "specrrmoco"),
    repeats: int = 5,
    n_points: int = 4000,
    input_length: int = 1024,
    train_stride: int = 1,
    inference_length: int = 1024,
    inference_curves: int | None = None,
    extra_inference_lengths=(),
    threads: int | None = None,
) -> dict:
    """Return {machine, seconds_per_epoch: {method: s}, inference_us_per_curve, inference, ...}.

    Pretrains each of ``methods`` for ``epochs`` on D1, D4, D8, D9 of the paper suite (every
    ``train_stride``-th curve; ``methods=()`` or ``epochs=0`` skips pretraining) and times
    inference of a random-init encoder (``inference_length`` input points; the built-in encoder
    has the same architecture and speed) on ``inference_curves`` curves of D9 (repeated as
    needed; None: D9 as it is), median of ``repeats``. ``inference_us_per_curve`` is
    ``Encoder.embed`` as it runs by default; on CPU ``inference`` holds the eager / fast
    comparison (see the module doc), also at each of ``extra_inference_lengths`` (forward
    only). ``threads`` sets torch's thread count first (None keeps it).
    """
    import torch

    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.synth import paper_suite
    from napari_xrdphase.training import pretrain

    if threads is not None:
        torch.set_num_threads(int(threads))
        # Encoder.embed gives torch every core unless the user chose a thread count
        os.environ["TORCH_NUM_THREADS"] = str(int(threads))
    suite = paper_suite(seed=0, n_points=n_points)
    train = [
        s.stack.subset(slice(None, None, train_stride)) if train_stride > 1 else s.stack
        for s in suite
        if s.stack.name in PRETRAIN_SERIES
    ]
    results = {
        "machine": _machine(device),
        "setup": {
            "epochs": epochs,
            "n_points": n_points,
            "input_length": input_length,
            "train_curves": int(sum(s.n_curves for s in train)),
            "inference_length": inference_length,
            "inference_curves": inference_curves,
            "repeats": repeats,
        },
        "seconds_per_epoch": {},
    }
    for method in methods if epochs > 0 else ():
        epoch_times = []

        def record(info, times=epoch_times):
            if info["step_in_epoch"] == info["steps_per_epoch"]:
                times.append(info["elapsed_s"])

        pretrain(
            train, method=method, epochs=epochs, device=device, progress=record,
            input_length=input_length,
        )  # fmt: skip
        per_epoch = np.diff([0.0, *epoch_times])
        # the first epoch carries start-up costs; report the median of the rest when there is one
        results["seconds_per_epoch"][method] = float(
            np.median(per_epoch[1:] if len(per_epoch) > 1 else per_epoch)
        )
        print(
            f"{method}: {results['seconds_per_epoch'][method]:.2f} s/epoch on {len(train)} series",
            file=sys.stderr,
        )

    stack = suite[-1].stack
    if inference_curves is None:
        inference_curves = stack.n_curves
    results["setup"]["inference_curves"] = int(inference_curves)
    if torch.device(device).type == "cpu":
        inference = _compare_cpu_inference(
            stack, inference_length, inference_curves, extra_inference_lengths, repeats
        )
        results["inference"] = inference
        results["inference_us_per_curve"] = inference["embed_us_per_curve"]["fast"]
    else:
        encoder = Encoder.random(seed=0, input_length=inference_length).to(device)
        encoder.embed(stack)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            encoder.embed(stack)
            times.append(time.perf_counter() - start)
        results["inference_us_per_curve"] = float(np.median(times) / stack.n_curves * 1e6)
        print(
            f"inference: {results['inference_us_per_curve']:.0f} µs/curve ({stack.n_curves} curves × {stack.n_points} points)",
            file=sys.stderr,
        )
    results["machine"]["load_average_after"] = _load_average()
    return results


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _machine(device: str) -> dict:
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count()
    return {
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cores": cores,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "load_average_before": _load_average(),
    }


def _interleaved(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Return the median seconds of each call, run round-robin ``repeats`` times after a warm-up."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(max(1, int(repeats))):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


@contextlib.contextmanager
def _eager_embed(encoder, sub_batch: int | None = None) -> Iterator[None]:
    """Run ``encoder.embed`` through the eager forward (in sub-batches of ``sub_batch``)."""
    from napari_xrdphase import encoder as encoder_module

    saved = encoder_module.CPU_SUB_BATCH
    encoder.fast_inference = False
    if sub_batch is not None:
        encoder_module.CPU_SUB_BATCH = int(sub_batch)
    try:
        yield
    finally:
        encoder.fast_inference = True
        encoder_module.CPU_SUB_BATCH = saved


def _compare_cpu_inference(stack, length, n_curves, extra_lengths, repeats) -> dict:
    """Time eager and fast CPU inference, interleaved; see the module doc."""
    import torch

    from napari_xrdphase.encoder import CPU_SUB_BATCH, Encoder
    from napari_xrdphase.preprocess import prepare_curves

    curves = np.resize(stack.curves(), (n_curves, stack.n_points))  # D9 repeated as needed
    axis = stack.axis
    repeats = max(int(repeats), 1)
    out: dict = {
        "curves": n_curves,
        "points_in": int(stack.n_points),
        "input_length": int(length),
        "cpu_sub_batch": CPU_SUB_BATCH,
        "torch_threads": torch.get_num_threads(),
        "repeats": repeats,
    }

    def forward_calls(model, x):
        def eager(step):
            return lambda: [model(x[i : i + step]) for i in range(0, x.shape[0], step)]

        return {
            "eager_sub_batch_256": eager(256),
            f"eager_sub_batch_{CPU_SUB_BATCH}": eager(CPU_SUB_BATCH),
            "fast": lambda: model.infer(x, CPU_SUB_BATCH),
        }

    def per_curve(seconds: dict[str, float]) -> dict[str, float]:
        return {name: round(s / n_curves * 1e6, 2) for name, s in seconds.items()}

    def ratios(us: dict[str, float]) -> dict[str, float]:
        return {
            f"{name} / fast": round(v / us["fast"], 2) for name, v in us.items() if name != "fast"
        }

    builtin = Encoder.builtin()
    encoder = Encoder.random(seed=0, input_length=length)
    prepared = prepare_curves(curves, axis, length)
    with torch.inference_mode():
        x = torch.from_numpy(prepared)
        if builtin.input_length == length:
            xb = x
        else:
            xb = torch.from_numpy(prepare_curves(curves, axis, builtin.input_length))
        out["max_abs_diff_builtin"] = float(
            (builtin.model(xb) - builtin.model.infer(xb)).abs().max()
        )
        forward = per_curve(_interleaved(forward_calls(encoder.model, x), repeats))
    out["forward_us_per_curve"] = forward
    out["forward_ratio"] = ratios(forward)

    def embed_before():
        with _eager_embed(encoder, 256):
            encoder.embed(curves, axis=axis)

    def embed_eager():
        with _eager_embed(encoder):
            encoder.embed(curves, axis=axis)

    embed = per_curve(
        _interleaved(
            {
                "eager_sub_batch_256": embed_before,
                f"eager_sub_batch_{CPU_SUB_BATCH}": embed_eager,
                "fast": lambda: encoder.embed(curves, axis=axis),
                "preprocessing": lambda: prepare_curves(curves, axis, length),
            },
            repeats,
        )
    )
    out["preprocess_us_per_curve"] = embed.pop("preprocessing")
    out["embed_us_per_curve"] = embed
    out["embed_ratio"] = ratios(embed)
    out["by_length"] = {}
    for extra in extra_lengths:
        model = Encoder.random(seed=0, input_length=int(extra)).model
        with torch.inference_mode():
            xe = torch.from_numpy(prepare_curves(curves, axis, int(extra)))
            us = per_curve(_interleaved(forward_calls(model, xe), repeats))
        out["by_length"][str(int(extra))] = {
            "forward_us_per_curve": us,
            "forward_ratio": ratios(us),
        }

    print(
        f"inference on {n_curves} curves × {length} points, {out['torch_threads']} threads "
        f"(median of {repeats}, interleaved):",
        file=sys.stderr,
    )
    for title, values in (("forward", forward), ("embed", embed)):
        cells = ", ".join(f"{name} {v:.1f}" for name, v in values.items())
        print(f"  {title} µs/curve: {cells}", file=sys.stderr)
    print(f"  preprocessing {out['preprocess_us_per_curve']:.1f} µs/curve", file=sys.stderr)
    for extra, entry in out["by_length"].items():
        cells = ", ".join(f"{n} {v:.1f}" for n, v in entry["forward_us_per_curve"].items())
        print(f"  forward at {extra} points µs/curve: {cells}", file=sys.stderr)
    print(
        f"  max |eager − fast| on the built-in encoder: {out['max_abs_diff_builtin']:.1e}",
        file=sys.stderr,
    )
    return out


def main(argv=None) -> int:
    """Measure and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--methods", nargs="*", default=["xrdphase", "specrrmoco"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: keep)")
    parser.add_argument("--curves", type=int, default=1024, help="curves timed for inference")
    parser.add_argument(
        "--inference-lengths",
        type=int,
        nargs="+",
        default=[1024, 512],
        help="input points: the first is timed end to end, the others forward only",
    )
    parser.add_argument("--out", default="benchmarks/results/speed.json")
    args = parser.parse_args(argv)

    results = measure(
        args.device,
        args.epochs,
        args.methods,
        args.repeats,
        inference_length=args.inference_lengths[0],
        inference_curves=args.curves,
        extra_inference_lengths=args.inference_lengths[1:],
        threads=args.threads,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
