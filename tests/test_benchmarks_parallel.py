"""``python -m benchmarks``: parallel pretrainings (``--jobs``), ``--steps`` and Fig. 8."""

import argparse
import copy
import json
import math

import numpy as np
import pytest

from benchmarks import __main__ as suite_main
from benchmarks import ablation, augmentation_pairs


@pytest.fixture(autouse=True)
def restore_method_registry():
    """Benchmark variants register themselves in ``ssl.METHODS``: undo that after each test."""
    from napari_xrdphase import ssl

    registered = dict(ssl.METHODS)
    yield
    ssl.METHODS.clear()
    ssl.METHODS.update(registered)


def tiny_config(**changes) -> dict:
    """A configuration that pretrains in about a second per encoder on one CPU thread."""
    cfg = copy.deepcopy(suite_main.CONFIGS["quick"])
    cfg.update(
        epochs=1,
        seeds=[0, 1],
        label_seeds=1,
        methods=["xrdphase", "random_init", "raw_knn"],
        train_stride=8,  # 109 curves
        pretrain_kwargs={"batch_size": 32},
        moco_weights=[0.1],  # a variant registered at run time: must reach the workers
        fig8={"augmentations": ["window_slice", "angle_warp"], "epochs": 1, "seeds": [0]},
    )
    cfg.update(changes)
    return cfg


def runs_of(suite: dict) -> dict:
    """Every probe result of a suite run, by step and method / cell."""
    out = {}
    for method, entry in suite.get("table2", {}).get("methods", {}).items():
        out[f"table2/{method}"] = entry["by_labels"]["42"]["runs"]
        if "diag" in entry:
            out[f"table2/{method}/diag"] = entry["diag"]
            out[f"table2/{method}/losses"] = entry["final_losses"]
    for c, entry in suite.get("table5", {}).items():
        out[f"table5/{c}"] = entry["runs"]
    for cell, entry in suite.get("fig8", {}).get("cells", {}).items():
        out[f"fig8/{cell}"] = entry["runs"]
    return out


def test_parallel_pretrainings_give_the_sequential_results(tmp_path, one_torch_thread, monkeypatch):
    # one torch thread in the parent and in each of the 2 workers, whatever the machine: the
    # results may differ in the last bits between thread counts, not between processes
    monkeypatch.setattr(ablation, "available_cores", lambda: 2)
    steps = ["--steps", "table2", "fig8", "table5"]
    cfg = tiny_config()
    assert suite_main.main([*steps, "--out", str(tmp_path / "seq")], cfg=copy.deepcopy(cfg)) == 0
    assert suite_main.main([*steps, "--jobs", "2", "--out", str(tmp_path / "par")], cfg=cfg) == 0
    seq = json.loads((tmp_path / "seq" / "suite.json").read_text())
    par = json.loads((tmp_path / "par" / "suite.json").read_text())
    assert par["jobs"] == 2 and seq["jobs"] == 1
    # Table 2: xrdphase × 2 seeds; Fig. 8: 4 cells; Table 5: c = 0.1 (specrrmoco_c0p1) × 2 seeds
    assert seq["pretrainings"] == {"table2": 2, "fig8": 4, "table5": 2}
    a, b = runs_of(seq), runs_of(par)
    assert set(a) == set(b)
    assert len(a["table2/xrdphase"]) == 2  # 2 pretraining seeds × 1 label draw
    assert a["table5/0.1"] and len(a) == 3 + 2 + 1 + 4  # runs + diag + losses, baselines, cells
    for key in a:
        assert a[key] == b[key], key
    assert seq["table5"]["0.1"]["method"] == "specrrmoco_c0p1"
    for name in ("table2", "fig8", "table5"):
        assert (tmp_path / "par" / f"{name}.json").is_file()
    assert "clustering" not in par and "speed" not in par  # not in --steps


