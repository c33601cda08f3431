"""The whole benchmark suite in one run: Tables 2–5 and Fig. 8 of Sun et al. (2023), and speed.

    python -m benchmarks [--quick] [--device cpu|cuda] [--out DIR] [--jobs N]
                         [--steps STEP ...] [--seeds K] [--label-seeds M]
                         [--epochs E] [--fig8-epochs E]

Runs these steps (all by default; ``--steps`` picks some, always in this order) and writes JSON
to DIR (default ``benchmarks/results/suite/``) after each step — and after each method or cell
within the long steps — plus a markdown report ``DIR/report.md``:

1. ``table2`` — **Table 2**, linear evaluation (``benchmarks/ablation.py``): every method
   pretrained on D1, D4, D8, D9 and probed on 42 labels (≈ 2.8 %) and, in full mode, 152 labels
   (≈ 10 %), scored on every other curve; plus raw-curve baselines (logistic regression, k-NN,
   PCA + logistic regression) and the untrained encoder.
2. ``clustering`` — **Tables 3–4**, spectral clustering (``napari_xrdphase.explore``).
3. ``umap`` — UMAP maps of D1, D6, D9 (full mode).
4. ``fig8`` — **Fig. 8**, SpecRRMoco pretrained with each ordered pair of augmentations
   (``benchmarks/augmentation_pairs.py``).
5. ``table5`` — **Table 5** (full mode): the MoCo weight c of SpecRRMoco.
6. ``independent`` — the product on series from an independent simulator, written as other
   programs write them and read back (``benchmarks/independent.py``): built-in encoder,
   pretrained on those series, untrained, raw logistic regression; phase boundaries too.
7. ``speed`` — ``benchmarks/speed.py``'s ``measure``.

Full mode: 5 self-supervised methods × 4 pretraining seeds × 5 label draws = 20 runs each,
60 epochs; Table 5 adds 4 weights × 4 seeds, Fig. 8 25 pairs × 30 epochs: 61 pretrainings,
2,910 epochs. ``--jobs N`` runs the pretrainings of Table 2, Fig. 8 and Table 5 in N worker
processes at once (sharing the one GPU with ``--device cuda``); results are the same as with
``--jobs 1``. ``--quick`` is a smoke test of the whole pipeline (tiny data, 5 short epochs, a
2 × 2 Fig. 8 of 1 epoch; < 1 minute on 2 CPU cores); its numbers are not comparable with the
paper.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import itertools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import ablation, augmentation_pairs, independent
from benchmarks.protocol import (
    GROUPS,
    RAW_BASELINES,
    prepared_curves,
    sample_labels,
    unlabelled_rows,
    weighted_scores,
)

DEFAULT_OUT = "benchmarks/results/suite"
TABLE2_METHODS = (
    "xrdphase",
    "specrrmoco",
    "specrr",
    "specmoco",
    "specselftime",
    "random_init",
    "raw_logistic",
    "raw_knn",
    "raw_pca_logistic",
)
# methods of Table 2 without pretraining
BASELINES = ("random_init", *RAW_BASELINES)
# the Fe series by direction of the pressure ramp (the paper's Fe data: compression, as far as
# its Table 1 tells; D6 and D7 are this project's decompression series, with hysteresis)
FE_BY_RAMP = {"compression": ("D1", "D2", "D3", "D4", "D5"), "decompression": ("D6", "D7")}
# every step, in the order it runs (``--steps`` picks a subset)
STEPS = ("table2", "clustering", "umap", "fig8", "table5", "independent", "speed")
# Sun et al. 2023, Table 2 (real data, 2.8 % labels): SpecRRMoco
PAPER_TABLE2 = {"specrrmoco": {"Fe_P": 99.6, "Fe_R": 99.6, "FeO_P": 96.3, "FeO_R": 96.5}}
MOCO_WEIGHTS = (0.0, 0.001, 0.01, 0.1, 1.0, math.inf)
AFFINITIES = ("nearest_neighbors", "rbf")
ASSIGN_LABELS = ("kmeans", "discretize")
# which pretrained encoders (seed 0) are clustered in full mode
CLUSTERED_METHODS = ("xrdphase", "specrrmoco")

CONFIGS = {
    "full": {
        "data_seed": 0,
        "n_points": 4000,
        "input_length": 1024,
        "epochs": 60,
        # 4 pretraining seeds × 5 label draws = 20 runs per method (random-init: 4 init seeds;
        # raw-curve baselines: 5 runs, they have no pretraining seed)
        "seeds": [0, 1, 2, 3],
        "label_seeds": 5,
        "n_labels": [42, 152],
        "methods": list(TABLE2_METHODS),
        "train_stride": 1,
        "pretrain_kwargs": {},
        "moco_weights": list(MOCO_WEIGHTS),
        "cluster_pretrained": True,
        "figures": True,
        # Fig. 8: one SpecRRMoco pretraining per ordered augmentation pair (25)
        "fig8": {
            "augmentations": list(augmentation_pairs.AUGMENTATIONS),
            "epochs": 30,
            "seeds": [0],
        },
        # the independent simulator: 2 suites × 5 label draws, pretraining as the product does
        "independent": {"seeds": [0, 1], "label_seeds": 5, "epochs": 60},
        "speed": {"epochs": 2, "methods": ["xrdphase", "specrrmoco"], "repeats": 5},
    },
    # smoke test: 600-point curves at 300 input points (the shortest the intra-sample pieces
    # allow: 0.2 · 300 = 60 points, ConvSC's minimum), every 4th pretraining curve (218), 5 epochs
    # of batch 64 (20 steps; after 12 the batch norms' running variances, which start at 1 and
    # decay by 0.9 a step, are still far above the tiny true ones, so every output is dead)
    "quick": {
        "data_seed": 0,
        "n_points": 600,
        "input_length": 300,
        "epochs": 5,
        "seeds": [0],
        "label_seeds": 2,
        "n_labels": [42],
        "methods": ["xrdphase", "random_init", "raw_logistic", "raw_knn", "raw_pca_logistic"],
        "train_stride": 4,
        "pretrain_kwargs": {"batch_size": 64},
        "moco_weights": [],
        "cluster_pretrained": False,
        "figures": False,
        # a 2 × 2 Fig. 8 of one epoch each: the step runs, its numbers mean nothing
        "fig8": {"augmentations": ["window_slice", "angle_warp"], "epochs": 1, "seeds": [0]},
        # no pretraining: the built-in encoder, an untrained one and the raw curves (~15 s), at
        # the full input length (nothing is trained, so it costs little)
        "independent": {"seeds": [0], "label_seeds": 1, "epochs": 0, "input_length": 1024},
        "speed": {"epochs": 0, "methods": [], "repeats": 3},
    },
}
# For the estimate printed at the start, measured at full size with SpecRRMoco (methods without
# MoCo are faster) on one H200: (parallel jobs, epochs per second of all jobs together) — one
# run alone 0.36 s/epoch; 16 at once 2 s/epoch each; the card saturates at about 8 jobs — plus
# about 5 s to start each pretraining. On 2 CPU threads: 9.3 s/epoch.
GPU_EPOCHS_PER_SECOND = ((1, 2.8), (4, 5.7), (8, 8.0), (16, 8.0))
GPU_START_SECONDS = 5.0
CPU_SECONDS_PER_EPOCH = 9.3


def _log(message: str) -> None:
    print(f"[benchmarks] {message}", file=sys.stderr, flush=True)


def _jsonable(value):
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(data), indent=1, default=str))
    tmp.replace(path)  # a run killed while writing keeps the previous file


def _data(cfg) -> dict:
    """Return the data settings of a pretraining job (``ablation.make_job`` keywords)."""
    return {
        "data_seed": cfg["data_seed"],
        "n_points": cfg["n_points"],
        "input_length": cfg["input_length"],
        "train_stride": cfg["train_stride"],
        "pretrain_kwargs": cfg["pretrain_kwargs"],
    }


def ssl_jobs(method: str, cfg: dict, device: str) -> list[dict]:
    """Return the pretraining jobs of ``method`` in Table 2 (one per pretraining seed)."""
    return [
        ablation.make_job(method, seed, cfg["epochs"], device, **_data(cfg))
        for seed in cfg["seeds"]
    ]


def table5_plan(cfg: dict, table2_methods) -> list[tuple[float, str, bool]]:
    """Return (c, method, reused from Table 2) per MoCo weight; registers the new variants."""
    from napari_xrdphase.defaults import DEFAULT_MOCO_WEIGHT

    plan = []
    for c in cfg["moco_weights"]:
        reuse = "specmoco" if math.isinf(c) else "specrrmoco" if c == DEFAULT_MOCO_WEIGHT else None
        if reuse and reuse in table2_methods:
            plan.append((c, reuse, True))
            continue
        name = "specmoco" if math.isinf(c) else f"specrrmoco_c{c:g}".replace(".", "p")
        if name not in ablation.VARIANTS and not math.isinf(c):
            fields = {"objectives": ablation.RR, "moco_weight": None}
            ablation.VARIANTS[name] = (fields, {"c": float(c)})
        plan.append((c, name, False))
    return plan


def pretraining_jobs(cfg: dict, steps, device: str) -> dict[str, list[dict]]:
    """Return {step: pretraining jobs} of the steps that pretrain, in submission order."""
    jobs: dict[str, list[dict]] = {}
    if "table2" in steps:
        jobs["table2"] = [
            job for m in cfg["methods"] if m not in BASELINES for job in ssl_jobs(m, cfg, device)
        ]
    if "fig8" in steps:
        jobs["fig8"] = augmentation_pairs.make_jobs(cfg, device)
    if "table5" in steps:
        table2_methods = cfg["methods"] if "table2" in steps else ()
        jobs["table5"] = [
            job
            for _, name, reused in table5_plan(cfg, table2_methods)
            if not reused
            for job in ssl_jobs(name, cfg, device)
        ]
    return jobs


def plan_message(cfg: dict, jobs: dict, steps, n_jobs: int, device: str, mode: str) -> str:
    """Return the line printed at the start: how many pretrainings, epochs and about how long."""
    parts = []
    for step, these in jobs.items():
        if these:
            epochs = sorted({j["epochs"] for j in these})
            parts.append(f"{step} {len(these)} × {'/'.join(map(str, epochs))} epochs")
    count = sum(len(j) for j in jobs.values())
    epochs = sum(j["epochs"] for these in jobs.values() for j in these)
    line = f"{mode} mode, steps {' '.join(steps)}: {count} pretrainings, {epochs} epochs"
    line += f" ({', '.join(parts)})" if parts else ""
    sp = cfg["speed"]
    if "speed" in steps and sp["methods"]:
        line += f" + speed {len(sp['methods'])} × {max(sp['epochs'], 1)} epochs"
    line += f"; {n_jobs} job{'s' if n_jobs > 1 else ''} on {device}"
    if mode == "full" and epochs:
        if str(device).startswith("cuda"):
            minutes = estimate_gpu_seconds(epochs, count, n_jobs) / 60
            line += (
                f". Estimate on one H200: {minutes:.0f} min of pretraining "
                f"(one at a time {estimate_gpu_seconds(epochs, count, 1) / 60:.0f} min; the card "
                "saturates at about 8 jobs, 8 epochs/s)"
            )
        else:
            hours = epochs * CPU_SECONDS_PER_EPOCH / 3600
            line += f". Estimate: {hours:.1f} h one at a time on 2 CPU threads"
            line += f", ÷ at most {n_jobs} with {n_jobs} jobs" if n_jobs > 1 else ""
    return line


def estimate_gpu_seconds(epochs: int, count: int, n_jobs: int) -> float:
    """Return the pretraining seconds of ``count`` runs, ``epochs`` in all, on one H200."""
    points = GPU_EPOCHS_PER_SECOND
    n = min(max(n_jobs, points[0][0]), points[-1][0])
    rate = next(
        r0 + (r1 - r0) * (n - n0) / (n1 - n0)
        for (n0, r0), (n1, r1) in itertools.pairwise(points)
        if n <= n1
    )
    return epochs / rate + count * GPU_START_SECONDS / max(1, n_jobs)


def evaluate_method(
    method, suite, label_sets, cfg, device, pretrainer, encoders=None, prepared=None
):
    """Return (runs in label-set order, repeated per pretraining seed; extra) for one method."""
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.preprocess import common_window

    truth = {s.stack.name: s.labels for s in suite}
    if method == "random_init":
        runs = []
        for seed in cfg["seeds"]:
            window = common_window([s.stack for s in suite])  # the grid pretraining uses
            enc = Encoder.random(seed=seed, input_length=cfg["input_length"], window=window)
            runs += ablation.evaluate_encoder(enc, suite, label_sets)
        return runs, {}
    if method in RAW_BASELINES:
        prepared = prepared_curves(suite) if prepared is None else prepared
        predict = RAW_BASELINES[method]
        runs = [
            weighted_scores(
                truth, predict(suite, labels, 0, prepared=prepared), unlabelled_rows(truth, labels)
            )
            for labels in label_sets
        ]
        return runs, {}
    store: list = []
    trained = pretrainer.results(ssl_jobs(method, cfg, device))
    runs, extra = ablation.evaluate_pretrained(trained, suite, label_sets, store)
    if encoders is not None:
        encoders[method] = store
    return runs, extra


def label_draws(suite, cfg) -> list[tuple[int, dict]]:
    """Return Table 2's (n labels, label set) draws: label-count-major, then draw seed."""
    truth = {s.stack.name: s.labels for s in suite}
    return [
        (n, sample_labels(truth, n, seed=k))
        for n in cfg["n_labels"]
        for k in range(cfg["label_seeds"])
    ]


