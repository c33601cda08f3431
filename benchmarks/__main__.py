"""The whole benchmark suite in one run: Tables 2–5 of Sun et al. (2023) and speed.

    python -m benchmarks [--quick] [--device cpu|cuda] [--out DIR]

Runs, in order, and writes JSON to DIR (default ``benchmarks/results/suite/``) after each step,
plus a markdown report ``DIR/report.md``:

1. **Table 2**, linear evaluation (``benchmarks/ablation.py``'s ``run_variant`` /
   ``evaluate_encoder``): every method pretrained on D1, D4, D8, D9 and probed on 42 labels
   (≈ 2.8 %) and, in full mode, 152 labels (≈ 10 %), scored on every other curve.
2. **Tables 3–4**, spectral clustering (``napari_xrdphase.explore``): silhouette and NMI per
   series on the raw curves and on encoder embeddings, over affinity × label assignment.
3. **Table 5** (full mode only): the MoCo weight c of SpecRRMoco.
4. **Speed** (``benchmarks/speed.py``'s ``measure``).

Full mode pretrains 7 methods × 3 seeds × 60 epochs (+ 4 more for Table 5): a GPU, or about an
hour per method on 2 CPU cores. ``--quick`` is a smoke test of the whole pipeline (tiny data,
3 short epochs, 3 methods; < 2 minutes on 2 CPU cores); its numbers are not comparable with the paper.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import ablation
from benchmarks.protocol import (
    GROUPS,
    PRETRAIN_SERIES,
    raw_logistic_predictions,
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
)
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
        "seeds": [0, 1, 2],
        "label_seeds": 3,
        "n_labels": [42, 152],
        "methods": list(TABLE2_METHODS),
        "train_stride": 1,
        "pretrain_kwargs": {},
        "moco_weights": list(MOCO_WEIGHTS),
        "cluster_pretrained": True,
        "figures": True,
        "speed": {"epochs": 2, "methods": ["xrdphase", "specrrmoco"], "repeats": 5},
    },
    # smoke test: 600-point curves at 300 input points (the shortest the intra-sample pieces
    # allow: 0.2 · 300 = 60 points, ConvSC's minimum), every 4th pretraining curve (218), 3 epochs
    # of batch 64 (12 steps; with 4 steps of batch 128 the final ReLU of seed 0 stays dead)
    "quick": {
        "data_seed": 0,
        "n_points": 600,
        "input_length": 300,
        "epochs": 3,
        "seeds": [0],
        "label_seeds": 2,
        "n_labels": [42],
        "methods": ["xrdphase", "random_init", "raw_logistic"],
        "train_stride": 4,
        "pretrain_kwargs": {"batch_size": 64},
        "moco_weights": [],
        "cluster_pretrained": False,
        "figures": False,
        "speed": {"epochs": 0, "methods": [], "repeats": 3},
    },
}


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
    path.write_text(json.dumps(_jsonable(data), indent=1, default=str))


def _train_stacks(suite, stride: int):
    stacks = [s.stack for s in suite if s.stack.name in PRETRAIN_SERIES]
    return [s.subset(slice(None, None, stride)) for s in stacks] if stride > 1 else stacks


def evaluate_method(method, suite, label_sets, cfg, device, encoders=None):
    """Return (runs in label-set order, repeated per pretraining seed; extra) for one method."""
    from napari_xrdphase.encoder import Encoder

    truth = {s.stack.name: s.labels for s in suite}
    if method == "random_init":
        runs = []
        for seed in cfg["seeds"]:
            enc = Encoder.random(seed=seed, input_length=cfg["input_length"])
            runs += ablation.evaluate_encoder(enc, suite, label_sets)
        return runs, {}
    if method == "raw_logistic":
        runs = [
            weighted_scores(
                truth, raw_logistic_predictions(suite, labels, 0), unlabelled_rows(truth, labels)
            )
            for labels in label_sets
        ]
        return runs, {}
    store: list = []
    runs, extra = ablation.run_variant(
        method, suite, label_sets, _train_stacks(suite, cfg["train_stride"]), cfg["epochs"],
        cfg["seeds"], device, cfg["input_length"], cfg["pretrain_kwargs"], store,
    )  # fmt: skip
    if encoders is not None:
        encoders[method] = store
    return runs, extra


def table2(suite, cfg, device, encoders) -> dict:
    """Linear evaluation of every method at each label count (2.8 % and, in full mode, 10 %)."""
    truth = {s.stack.name: s.labels for s in suite}
    total = sum(len(y) for y in truth.values())
    label_sets = [
        (n, sample_labels(truth, n, seed=k))
        for n in cfg["n_labels"]
        for k in range(cfg["label_seeds"])
    ]
    out = {"n_curves": total, "methods": {}}
    for method in cfg["methods"]:
        start = time.perf_counter()
        keep = encoders if method in CLUSTERED_METHODS else None
        runs, extra = evaluate_method(
            method, suite, [ls for _, ls in label_sets], cfg, device, keep
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
            f"table 2 {method:<14} "
            + "  ".join(f"{k} {m * 100:5.1f}±{d * 100:4.1f}" for k, (m, d) in s.items())
            + f"  ({entry['seconds']:.0f} s)"
        )
    return out


def table5(suite, cfg, device, t2) -> dict:
    """SpecRRMoco at each MoCo weight c (c = ∞ is SpecMoco), 42 labels."""
    from napari_xrdphase.defaults import DEFAULT_MOCO_WEIGHT

    truth = {s.stack.name: s.labels for s in suite}
    label_sets = [sample_labels(truth, 42, seed=k) for k in range(cfg["label_seeds"])]
    out = {}
    for c in cfg["moco_weights"]:
        reuse = "specmoco" if math.isinf(c) else "specrrmoco" if c == DEFAULT_MOCO_WEIGHT else None
        if reuse and reuse in t2["methods"]:
            entry = t2["methods"][reuse]["by_labels"]["42"]
            out[str(c)] = {"method": reuse, "summary": entry["summary"], "runs": entry["runs"]}
        else:
            name = "specmoco" if math.isinf(c) else f"specrrmoco_c{c:g}".replace(".", "p")
            if name not in ablation.VARIANTS and not math.isinf(c):
                fields = {"objectives": ablation.RR, "moco_weight": None}
                ablation.VARIANTS[name] = (fields, {"c": float(c)})
            runs, _ = evaluate_method(name, suite, label_sets, cfg, device)
            out[str(c)] = {"method": name, "summary": ablation.summarise(runs), "runs": runs}
        s = out[str(c)]["summary"]
        _log(f"table 5 c={c:<6g} Fe P {s['Fe_P'][0] * 100:5.1f}  FeO P {s['FeO_P'][0] * 100:5.1f}")
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


def _cell(pair) -> str:
    mean, std = pair
    return f"{mean * 100:.1f} ± {std * 100:.1f}"


def report(results: dict) -> str:
    """Return the markdown report of a suite run."""
    cfg, mode = results["config"], results["mode"]
    lines = [
        f"# Benchmark suite ({mode} mode)",
        "",
        f"Data seed {cfg['data_seed']}, {cfg['n_points']} points per simulated curve, "
        f"{cfg['input_length']} input points, {cfg['epochs']} pretraining epochs, pretraining "
        f"seeds {cfg['seeds']}, {cfg['label_seeds']} label draws, device {results['device']}"
        f" ({results.get('cuda') or 'no GPU'}, {results['torch_threads']} torch threads). "
        f"Wall time {results['seconds']:.0f} s.",
    ]
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
                "Weighted precision (P) and recall (R) in %, mean ± std over pretraining seeds × "
                "label draws, on every unlabelled curve.",
                "",
                "| method | Fe P | Fe R | FeO P | FeO R | runs |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            if n == 42:
                for method, p in PAPER_TABLE2.items():
                    lines.append(
                        f"| paper, {method} (Sun et al. 2023, real data) | {p['Fe_P']} | "
                        f"{p['Fe_R']} | {p['FeO_P']} | {p['FeO_R']} | |"
                    )
            for method, entry in t2["methods"].items():
                block = entry["by_labels"][str(n)]
                s = block["summary"]
                cells = " | ".join(_cell(s[k]) for k in ("Fe_P", "Fe_R", "FeO_P", "FeO_R"))
                lines.append(f"| {method} | {cells} | {len(block['runs'])} |")
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
    if results.get("figures"):
        lines += ["", "## UMAP maps (coloured by the true phase)", ""]
        lines += [f"![{name}]({name})" for name in results["figures"]]
    sp = results.get("speed")
    if sp:
        lines += ["", "## Speed", "", "| what | number |", "| --- | --- |"]
        for method, s in sp.get("seconds_per_epoch", {}).items():
            lines.append(
                f"| pretraining {method}, {sp['setup']['train_curves']} curves, "
                f"{sp['setup']['input_length']} points | {s:.2f} s / epoch |"
            )
        for method, s in sp.get("table2_seconds_per_epoch", {}).items():
            lines.append(f"| pretraining {method} in Table 2's run | {s:.2f} s / epoch |")
        lines.append(
            f"| inference, `Encoder.embed`, {sp['setup']['inference_length']} points | "
            f"{sp['inference_us_per_curve']:.0f} µs / curve |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test run (< 2 min)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (pretraining)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder ({DEFAULT_OUT})")
    args = parser.parse_args(argv)

    import torch

    from benchmarks.speed import measure
    from napari_xrdphase.encoder import Encoder
    from napari_xrdphase.explore import raw_features, standardize_features
    from napari_xrdphase.synth import paper_suite

    mode = "quick" if args.quick else "full"
    cfg = CONFIGS[mode]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = {
        "mode": mode,
        "config": cfg,
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "stage_seconds": {},
    }

    def stage(name, value):
        results[name] = value
        results["stage_seconds"][name] = (
            time.perf_counter() - start - sum(results["stage_seconds"].values())
        )
        results["seconds"] = time.perf_counter() - start
        _write(out / f"{name}.json", value)
        _write(out / "suite.json", results)

    suite = paper_suite(seed=cfg["data_seed"], n_points=cfg["n_points"])
    encoders: dict[str, list] = {}
    stage("table2", table2(suite, cfg, args.device, encoders))

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
    stage("clustering", clustering(suite, feature_sets))
    if cfg["figures"]:
        stage("figures", umap_figures(suite, feature_sets, out))

    if cfg["moco_weights"]:
        stage("table5", table5(suite, cfg, args.device, results["table2"]))

    sp = cfg["speed"]
    speed = measure(
        args.device, max(sp["epochs"], 1), sp["methods"], sp["repeats"],
        n_points=cfg["n_points"], input_length=cfg["input_length"],
    )  # fmt: skip
    speed["table2_seconds_per_epoch"] = {
        m: e["s_per_epoch"] for m, e in results["table2"]["methods"].items() if "s_per_epoch" in e
    }
    stage("speed", speed)

    results["seconds"] = time.perf_counter() - start
    _write(out / "suite.json", results)
    (out / "report.md").write_text(report(_jsonable(results)), encoding="utf-8")
    _log(f"wrote {out}/suite.json and {out}/report.md in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
