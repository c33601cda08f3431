"""Ablation of the steps from SpecRRMoco to the ``xrdphase`` method (paper protocol).

Each variant is a ``MethodSpec`` (registered under its name for the run) plus ``pretrain``
keyword arguments. Every variant is pretrained on D1, D4, D8, D9 (or, with ``--transductive``,
on every series of the suite: a different protocol, report it separately), probed with the
L-BFGS linear classifier on the same 42 labels per label seed, and scored on all other curves.

    python -m benchmarks.ablation --variants specrrmoco xrdphase --epochs 60 --data-seed 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.protocol import (
    PRETRAIN_SERIES,
    product_labels,
    raw_logistic_predictions,
    sample_labels,
    unlabelled_rows,
    weighted_scores,
)

PAPER = ("magnitude_warp", "angle_warp")
from napari_xrdphase.augment import PHYSICS_PIPELINE as PHYSICS  # noqa: E402

RR = ("inter", "intra", "external")

# name: (MethodSpec fields beyond objectives/description, pretrain kwargs)
VARIANTS: dict[str, tuple[dict, dict]] = {
    "specrrmoco": ({"objectives": RR, "moco_weight": None}, {}),
    "specrr": ({"objectives": RR, "moco_weight": 0.0}, {}),
    "specmoco": ({"objectives": (), "moco_weight": math.inf}, {}),
    # step 1: a live final ReLU
    "rrmoco_bnfix": ({"objectives": RR, "moco_weight": None, "init": "positive_final_bn"}, {}),
    # step 2: physics augmentations instead of the angle warp
    "rrmoco_bnfix_phys": (
        {
            "objectives": RR,
            "moco_weight": None,
            "init": "positive_final_bn",
            "augmentations": PHYSICS,
        },
        {},
    ),
    # step 3: MoCo weighted so that it learns (c = 1)
    "rrmoco_bnfix_phys_c1": (
        {
            "objectives": RR,
            "moco_weight": 1.0,
            "init": "positive_final_bn",
            "augmentations": PHYSICS,
        },
        {},
    ),
    "rrmoco_bnfix_phys_c1_lr05": (
        {
            "objectives": RR,
            "moco_weight": 1.0,
            "init": "positive_final_bn",
            "augmentations": PHYSICS,
            "lr": 0.05,
        },
        {},
    ),
    "moco_bnfix_phys": (
        {
            "objectives": (),
            "moco_weight": math.inf,
            "init": "positive_final_bn",
            "augmentations": PHYSICS,
        },
        {},
    ),
    "rr_bnfix_phys": (
        {
            "objectives": RR,
            "moco_weight": 0.0,
            "init": "positive_final_bn",
            "augmentations": PHYSICS,
        },
        {},
    ),
    "ext_moco_bnfix_phys": (
        {
            "objectives": ("external",),
            "moco_weight": 1.0,
            "init": "positive_final_bn",
            "augmentations": PHYSICS,
        },
        {},
    ),
    "rrmoco_bnfix_phys_c1_t02": (
        {
            "objectives": RR,
            "moco_weight": 1.0,
            "init": "positive_final_bn",
            "augmentations": PHYSICS,
            "temperature": 0.2,
        },
        {},
    ),
    # collapse-safe candidates: physics augmentations with the reference init
    "rrmoco_phys": ({"objectives": RR, "moco_weight": None, "augmentations": PHYSICS}, {}),
    "rr_phys": ({"objectives": RR, "moco_weight": 0.0, "augmentations": PHYSICS}, {}),
    "rrmoco_phys_c01": ({"objectives": RR, "moco_weight": 0.1, "augmentations": PHYSICS}, {}),
    "rrmoco_phys_c1": (
        {"objectives": RR, "moco_weight": 1.0, "augmentations": PHYSICS},
        {},
    ),
}


def register(name: str) -> str:
    """Register variant ``name`` in ``ssl.METHODS`` (if not there already) and return it."""
    from napari_xrdphase import ssl

    if name in ssl.METHODS:
        return name
    fields, _ = VARIANTS[name]
    ssl.METHODS[name] = ssl.MethodSpec(description=f"ablation variant {name}", **fields)
    return name


def embedding_diagnostics(encoder, stacks, embedded=None) -> dict:
    """Return how much the embedding varies between curves (0 = collapsed).

    ``embedded`` ({stack name: embeddings}) saves embedding the stacks again.
    """
    embedded = embedded or {}
    emb = np.concatenate(
        [embedded[s.name] if s.name in embedded else encoder.embed(s) for s in stacks]
    )
    std = emb.std(axis=0)
    centred = emb - emb.mean(axis=0)
    sv = np.linalg.svd(centred, compute_uv=False)
    p = sv**2 / max((sv**2).sum(), 1e-30)
    eff_rank = float(np.exp(-(p * np.log(p + 1e-30)).sum())) if sv.sum() > 0 else 0.0
    return {
        "mean_std": float(std.mean()),
        "dead_dims": int((emb.max(axis=0) <= 0).sum()),
        "effective_rank": eff_rank,
    }


def embed_suite(encoder, suite) -> dict:
    """Return {series name: embeddings} of every series of ``suite``."""
    return {s.stack.name: encoder.embed(s.stack) for s in suite}


def evaluate_encoder(encoder, suite, label_sets, embedded=None, ordered=True) -> list[dict]:
    """Probe ``encoder`` on each label set and score the product's labels (``product_labels``).

    ``embedded`` (``embed_suite``) saves embedding the series again; ``ordered=False`` scores
    each curve's most probable class.
    """
    from napari_xrdphase.classify import fit_classifier

    truth = {s.stack.name: s.labels for s in suite}
    stacks = [s.stack for s in suite]
    runs = []
    embedded = embed_suite(encoder, suite) if embedded is None else embedded
    for labels in label_sets:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = fit_classifier(encoder, stacks, labels, seed=0)  # embeds the labelled rows
        # each series is embedded once for all label sets
        proba = {s.name: clf.predict_proba(embedded[s.name]) for s in stacks}
        predicted = product_labels(suite, labels, clf.classes, proba, ordered)
        runs.append(weighted_scores(truth, predicted, unlabelled_rows(truth, labels)))
    return runs


def summarise(runs) -> dict:
    out = {}
    for g in ("Fe", "FeO"):
        for k in ("precision", "recall"):
            v = [r["groups"][g][k] for r in runs]
            out[f"{g}_{k[0].upper()}"] = (float(np.mean(v)), float(np.std(v)))
    return out


def evaluate_pretrained(trained, suite, label_sets, encoders=None):
    """Probe each pretrained encoder of ``trained`` (pairs of encoder, s/epoch) on ``label_sets``.

    Returns (runs in seed-major order, extra) as ``run_variant``; the encoders are appended to
    ``encoders`` when a list is given. ``trained`` may be lazy: each encoder is probed before the
    next one is asked for.
    """
    runs, diags, speeds, losses = [], [], [], []
    for enc, s_per_epoch in trained:
        speeds.append(s_per_epoch)
        if encoders is not None:
            encoders.append(enc)
        embedded = embed_suite(enc, suite)  # once for the diagnostics and every label set
        diags.append(embedding_diagnostics(enc, [s.stack for s in suite], embedded))
        losses.append(enc.config["training"].get("final_losses"))
        runs += evaluate_encoder(enc, suite, label_sets, embedded)
    return runs, {"diag": diags, "s_per_epoch": float(np.median(speeds)), "final_losses": losses}


def run_variant(
    name, suite, label_sets, train_stacks, epochs, seeds, device, input_length,
    pretrain_kwargs=None, encoders=None,
):  # fmt: skip
    """Pretrain variant ``name`` once per seed, probe it, return (runs, extra).

    ``pretrain_kwargs`` add to (and override) the variant's own ``pretrain`` settings; the
    trained encoders are appended to ``encoders`` when a list is given.
    """
    from napari_xrdphase import ssl
    from napari_xrdphase.training import pretrain

    method = name if name in ssl.METHODS else register(name)
    kwargs = {**VARIANTS.get(name, ({}, {}))[1], **(pretrain_kwargs or {})}

    def trained():
        for seed in seeds:
            start = time.perf_counter()
            enc = pretrain(
                train_stacks, method=method, epochs=epochs, seed=seed,
                input_length=input_length, device=device, **kwargs,
            )  # fmt: skip
            s_per_epoch = (time.perf_counter() - start) / epochs
            yield (enc.to("cpu") if device != "cpu" else enc), s_per_epoch

    return evaluate_pretrained(trained(), suite, label_sets, encoders)


# --- pretraining jobs, in this process or in a pool of worker processes --------------------------
_SUITES: dict = {}  # (data seed, n_points) -> simulated suite, per process


def train_stacks_of(suite, stride: int = 1, transductive: bool = False):
    """Return the pretraining stacks of ``suite``: D1, D4, D8, D9 (or all), every ``stride``-th curve."""
    stacks = [s.stack for s in suite if transductive or s.stack.name in PRETRAIN_SERIES]
    return [s.subset(slice(None, None, stride)) for s in stacks] if stride > 1 else stacks


def make_job(
    name: str,
    seed: int,
    epochs: int,
    device: str,
    *,
    data_seed: int,
    n_points: int,
    input_length: int,
    train_stride: int = 1,
    transductive: bool = False,
    pretrain_kwargs: dict | None = None,
) -> dict:
    """Return one pretraining of variant ``name`` as plain data (picklable, no models).

    The method's ``MethodSpec`` travels as its fields, so a worker process registers variants
    the parent added at run time (Table 5's MoCo weights, Fig. 8's augmentation pairs).
    """
    from napari_xrdphase import ssl

    method = name if name in ssl.METHODS else register(name)
    spec = ssl.METHODS[method]
    return {
        "method": method,
        "spec": {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)},
        "seed": int(seed),
        "epochs": int(epochs),
        "pretrain_kwargs": {**VARIANTS.get(name, ({}, {}))[1], **(pretrain_kwargs or {})},
        "data_seed": int(data_seed),
        "n_points": int(n_points),
        "input_length": int(input_length),
        "train_stride": int(train_stride),
        "transductive": bool(transductive),
        "device": str(device),
    }


def pretrain_job(job: dict, suite=None) -> dict:
    """Run one job of ``make_job``: {"encoder" or, with ``job["path"]``, "path"; "s_per_epoch"}.

    Without ``suite`` the paper suite of the job's data seed is simulated here (deterministic,
    once per process). With ``job["path"]`` the encoder is saved there (``Encoder.save``,
    safetensors) instead of returned, for a worker process.
    """
    from napari_xrdphase import ssl
    from napari_xrdphase.synth import paper_suite
    from napari_xrdphase.training import pretrain

    name = job["method"]
    if name not in ssl.METHODS:
        ssl.METHODS[name] = ssl.MethodSpec(**job["spec"])
    if suite is None:
        key = (job["data_seed"], job["n_points"])
        if key not in _SUITES:
            _SUITES[key] = paper_suite(seed=job["data_seed"], n_points=job["n_points"])
        suite = _SUITES[key]
    start = time.perf_counter()
    enc = pretrain(
        train_stacks_of(suite, job["train_stride"], job.get("transductive", False)), method=name, epochs=job["epochs"],
        seed=job["seed"], input_length=job["input_length"], device=job["device"],
        **job["pretrain_kwargs"],
    )  # fmt: skip
    s_per_epoch = (time.perf_counter() - start) / job["epochs"]
    enc = enc.to("cpu") if job["device"] != "cpu" else enc
    if job.get("path"):
        enc.save(job["path"])
        return {"path": str(job["path"]), "s_per_epoch": s_per_epoch}
    return {"encoder": enc, "s_per_epoch": s_per_epoch}


def available_cores() -> int:
    """Return the number of CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _init_worker(threads: int) -> None:
    import torch

    import napari_xrdphase.encoder  # noqa: F401  (reads torch's default thread count at import)

    os.environ["OMP_NUM_THREADS"] = str(threads)  # tells the encoder the user chose it
    torch.set_num_threads(threads)