def table2(suite, cfg, device, encoders, pretrainer, on_progress=None) -> dict:
    """Linear evaluation of every method at each label count (2.8 % and, in full mode, 10 %)."""
    truth = {s.stack.name: s.labels for s in suite}
    total = sum(len(y) for y in truth.values())
    label_sets = label_draws(suite, cfg)
    prepared = prepared_curves(suite) if any(m in RAW_BASELINES for m in cfg["methods"]) else None
    out = {"n_curves": total, "methods": {}}
    for method in cfg["methods"]:
        start = time.perf_counter()
        keep = encoders if method in CLUSTERED_METHODS else None
        runs, extra = evaluate_method(
            method, suite, [ls for _, ls in label_sets], cfg, device, pretrainer, keep, prepared
        )
        entry = {"seconds": time.perf_counter() - start, **extra, "by_labels": {}}
        for n in cfg["n_labels"]:
            # run i was scored with label set i mod len(label_sets) (seed-major order)
            mine = [r for i, r in enumerate(runs) if label_sets[i % len(label_sets)][0] == n]
            entry["by_labels"][str(n)] = {
                "fraction": n / total,
                "summary": ablation.summarise(mine),
                "runs": mine,
            }
        out["methods"][method] = entry
        s = entry["by_labels"][str(cfg["n_labels"][0])]["summary"]
        _log(
            f"table 2 {method:<16} "
            + "  ".join(f"{k} {m * 100:5.1f}±{d * 100:4.1f}" for k, (m, d) in s.items())
            + f"  ({entry['seconds']:.0f} s)"
        )
        if on_progress is not None:
            on_progress(out)
    return out


