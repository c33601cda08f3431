"""Fig. 8 of Sun et al. (2023): SpecRRMoco pretrained with each ordered pair of augmentations.

For every ordered pair (first, second) of ``AUGMENTATIONS`` (``napari_xrdphase.augment`` names;
the diagonal is that augmentation alone) SpecRRMoco's objectives (inter + intra + external
relational reasoning + c·MoCo, c = 0.01) are pretrained with the pipeline ``(first, second)``,
probed with Table 2's linear evaluation on the same label draws (42 labels), and the Fe and FeO
weighted precision (mean over the label draws) is recorded. ``run`` returns the numbers (JSON)
and saves a heatmap, ``augmentation_pairs.png``: two panels (Fe, FeO), rows = first
transformation, columns = second.

It runs as the ``fig8`` step of ``python -m benchmarks`` (``--steps fig8``); the pretrainings
go through the suite's ``ablation.Pretrainer`` (``--jobs N`` runs them in parallel).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from benchmarks import ablation

# the paper's five time-series augmentations (Fig. 8)
AUGMENTATIONS = ("magnitude_warp", "angle_warp", "window_slice", "jitter", "scaling")
FIGURE = "augmentation_pairs.png"
SCORES = {"Fe_P": "Fe weighted precision", "FeO_P": "FeO weighted precision"}
# the order effect the report states: (a → b) against (b → a)
ORDER_PAIR = ("window_slice", "angle_warp")


def cell_key(first: str, second: str) -> str:
    """Return the JSON key of a cell: ``first->second`` (``a->a`` is ``a`` alone)."""
    return f"{first}->{second}"


def pipeline(first: str, second: str) -> tuple[str, ...]:
    """Return the augmentation pipeline of a cell: the pair in order, one step on the diagonal."""
    return (first,) if first == second else (first, second)


def variant_name(first: str, second: str) -> str:
    """Return the ablation variant name of a cell (registered by ``register_pairs``)."""
    return "fig8_" + "__".join(pipeline(first, second))


def pairs(augmentations) -> list[tuple[str, str]]:
    """Return every ordered pair (first, second), row-major."""
    return [(a, b) for a in augmentations for b in augmentations]


def register_pairs(augmentations) -> list[str]:
    """Add one SpecRRMoco variant per pair to ``ablation.VARIANTS``; return their names."""
    from napari_xrdphase.augment import AUGMENTATIONS as KNOWN

    unknown = [a for a in augmentations if a not in KNOWN]
    if unknown:
        raise ValueError(f"unknown augmentations {unknown}; known: {', '.join(KNOWN)}")
    names = []
    for first, second in pairs(augmentations):
        name = variant_name(first, second)
        fields = {
            "objectives": ablation.RR,
            "moco_weight": None,
            "augmentations": pipeline(first, second),
        }
        ablation.VARIANTS.setdefault(name, (fields, {}))
        names.append(name)
    return names


def make_jobs(cfg: dict, device: str) -> list[dict]:
    """Return the pretraining jobs of the step (``ablation.make_job``), row-major, seed-minor."""
    fig8 = cfg["fig8"]
    register_pairs(fig8["augmentations"])
    data = {
        "data_seed": cfg["data_seed"],
        "n_points": cfg["n_points"],
        "input_length": cfg["input_length"],
        "train_stride": cfg["train_stride"],
        "pretrain_kwargs": cfg["pretrain_kwargs"],
    }
    return [
        ablation.make_job(variant_name(first, second), seed, fig8["epochs"], device, **data)
        for first, second in pairs(fig8["augmentations"])
        for seed in fig8["seeds"]
    ]


def _matrices(cells: dict, augmentations) -> dict:
    """Return {score: rows × columns of means (None where a cell is missing)}."""
    return {
        score: [
            [
                cells[cell_key(a, b)][score] if cell_key(a, b) in cells else None
                for b in augmentations
            ]
            for a in augmentations
        ]
        for score in SCORES
    }


def order_effect(result: dict) -> dict | None:
    """Return {a->b: scores, b->a: scores, difference: (a→b) − (b→a)} of ``ORDER_PAIR``."""
    a, b = ORDER_PAIR
    forward, backward = result["cells"].get(cell_key(a, b)), result["cells"].get(cell_key(b, a))
    if forward is None or backward is None:
        return None
    return {
        cell_key(a, b): {s: forward[s] for s in SCORES},
        cell_key(b, a): {s: backward[s] for s in SCORES},
        "difference": {s: forward[s] - backward[s] for s in SCORES},
    }


def run(suite, cfg: dict, pretrainer, label_sets, out: Path, device: str, on_progress=None):
    """Pretrain and probe every cell; save the heatmap in ``out``; return the JSON-ready result.

    ``label_sets`` are Table 2's draws at 42 labels. ``on_progress(result)`` is called after
    every cell, so a cut-off run keeps the finished cells.
    """
    fig8 = cfg["fig8"]
    augmentations = list(fig8["augmentations"])
    jobs = make_jobs(cfg, device)
    for job in jobs:  # starts them all at once in pool mode
        pretrainer.submit(job)
    result = {
        "augmentations": augmentations,
        "objectives": "SpecRRMoco (inter + intra + external + c·MoCo, c = 0.01)",
        "epochs": fig8["epochs"],
        "seeds": list(fig8["seeds"]),
        "n_labels": 42,
        "label_draws": len(label_sets),
        "rows": "first transformation",
        "columns": "second transformation",
        "cells": {},
    }
    per_cell = len(fig8["seeds"])
    for i, (first, second) in enumerate(pairs(augmentations)):
        mine = jobs[i * per_cell : (i + 1) * per_cell]
        runs, extra = ablation.evaluate_pretrained(pretrainer.results(mine), suite, label_sets)
        summary = ablation.summarise(runs)
        result["cells"][cell_key(first, second)] = {
            "first": first,
            "second": second,
            "pipeline": list(pipeline(first, second)),
            **{score: summary[score][0] for score in SCORES},
            "summary": summary,
            "runs": runs,
            **extra,
        }
        print(
            f"[benchmarks] fig 8 {first:>14} → {second:<14} Fe P {summary['Fe_P'][0] * 100:5.1f}"
            f"  FeO P {summary['FeO_P'][0] * 100:5.1f}",
            file=sys.stderr,
            flush=True,
        )
        result["matrix"] = _matrices(result["cells"], augmentations)
        if on_progress is not None:
            on_progress(result)
    result["order_effect"] = order_effect(result)
    result["figure"] = heatmap(result, Path(out) / FIGURE)
    return result


def collapsed_cells(result: dict) -> set[str]:
    """Return the keys of cells whose every encoder collapsed (all outputs dead for all curves).

    A collapsed encoder gives every curve the same embedding, so its probe predicts one class:
    the cell's score says nothing about the augmentations, only that training never started.
    """
    return {
        key
        for key, cell in result["cells"].items()
        if cell.get("diag") and all(d["mean_std"] == 0 for d in cell["diag"])
    }


def heatmap(result: dict, path: Path) -> str:
    """Save the two-panel heatmap (Fe, FeO weighted precision in %) and return its file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    augmentations = result["augmentations"]
    collapsed = collapsed_cells(result)
    n = len(augmentations)
    size = 1.0 + 0.9 * n
    fig, axes = plt.subplots(1, len(SCORES), figsize=(2 * size + 2.0, size + 0.8))
    for ax, (score, title) in zip(np.atleast_1d(axes), SCORES.items(), strict=True):
        values = np.array(
            [[np.nan if v is None else 100 * v for v in row] for row in result["matrix"][score]],
            dtype=float,
        )
        dead = np.array(
            [[cell_key(a, b) in collapsed for b in augmentations] for a in augmentations]
        )
        values[dead] = np.nan  # grey, labelled, and kept out of the colour scale
        ax.set_facecolor("0.8")
        image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis")
        lo, hi = (np.nanmin(values), np.nanmax(values)) if np.isfinite(values).any() else (0, 1)
        for r in range(n):
            for c in range(n):
                if dead[r, c]:
                    ax.text(c, r, "collapsed", ha="center", va="center", fontsize=7)
                elif np.isfinite(values[r, c]):
                    bright = hi > lo and (values[r, c] - lo) / (hi - lo) > 0.6
                    ax.text(
                        c, r, f"{values[r, c]:.1f}", ha="center", va="center", fontsize=8,
                        color="black" if bright else "white",
                    )  # fmt: skip
        ax.set_xticks(range(n), augmentations, rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(n), augmentations, fontsize=8)
        ax.set_xlabel("second transformation")
        ax.set_ylabel("first transformation")
        ax.set_title(f"{title} (%)", fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(
        f"SpecRRMoco by augmentation pair ({result['epochs']} epochs, "
        f"{result['n_labels']} labels, mean of {result['label_draws']} label draws)",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name


def report_lines(result: dict) -> list[str]:
    """Return the markdown section of the report for ``result``."""
    augmentations = result["augmentations"]
    collapsed = collapsed_cells(result)
    lines = [
        "",
        "## Fig. 8: augmentation pairs (SpecRRMoco)",
        "",
        f"SpecRRMoco's objectives pretrained with each ordered pair of augmentations "
        f"(rows = first transformation, columns = second; diagonal = that augmentation "
        f"alone), {result['epochs']} epochs, pretraining seeds {result['seeds']}; weighted "
        f"precision in % at {result['n_labels']} labels, mean over {result['label_draws']} "
        "label draws (Table 2's).",
        "",
    ]
    if result.get("figure"):
        lines += [f"![Fig. 8: augmentation pairs]({result['figure']})", ""]
    for score, title in SCORES.items():
        lines += [
            f"{title}:",
            "",
            "| first \\ second | " + " | ".join(augmentations) + " |",
            "| --- " * (len(augmentations) + 1) + "|",
        ]
        for a, row in zip(augmentations, result["matrix"][score], strict=True):
            cells = [
                ""
                if v is None
                else f"{v * 100:.1f}" + (" (collapsed)" if cell_key(a, b) in collapsed else "")
                for b, v in zip(augmentations, row, strict=True)
            ]
            lines.append(f"| {a} | " + " | ".join(cells) + " |")
        lines.append("")
    if collapsed:
        lines += [
            f"{len(collapsed)} of {len(result['cells'])} cells **collapsed** (every output of the "
            "encoder zero for every curve, so the probe predicts one class): their numbers "
            "measure a training run that never started, not the augmentations.",
            "",
        ]
    effect = result.get("order_effect")
    if effect:
        a, b = ORDER_PAIR
        f, r, d = effect[cell_key(a, b)], effect[cell_key(b, a)], effect["difference"]
        lines.append(
            f"Order effect: {a} → {b} gives Fe {f['Fe_P'] * 100:.1f} / FeO "
            f"{f['FeO_P'] * 100:.1f}, {b} → {a} gives Fe {r['Fe_P'] * 100:.1f} / FeO "
            f"{r['FeO_P'] * 100:.1f} (difference {d['Fe_P'] * 100:+.1f} / "
            f"{d['FeO_P'] * 100:+.1f} points)."
        )
    return lines
