"""`python -m benchmarks --quick` runs the whole suite end to end and gives sane numbers."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_suite_runs_and_is_sane(tmp_path):
    out = tmp_path / "suite"
    env = dict(os.environ)
    # a 2-core runner that also runs Xvfb: more torch threads than cores only slows training
    env.setdefault("OMP_NUM_THREADS", "2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    suite = json.loads((out / "suite.json").read_text())
    for name in ("table2", "clustering", "fig8", "independent", "speed"):
        assert (out / f"{name}.json").is_file()
    assert suite["mode"] == "quick"
    assert suite["unfinished"] == []
    assert suite["jobs"] == 1
    # the plan is printed at the start
    assert "5 pretrainings, 9 epochs" in proc.stderr

    methods = suite["table2"]["methods"]
    assert set(methods) == {
        "xrdphase",
        "random_init",
        "raw_logistic",
        "raw_knn",
        "raw_pca_logistic",
    }
    xrd = methods["xrdphase"]["by_labels"]["42"]["summary"]
    # chance is 1/3 with three classes: the pretrained encoder must be far above it
    assert xrd["Fe_P"][0] > 0.6, xrd
    assert xrd["FeO_P"][0] > 0.6, xrd
    assert methods["xrdphase"]["diag"][0]["dead_dims"] < 128  # not collapsed
    for baseline in ("raw_logistic", "raw_knn", "raw_pca_logistic"):
        block = methods[baseline]["by_labels"]["42"]
        assert block["summary"]["Fe_P"][0] > 0.6, (baseline, block["summary"])
        assert len(block["runs"]) == 2  # one per label draw: no pretraining seed

    raw = suite["clustering"]["raw curves"]
    assert set(raw["series"]) == {f"D{i}" for i in range(1, 10)}
    for entry in raw["series"].values():
        for config in entry["configs"]:
            assert 0.0 <= config["nmi"] <= 1.0
            assert -1.0 <= config["silhouette"] <= 1.0
    assert "built-in encoder" in suite["clustering"]
    assert "table5" not in suite  # full mode only

    # a 2 × 2 Fig. 8 of one epoch per cell
    fig8 = suite["fig8"]
    assert len(fig8["cells"]) == 4
    assert (out / fig8["figure"]).stat().st_size > 10_000
    assert set(fig8["order_effect"]) >= {"window_slice->angle_warp", "angle_warp->window_slice"}

    # series from another simulator, read back from files as other programs write them
    ind = suite["independent"]
    assert [r["name"] for r in ind["series"]] == [f"X{i}" for i in range(1, 9)]
    assert set(ind["summary"]) == {"builtin", "random_init", "raw_logistic"}  # no pretraining
    for name, summary in ind["summary"].items():
        for key in ("Fe_P", "FeO_P"):
            assert summary[key][0] > 60, (name, summary)  # % — chance is 33
        assert summary["boundaries_found"] > 0.5, (name, summary)

    assert math.isfinite(suite["speed"]["inference_us_per_curve"])
    assert suite["speed"]["inference_us_per_curve"] > 0

    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Table 2: linear evaluation, 42 labels" in report
    assert "| method | Fe P | Fe R | FeO P | FeO R | runs | Fe P, compression series |" in report
    assert (
        "| paper, specrrmoco (Sun et al. 2023, real data) | 99.6 | 99.6 | 96.3 | 96.5 |" in report
    )
    assert "## Table 4: NMI" in report
    assert "![Fig. 8: augmentation pairs](augmentation_pairs.png)" in report
    assert "Order effect: window_slice → angle_warp" in report
    assert "## The product on an independent simulator's files" in report