def table5(suite, cfg, device, t2, pretrainer, on_progress=None) -> dict:
    """SpecRRMoco at each MoCo weight c (c = ∞ is SpecMoco), 42 labels."""
    truth = {s.stack.name: s.labels for s in suite}
    label_sets = [sample_labels(truth, 42, seed=k) for k in range(cfg["label_seeds"])]
    out = {}
    table2_methods = t2["methods"] if t2 else {}
    for c, name, reused in table5_plan(cfg, table2_methods):
        if reused:
            entry = t2["methods"][name]["by_labels"]["42"]
            out[str(c)] = {"method": name, "summary": entry["summary"], "runs": entry["runs"]}
        else:
            runs, extra = evaluate_method(name, suite, label_sets, cfg, device, pretrainer)
            summary = ablation.summarise(runs)
            out[str(c)] = {"method": name, "summary": summary, "runs": runs, **extra}
        s = out[str(c)]["summary"]
        _log(f"table 5 c={c:<6g} Fe P {s['Fe_P'][0] * 100:5.1f}  FeO P {s['FeO_P'][0] * 100:5.1f}")
        if on_progress is not None:
            on_progress(out)
    return out


def clustering(suite, feature_sets, seed: int = 0) -> dict:
    """Spectral clustering per series and feature set; mean ± std over affinity × assignment."""
    from napari_xrdphase.explore import clustering_scores, spectral_clusters

    out = {}
    for fname, featurize in feature_sets.items():
        series = {}
        for s in suite:
            name = s.stack.name
            values = featurize(s.stack)
            k = 3 if name in GROUPS["Fe"] else 2
            configs = []
            for affinity in AFFINITIES:
                for assign in ASSIGN_LABELS:
                    clusters = spectral_clusters(values, k, affinity, assign, seed=seed)
                    scores = clustering_scores(values, clusters, s.labels)
                    configs.append({"affinity": affinity, "assign_labels": assign, **scores})
            summary = {
                key: (float(np.nanmean(v)), float(np.nanstd(v)))
                for key in ("silhouette", "nmi", "ari")
                for v in [[c[key] for c in configs]]
            }
            series[name] = {"n_clusters": k, "summary": summary, "configs": configs}
        groups = {
            g: {
                key: float(np.nanmean([series[n]["summary"][key][0] for n in names if n in series]))
                for key in ("silhouette", "nmi", "ari")
            }
            for g, names in GROUPS.items()
        }
        out[fname] = {"series": series, "groups": groups}
        _log(
            f"clustering {fname:<22} "
            + "  ".join(
                f"{g} NMI {v['nmi']:.2f} sil {v['silhouette']:.2f}" for g, v in groups.items()
            )
        )
    return out