def test_augmentation_pairs_step_writes_the_heatmap_and_every_cell(tmp_path, one_torch_thread):
    out = tmp_path / "fig8"
    cfg = tiny_config(seeds=[0])
    assert suite_main.main(["--steps", "fig8", "--out", str(out)], cfg=cfg) == 0
    suite = json.loads((out / "suite.json").read_text())
    assert suite["steps"] == ["fig8"] and suite["unfinished"] == []
    assert not (out / "table2.json").exists()

    fig8 = json.loads((out / "fig8.json").read_text())
    assert set(fig8["cells"]) == {
        "window_slice->window_slice",
        "window_slice->angle_warp",
        "angle_warp->window_slice",
        "angle_warp->angle_warp",
    }
    assert fig8["cells"]["window_slice->window_slice"]["pipeline"] == ["window_slice"]
    assert fig8["cells"]["angle_warp->window_slice"]["pipeline"] == ["angle_warp", "window_slice"]
    for cell in fig8["cells"].values():
        assert 0.0 <= cell["Fe_P"] <= 1.0 and 0.0 <= cell["FeO_P"] <= 1.0
        assert len(cell["runs"]) == 1  # 1 pretraining seed × 1 label draw
    # rows = first transformation, columns = second
    assert fig8["matrix"]["Fe_P"][0][1] == fig8["cells"]["window_slice->angle_warp"]["Fe_P"]
    assert fig8["matrix"]["FeO_P"][1][0] == fig8["cells"]["angle_warp->window_slice"]["FeO_P"]
    effect = fig8["order_effect"]
    assert math.isclose(
        effect["difference"]["Fe_P"],
        fig8["cells"]["window_slice->angle_warp"]["Fe_P"]
        - fig8["cells"]["angle_warp->window_slice"]["Fe_P"],
    )

    png = out / "augmentation_pairs.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Fig. 8: augmentation pairs (SpecRRMoco)" in report
    assert "![Fig. 8: augmentation pairs](augmentation_pairs.png)" in report
    assert "Order effect: window_slice → angle_warp" in report


def test_pair_variants_are_specrrmoco_with_the_pipeline_in_order():
    names = augmentation_pairs.register_pairs(["jitter", "scaling"])
    assert names == ["fig8_jitter", "fig8_jitter__scaling", "fig8_scaling__jitter", "fig8_scaling"]
    fields, kwargs = ablation.VARIANTS["fig8_scaling__jitter"]
    assert fields == {
        "objectives": ablation.RR,
        "moco_weight": None,
        "augmentations": ("scaling", "jitter"),
    }
    assert kwargs == {}
    job = ablation.make_job(
        "fig8_scaling__jitter", 3, 2, "cpu", data_seed=0, n_points=600, input_length=300
    )
    assert job["spec"]["augmentations"] == ("scaling", "jitter")
    assert job["spec"]["moco_weight"] is None and job["seed"] == 3
    with pytest.raises(ValueError, match="unknown augmentations"):
        augmentation_pairs.register_pairs(["jitter", "rotate"])


def test_transductive_jobs_pretrain_on_every_series_and_are_kept_apart():
    from napari_xrdphase.synth import paper_suite

    suite = paper_suite(seed=0, n_points=300)
    assert [s.name for s in ablation.train_stacks_of(suite)] == ["D1", "D4", "D8", "D9"]
    assert len(ablation.train_stacks_of(suite, transductive=True)) == len(suite)
    kwargs = dict(data_seed=0, n_points=300, input_length=128)
    inductive = ablation.make_job("xrdphase", 0, 1, "cpu", **kwargs)
    transductive = ablation.make_job("xrdphase", 0, 1, "cpu", transductive=True, **kwargs)
    assert not inductive["transductive"] and transductive["transductive"]
    assert ablation.Pretrainer.key(inductive) != ablation.Pretrainer.key(transductive)