class Pretrainer:
    """Runs pretraining jobs (``make_job``): in this process, or in a pool of ``jobs`` workers.

    ``submit`` queues a job under a key (a job submitted twice runs once); ``result`` returns
    (encoder on the CPU, seconds per epoch). With ``jobs`` = 1 a job runs in this process when
    its result is first asked for, on ``suite`` (the sequential behaviour). With ``jobs`` > 1
    jobs start at once in a 'spawn' process pool in submission order; each worker simulates the
    suite itself, uses cores // jobs torch threads (all workers share one GPU on cuda) and saves
    the encoder to a temporary safetensors file that ``result`` loads. Nothing is pickled but
    plain data. The results are the same: the runs are seeded and the data deterministic.
    """

    def __init__(self, jobs: int = 1, suite=None):
        self.jobs = max(1, int(jobs))
        self.suite = suite
        self._jobs: dict = {}
        self._futures: dict = {}
        self._pool = None
        self._folder = None
        if self.jobs > 1:
            self.threads = max(1, available_cores() // self.jobs)
            self._folder = tempfile.TemporaryDirectory(prefix="xrdphase-benchmarks-")
            self._pool = ProcessPoolExecutor(
                self.jobs,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.threads,),
            )

    @staticmethod
    def key(job: dict):
        kwargs = json.dumps(job["pretrain_kwargs"], sort_keys=True, default=str)
        return (
            job["method"], job["seed"], job["epochs"], job["data_seed"],
            job.get("transductive", False), kwargs,
        )  # fmt: skip

    def submit(self, job: dict):
        """Queue ``job`` (started now in pool mode) and return its key."""
        key = self.key(job)
        if key in self._jobs:
            return key
        self._jobs[key] = job
        if self._pool is not None:
            path = Path(self._folder.name) / f"encoder_{len(self._jobs)}.safetensors"
            self._futures[key] = self._pool.submit(pretrain_job, {**job, "path": str(path)})
        return key

    def result(self, job: dict):
        """Return (encoder on the CPU, seconds per epoch) of ``job``, submitting it if needed."""
        from napari_xrdphase.encoder import Encoder

        key = self.submit(job)
        if self._pool is None:
            out = pretrain_job(self._jobs[key], suite=self.suite)
            return out["encoder"], out["s_per_epoch"]
        out = self._futures[key].result()
        encoder = Encoder.load(out["path"])
        Path(out["path"]).unlink(missing_ok=True)
        return encoder, out["s_per_epoch"]

    def results(self, jobs):
        """Yield ``result`` of each job in order (lazily: one job at a time without a pool)."""
        for job in jobs:
            yield self.result(job)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["specrrmoco", "xrdphase"])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--label-seeds", type=int, default=3)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--points", type=int, default=4000)
    parser.add_argument("--input-length", type=int, default=1024)
    parser.add_argument("--transductive", action="store_true")
    parser.add_argument("--baselines", action="store_true")
    parser.add_argument(
        "--plan",
        help="JSON list of [variant, data_seed, transductive] run in order (overrides "
        "--variants/--data-seed/--transductive); results are written after each",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import torch

    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.preprocess import common_window
    from napari_xrdphase.synth import paper_suite

    if args.plan:
        plan = [tuple(item) for item in json.loads(args.plan)]
    else:
        plan = [(name, args.data_seed, args.transductive) for name in args.variants]
        if args.baselines:
            plan.insert(0, ("random_init", args.data_seed, False))
    results = {
        "args": vars(args),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "variants": {},
    }
    suites = {}
    for name, data_seed, transductive in plan:
        if data_seed not in suites:
            suites[data_seed] = paper_suite(seed=data_seed, n_points=args.points)
        suite = suites[data_seed]
        truth = {s.stack.name: s.labels for s in suite}
        label_sets = [sample_labels(truth, 42, seed=k) for k in range(args.label_seeds)]
        if transductive:
            train_stacks = [s.stack for s in suite]
        else:
            train_stacks = [s.stack for s in suite if s.stack.name in PRETRAIN_SERIES]
        key = f"{name}|data{data_seed}" + ("|transductive" if transductive else "")
        if name == "random_init":
            runs = []
            for seed in args.seeds:
                window = common_window(train_stacks)  # the grid pretraining uses
                enc = Encoder.random(seed=seed, input_length=args.input_length, window=window)
                runs += evaluate_encoder(enc, suite, label_sets)
            extra = {}
        elif name == "raw_logistic":
            runs = []
            for labels in label_sets:
                pred = raw_logistic_predictions(suite, labels, 0)
                runs.append(weighted_scores(truth, pred, unlabelled_rows(truth, labels)))
            extra = {}
        else:
            runs, extra = run_variant(
                name, suite, label_sets, train_stacks, args.epochs, args.seeds, args.device,
                args.input_length,
            )  # fmt: skip
        summary = summarise(runs)
        results["variants"][key] = {"summary": summary, "runs": runs, **extra}
        line = "  ".join(f"{k} {m * 100:5.1f}±{s * 100:4.1f}" for k, (m, s) in summary.items())
        diag = [{k: round(v, 3) for k, v in d.items()} for d in extra.get("diag", [])]
        print(f"{key:<40} {line}  {diag} {extra.get('s_per_epoch', 0):.2f}s/ep",
              file=sys.stderr, flush=True)  # fmt: skip
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