def umap_figures(suite, feature_sets, out: Path, series=("D1", "D6", "D9"), seed: int = 0):
    """Save one PNG per series: UMAP maps of each feature set, coloured by the true phase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_xrdphase.explore import embed_umap

    paths = []
    for s in suite:
        if s.stack.name not in series:
            continue
        fig, axes = plt.subplots(1, len(feature_sets), figsize=(4 * len(feature_sets), 4))
        for ax, (fname, featurize) in zip(np.atleast_1d(axes), feature_sets.items(), strict=True):
            xy = embed_umap(featurize(s.stack), seed=seed)
            present = set(np.unique(s.labels))
            order = [c for c in ("before", "during", "after") if c in present]
            for cls in order + sorted(present - set(order)):
                rows = s.labels == cls
                ax.scatter(xy[rows, 0], xy[rows, 1], s=6, label=str(cls))
            ax.set_title(f"{s.stack.name}: {fname}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        np.atleast_1d(axes)[0].legend(fontsize=8, markerscale=2)
        fig.tight_layout()
        path = out / f"umap_{s.stack.name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path.name)
    _log(f"figures: {', '.join(paths)}")
    return paths


def _series_mean(runs, names, key) -> tuple[float, float]:
    """Return (mean, std) over runs of the mean of ``key`` over the series ``names`` present."""
    values = [np.mean([run["series"][n][key] for n in names if n in run["series"]]) for run in runs]
    return float(np.mean(values)), float(np.std(values))


def _cell(pair) -> str:
    mean, std = pair
    return f"{mean * 100:.1f} ± {std * 100:.1f}"


def report(results: dict) -> str:
    """Return the markdown report of a suite run (of the steps finished so far)."""
    cfg, mode = results["config"], results["mode"]
    n_seeds, n_draws = len(cfg["seeds"]), cfg["label_seeds"]
    lines = [
        f"# Benchmark suite ({mode} mode)",
        "",
        f"Data seed {cfg['data_seed']}, {cfg['n_points']} points per simulated curve, "
        f"{cfg['input_length']} input points, {cfg['epochs']} pretraining epochs, pretraining "
        f"seeds {cfg['seeds']}, {n_draws} label draws, device {results['device']}"
        f" ({results.get('cuda') or 'no GPU'}, {results['torch_threads']} torch threads, "
        f"{results.get('jobs', 1)} parallel pretraining job(s)). "
        f"Steps {', '.join(results.get('steps', []))}; wall time {results['seconds']:.0f} s.",
    ]
    if results.get("unfinished"):
        lines += ["", f"**Unfinished run**: still to do: {', '.join(results['unfinished'])}."]
    for step, why in (results.get("skipped") or {}).items():
        lines += ["", f"Step {step} skipped: {why}."]
    if mode == "quick":
        lines += [
            "",
            f"**Quick mode is a smoke test** (tiny data, {cfg['epochs']} epochs, every "
            f"{cfg['train_stride']}th pretraining curve): its numbers say the pipeline runs, "
            "not how good a method is. Use full mode for Table 2.",
        ]
    t2 = results.get("table2")
    if t2:
        for n in cfg["n_labels"]:
            frac = n / t2["n_curves"] * 100
            lines += [
                "",
                f"## Table 2: linear evaluation, {n} labels ({frac:.1f} %)",
                "",
                "Weighted precision (P) and recall (R) in %, mean ± std over runs, on every "
                f"unlabelled curve. Runs: self-supervised methods {n_seeds} pretraining seeds × "
                f"{n_draws} label draws, random-init {n_seeds} init seeds × {n_draws} label "
                f"draws, raw-curve baselines {n_draws} label draws (no pretraining seed). "
                "Every method's labels are made as the product makes them: in phase order "
                "along the ramp, labelled curves as labelled.",
                "",
                "| method | Fe P | Fe R | FeO P | FeO R | runs | Fe P, compression "
                "series | Fe P, decompression series |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            if n == 42:
                for method, p in PAPER_TABLE2.items():
                    lines.append(
                        f"| paper, {method} (Sun et al. 2023, real data) | {p['Fe_P']} | "
                        f"{p['Fe_R']} | {p['FeO_P']} | {p['FeO_R']} | | | |"
                    )
            for method, entry in t2["methods"].items():
                block = entry["by_labels"][str(n)]
                s = block["summary"]
                cells = " | ".join(_cell(s[k]) for k in ("Fe_P", "Fe_R", "FeO_P", "FeO_R"))
                by_ramp = " | ".join(
                    _cell(_series_mean(block["runs"], names, "precision"))
                    for names in FE_BY_RAMP.values()
                )
                lines.append(f"| {method} | {cells} | {len(block['runs'])} | {by_ramp} |")
    cl = results.get("clustering")
    if cl:
        for key, title in (("silhouette", "Table 3: silhouette"), ("nmi", "Table 4: NMI vs truth")):
            names = list(next(iter(cl.values()))["series"])
            lines += [
                "",
                f"## {title} (spectral clustering; 3 clusters Fe, 2 FeO)",
                "",
                "Mean ± std over affinity (nearest_neighbors, rbf) × assignment (kmeans, "
                "discretize). Encoder features standardised per column.",
                "",
                "| features | " + " | ".join(names) + " | Fe | FeO |",
                "| --- " * (len(names) + 3) + "|",
            ]
            for fname, entry in cl.items():
                cells = [
                    f"{entry['series'][n]['summary'][key][0]:.2f} ± "
                    f"{entry['series'][n]['summary'][key][1]:.2f}"
                    for n in names
                ]
                groups = [f"{entry['groups'][g][key]:.2f}" for g in GROUPS]
                lines.append(f"| {fname} | " + " | ".join(cells + groups) + " |")
    if results.get("figures"):
        lines += ["", "## UMAP maps (coloured by the true phase)", ""]
        lines += [f"![{name}]({name})" for name in results["figures"]]
    fig8 = results.get("fig8")
    if fig8 and fig8.get("cells"):
        lines += augmentation_pairs.report_lines(fig8)
    t5 = results.get("table5")
    if t5:
        lines += [
            "",
            "## Table 5: MoCo weight c (SpecRRMoco; c = ∞ is SpecMoco), 42 labels",
            "",
            "| c | Fe P | Fe R | FeO P | FeO R |",
            "| --- | --- | --- | --- | --- |",
        ]
        for c, entry in t5.items():
            s = entry["summary"]
            cells = " | ".join(_cell(s[k]) for k in ("Fe_P", "Fe_R", "FeO_P", "FeO_R"))
            lines.append(f"| {c.replace('inf', '∞')} | {cells} |")
    if results.get("independent"):
        lines += ["", independent.report(results["independent"], level=2).rstrip()]
    sp = results.get("speed")
    if sp:
        lines += ["", "## Speed", "", "| what | number |", "| --- | --- |"]
        for method, s in sp.get("seconds_per_epoch", {}).items():
            lines.append(
                f"| pretraining {method}, {sp['setup']['train_curves']} curves, "
                f"{sp['setup']['input_length']} points | {s:.2f} s / epoch |"
            )
        for method, s in sp.get("table2_seconds_per_epoch", {}).items():
            lines.append(
                f"| pretraining {method} in Table 2's run ({results.get('jobs', 1)} parallel "
                f"job(s)) | {s:.2f} s / epoch |"
            )
        lines.append(
            f"| inference, `Encoder.embed`, {sp['setup']['inference_length']} points | "
            f"{sp['inference_us_per_curve']:.0f} µs / curve |"
        )
    return "\n".join(lines) + "\n"


def default_steps(cfg: dict) -> list[str]:
    """Return the steps a mode runs unless ``--steps`` says otherwise."""
    off = set()
    if not cfg["figures"]:
        off.add("umap")
    if not cfg["moco_weights"]:
        off.add("table5")
    if not cfg["fig8"]["augmentations"]:
        off.add("fig8")
    return [s for s in STEPS if s not in off]


def configure(args) -> tuple[str, dict]:
    """Return (mode, configuration) with the command-line overrides applied."""
    mode = "quick" if args.quick else "full"
    cfg = copy.deepcopy(CONFIGS[mode])
    if args.seeds is not None:
        cfg["seeds"] = list(range(args.seeds))
    if args.label_seeds is not None:
        cfg["label_seeds"] = args.label_seeds
    if args.methods is not None:
        cfg["methods"] = list(args.methods)
    if args.epochs is not None:
        cfg["epochs"] = args.epochs
    if args.fig8_epochs is not None:
        cfg["fig8"]["epochs"] = args.fig8_epochs
    return mode, cfg


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv=None, cfg: dict | None = None) -> int:
    """Run the suite; ``cfg`` (for tests) replaces the mode's configuration."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test run (< 1 min)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (pretraining)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder ({DEFAULT_OUT})")
    parser.add_argument(
        "--jobs", type=_positive, default=1,
        help="pretrainings run at once in worker processes (default 1: one after the other "
        "in this process); each worker gets cores // N torch threads, all share the GPU",
    )  # fmt: skip
    parser.add_argument(
        "--steps", nargs="+", choices=STEPS, default=None, metavar="STEP",
        help=f"steps to run, of {' '.join(STEPS)} (always in that order; default: every step "
        "of the mode)",
    )  # fmt: skip
    parser.add_argument("--seeds", type=_positive, help="pretraining seeds 0 … K−1")
    parser.add_argument("--label-seeds", type=_positive, help="label draws per label count")
    parser.add_argument(
        "--methods", nargs="+", choices=TABLE2_METHODS, metavar="METHOD",
        help=f"Table 2 rows, of {' '.join(TABLE2_METHODS)} (default: every one of the mode)",
    )  # fmt: skip
    parser.add_argument("--epochs", type=_positive, help="pretraining epochs (Tables 2, 5)")
    parser.add_argument("--fig8-epochs", type=_positive, help="pretraining epochs of Fig. 8")
    args = parser.parse_args(argv)

    import torch

    from benchmarks.speed import measure
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.explore import raw_features, standardize_features
    from napari_xrdphase.synth import paper_suite

    mode, config = configure(args)
    cfg = config if cfg is None else cfg
    steps = [s for s in STEPS if s in (args.steps or default_steps(cfg))]
    skipped = {}
    if "umap" in steps and importlib.util.find_spec("umap") is None:
        # a missing optional package must not end a long run before Fig. 8 and Table 5
        skipped["umap"] = "umap-learn is not installed"
        steps.remove("umap")
        _log("skipping step umap: umap-learn is not installed")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    jobs = pretraining_jobs(cfg, steps, args.device)
    _log(plan_message(cfg, jobs, steps, args.jobs, args.device, mode))
    results = {
        "mode": mode,
        "config": cfg,
        "steps": steps,
        "jobs": args.jobs,
        "pretrainings": {step: len(these) for step, these in jobs.items()},
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "stage_seconds": {},
        "unfinished": list(steps),
        "skipped": skipped,
    }

    def save(name, value):
        """Write what a step has so far (JSON and report), e.g. after each method."""
        results[name] = value
        results["seconds"] = time.perf_counter() - start
        _write(out / f"{name}.json", value)
        _write(out / "suite.json", results)
        (out / "report.md").write_text(report(_jsonable(results)), encoding="utf-8")

    def stage(name, step, value):
        results["stage_seconds"][step] = (
            time.perf_counter() - start - sum(results["stage_seconds"].values())
        )
        results["unfinished"] = [s for s in results["unfinished"] if s != step]
        save(name, value)

    suite = paper_suite(seed=cfg["data_seed"], n_points=cfg["n_points"])
    encoders: dict[str, list] = {}
    with ablation.Pretrainer(args.jobs, suite) as pretrainer:
        # queue every pretraining now: with --jobs N the workers stay busy across the steps
        for these in jobs.values():
            for job in these:
                pretrainer.submit(job)

        if "table2" in steps:
            value = table2(
                suite, cfg, args.device, encoders, pretrainer, lambda t2: save("table2", t2)
            )
            stage("table2", "table2", value)

        feature_sets = {
            "raw curves": lambda stack: raw_features(stack, cfg["input_length"]),
        }
        builtin = Encoder.builtin()
        feature_sets["built-in encoder"] = lambda stack: standardize_features(builtin.embed(stack))
        if cfg["cluster_pretrained"]:
            for method, encs in encoders.items():
                if encs:
                    feature_sets[f"{method} (seed {cfg['seeds'][0]})"] = lambda stack, enc=encs[0]: (
                        standardize_features(enc.embed(stack))
                    )
        if "clustering" in steps:
            stage("clustering", "clustering", clustering(suite, feature_sets))
        if "umap" in steps:
            stage("figures", "umap", umap_figures(suite, feature_sets, out))

        if "fig8" in steps:
            label_sets = [ls for n, ls in label_draws(suite, cfg) if n == 42]
            value = augmentation_pairs.run(
                suite, cfg, pretrainer, label_sets, out, args.device, lambda f: save("fig8", f)
            )
            stage("fig8", "fig8", value)

        if "table5" in steps:
            value = table5(
                suite, cfg, args.device, results.get("table2"), pretrainer,
                lambda t5: save("table5", t5),
            )  # fmt: skip
            stage("table5", "table5", value)

    if "independent" in steps:
        ind = cfg["independent"]
        value = independent.run(
            ind["seeds"], ind["label_seeds"], ind["epochs"], device=args.device,
            input_length=ind.get("input_length", cfg["input_length"]),
        )  # fmt: skip
        stage("independent", "independent", value)

    if "speed" in steps:
        sp = cfg["speed"]
        speed = measure(
            args.device, max(sp["epochs"], 1), sp["methods"], sp["repeats"],
            n_points=cfg["n_points"], input_length=cfg["input_length"],
        )  # fmt: skip
        t2 = results.get("table2") or {"methods": {}}
        speed["table2_seconds_per_epoch"] = {
            m: e["s_per_epoch"] for m, e in t2["methods"].items() if "s_per_epoch" in e
        }
        speed["table2_parallel_jobs"] = args.jobs
        stage("speed", "speed", speed)

    results["seconds"] = time.perf_counter() - start
    _write(out / "suite.json", results)
    (out / "report.md").write_text(report(_jsonable(results)), encoding="utf-8")
    _log(f"wrote {out}/suite.json and {out}/report.md in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