def test_heatmap_of_a_partial_result(tmp_path):
    augs = ["magnitude_warp", "jitter", "scaling"]
    cells = {
        augmentation_pairs.cell_key(a, b): {"Fe_P": 0.5 + 0.1 * i, "FeO_P": 0.9 - 0.1 * i}
        for i, (a, b) in enumerate(augmentation_pairs.pairs(augs)[:5])
    }
    result = {
        "augmentations": augs,
        "epochs": 30,
        "n_labels": 42,
        "label_draws": 5,
        "seeds": [0],
        "cells": cells,
        "matrix": augmentation_pairs._matrices(cells, augs),
    }
    assert result["matrix"]["Fe_P"][2] == [None, None, None]
    dead = augmentation_pairs.cell_key("magnitude_warp", "jitter")
    cells[dead]["diag"] = [{"mean_std": 0.0, "dead_dims": 128, "effective_rank": 0.0}]
    cells[augmentation_pairs.cell_key("jitter", "jitter")]["diag"] = [{"mean_std": 0.3}]
    assert augmentation_pairs.collapsed_cells(result) == {dead}
    assert augmentation_pairs.heatmap(result, tmp_path / "f.png") == "f.png"
    assert (tmp_path / "f.png").stat().st_size > 5_000
    assert augmentation_pairs.order_effect(result) is None  # window_slice, angle_warp absent
    lines = "\n".join(augmentation_pairs.report_lines(result))
    assert "| scaling |  |  |  |" in lines
    assert "| magnitude_warp | 50.0 | 60.0 (collapsed) |" in lines
    assert "1 of 5 cells **collapsed**" in lines


def test_full_mode_plan_counts_and_overrides():
    parser_args = argparse.Namespace(
        quick=False, seeds=None, label_seeds=None, epochs=None, fig8_epochs=None, methods=None
    )
    mode, cfg = suite_main.configure(parser_args)
    assert mode == "full" and cfg["seeds"] == [0, 1, 2, 3] and cfg["label_seeds"] == 5
    jobs = suite_main.pretraining_jobs(cfg, suite_main.STEPS, "cuda")
    assert {k: len(v) for k, v in jobs.items()} == {"table2": 20, "fig8": 25, "table5": 16}
    assert sum(j["epochs"] for v in jobs.values() for j in v) == 2910
    message = suite_main.plan_message(cfg, jobs, suite_main.STEPS, 16, "cuda", mode)
    assert "61 pretrainings, 2910 epochs" in message
    assert suite_main.CONFIGS["full"]["seeds"] == [0, 1, 2, 3]  # configure copies

    parser_args.seeds, parser_args.label_seeds, parser_args.fig8_epochs = 2, 3, 5
    _, cfg = suite_main.configure(parser_args)
    assert cfg["seeds"] == [0, 1] and cfg["label_seeds"] == 3 and cfg["fig8"]["epochs"] == 5
    jobs = suite_main.pretraining_jobs(cfg, ["table2", "table5"], "cpu")
    assert {k: len(v) for k, v in jobs.items()} == {"table2": 10, "table5": 4 * 2}
    # without Table 2 in the run, Table 5 pretrains c = 0.01 and c = ∞ itself
    jobs = suite_main.pretraining_jobs(cfg, ["table5"], "cpu")
    assert {k: len(v) for k, v in jobs.items()} == {"table5": 6 * 2}
    parser_args.methods = ["xrdphase", "raw_logistic"]
    _, cfg = suite_main.configure(parser_args)
    jobs = suite_main.pretraining_jobs(cfg, ["table2"], "cpu")
    assert cfg["methods"] == ["xrdphase", "raw_logistic"] and len(jobs["table2"]) == 2


def test_raw_baselines_score_like_the_probe():
    from benchmarks.protocol import RAW_BASELINES, prepared_curves, sample_labels
    from napari_xrdphase.synth import paper_suite

    suite = paper_suite(seed=0, n_points=600)
    truth = {s.stack.name: s.labels for s in suite}
    labels = sample_labels(truth, 42, seed=0)
    prepared = prepared_curves(suite)
    for name, predict in RAW_BASELINES.items():
        predicted = predict(suite, labels, 0, prepared=prepared)
        assert set(predicted) == set(truth)
        accuracy = np.mean(np.concatenate([predicted[k] == truth[k] for k in truth]).astype(float))
        assert accuracy > 0.6, name
    # 1-NN reproduces the labels of the labelled curves
    knn = RAW_BASELINES["raw_knn"](suite, labels, 0, prepared=prepared)
    for series, rows in labels.items():
        for row, label in rows.items():
            assert knn[series][row] == label
