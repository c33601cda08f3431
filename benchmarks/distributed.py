"""Speed-up of ``classify_distributed`` on a LocalCluster: 2 workers against 1, and one process.

One NeXus file of ``--curves`` simulated curves (a simulated Fe series tiled with Poisson
noise), an untrained encoder (the speed does not depend on the weights) and a classifier fitted
on a few labelled curves. Timed, best of ``--repeats`` after one warm-up call that lets the
workers load the model and open the file:

- ``predict_proba`` in this process with all its cores, and with one torch thread;
- ``classify_distributed`` on a LocalCluster of 1 and of 2 single-threaded worker processes.

    python -m benchmarks.distributed --curves 20000 --out benchmarks/results/distributed.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _make_files(folder: Path, n_curves: int, n_points: int, seed: int) -> tuple[Path, Path, Path]:
    """Write the series, the encoder and the classifier; return their paths."""
    from napari_xrdphase.classify import fit_classifier
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.io import save_stack
    from napari_xrdphase.synth import simulate_series

    series = simulate_series("Fe", 40, 20, 60, n_points=n_points, seed=seed, name="bench")
    rng = np.random.default_rng(seed)
    rows = np.arange(n_curves) * series.stack.n_curves // n_curves
    mean = series.stack.curves()[rows].astype(np.float64)
    noisy = rng.poisson(np.clip(mean, 0, None) * 50.0) / 50.0
    stack = series.stack.replace(
        intensities=noisy.astype(np.float32),
        variable=series.stack.variable[rows],
        sources=[f"frame_{i}" for i in range(n_curves)],
    )
    data_path = save_stack(stack, folder / "bench.nxs")
    encoder = Encoder.random(seed=seed)
    labels = {
        "bench": {int(i): str(series.labels[rows[i]]) for i in range(0, n_curves, n_curves // 42)}
    }
    classifier = fit_classifier(encoder, [stack], labels, seed=seed)
    return (
        data_path,
        encoder.save(folder / "encoder.safetensors"),
        classifier.save(folder / "classifier.safetensors"),
    )


def _best_of(repeats: int, run) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table and write JSON; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", type=int, default=20000)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/distributed.json"))
    args = parser.parse_args(argv)

    import torch
    from distributed import Client, LocalCluster

    from napari_xrdphase.classify import Classifier
    from napari_xrdphase.distributed import classify_distributed
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.io import load_stack

    results: dict[str, object] = {
        "curves": args.curves,
        "points": args.points,
        "chunk_size": args.chunk_size,
        "repeats": args.repeats,
        "cpu_cores": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        # the machine may be shared: a load above the core count means the timings are noisy
        "load_average_at_start": os.getloadavg()[0],
        "timings_s": {},
    }
    timings: dict[str, float] = results["timings_s"]  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        data_path, encoder_path, classifier_path = _make_files(
            Path(tmp), args.curves, args.points, args.seed
        )
        classifier = Classifier.load(classifier_path, Encoder.load(encoder_path))
        stack = load_stack(data_path)

        def one_process(threads: int):
            torch.set_num_threads(threads)
            return lambda: classifier.predict_proba(stack, chunk_size=args.chunk_size)

        all_threads = torch.get_num_threads()
        classifier.predict_proba(stack.subset(slice(0, args.chunk_size)))  # warm-up, untimed
        timings["one_process_all_threads"], reference = _best_of(
            args.repeats, one_process(all_threads)
        )
        timings["one_process_1_thread"], single = _best_of(args.repeats, one_process(1))
        torch.set_num_threads(all_threads)
        results["one_process_threads"] = all_threads

        for n_workers in (1, 2):
            with (
                LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.ERROR,
                ) as cluster,
                Client(cluster) as client,
            ):

                def run(client=client):
                    return classify_distributed(
                        classifier_path,
                        encoder_path,
                        [data_path],
                        client,
                        chunk_size=args.chunk_size,
                    )[0]

                timings[f"cluster_{n_workers}_workers_first_call"], _ = _best_of(1, run)
                timings[f"cluster_{n_workers}_workers"], predicted = _best_of(args.repeats, run)
            # same chunks, same thread count as the 1-thread run: the same numbers
            results[f"max_abs_difference_{n_workers}_workers"] = float(
                np.abs(predicted.probabilities - single).max()
            )
        results["max_abs_difference_1_vs_all_threads"] = float(np.abs(single - reference).max())

    results["load_average_at_end"] = os.getloadavg()[0]
    results["speedup_2_vs_1_workers"] = timings["cluster_1_workers"] / timings["cluster_2_workers"]
    results["speedup_2_workers_vs_one_process"] = (
        timings["one_process_all_threads"] / timings["cluster_2_workers"]
    )
    print(
        f"{args.curves} curves × {args.points} points, chunks of {args.chunk_size}, "
        f"{results['cpu_cores']} cores, best of {args.repeats}"
    )
    for name, seconds in timings.items():
        print(f"  {name:<36} {seconds:7.2f} s  {args.curves / seconds:8.0f} curves/s")
    print(
        f"  speed-up 2 vs 1 workers: {results['speedup_2_vs_1_workers']:.2f}×; "
        f"2 workers vs one process ({all_threads} threads): "
        f"{results['speedup_2_workers_vs_one_process']:.2f}×"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
