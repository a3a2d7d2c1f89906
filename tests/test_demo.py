"""The quick-start job, shrunk to seconds: every stage runs and leaves its outputs under one new folder."""

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_pipeline_small(tmp_path):
    from defectkd.api import demo

    said = []
    result = demo(project=tmp_path, n_train=16, n_test=4, size=64, epochs=1, teacher_epochs=1, say=said.append)
    root = Path(result["root"])
    assert root == tmp_path / "demo"  # runs/demo, as the README says
    assert [s[:5] for s in said] == [f"[{i}/8]" for i in range(1, 9)]
    student_train = root / "data" / "student" / "train"
    assert len(list((student_train / "images").iterdir())) == 16 and len(list((student_train / "masks").iterdir())) == 4
    assert result["labelled"] == 4 and result["train_images"] == 16
    # the student's images are hard links of the full set's: no second copy on disk
    image = next((student_train / "images").iterdir())
    assert image.stat().st_ino == (root / "data" / "full" / "train" / "images" / image.name).stat().st_ino
    for run in ("teacher", "mcff-edge-n-distilled", "mcff-edge-n-alone"):
        assert (root / "segment" / run / "weights" / "deploy.pt").is_file()
    assert sorted(p.name for p in (root / "segment" / "teacher" / "weights").iterdir()) == ["deploy.pt"]
    manifest = json.loads((root / "soft_labels" / "manifest.json").read_text())
    assert manifest["T"] == 1.0 and manifest["teacher_model"] == "mcff-edge-m"
    assert len(manifest["images"]) == 16 + 4  # train and val
    kd_config = (root / "segment" / "mcff-edge-n-distilled" / "config.yaml").read_text()
    assert "unlabelled: true" in kd_config and "balance: loss" in kd_config and "pseudo_labels: true" in kd_config
    alone_config = (root / "segment" / "mcff-edge-n-alone" / "config.yaml").read_text()
    assert "epochs: 4" in alone_config  # 1 epoch over 16 images = 4 epochs over the 4 labelled ones
    for name in ("teacher", "alone", "distilled"):
        metrics = json.loads((root / "val" / name / "metrics.json").read_text())
        assert metrics["split"] == "test" and metrics["metrics"]["images"] == 4
    assert result["onnx"]["max_abs_diff"] < 1e-4 and (root / "student.onnx").is_file()
    assert not list(root.rglob("teacher.onnx"))  # timed, then removed
    lines = (root / "predict" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 4 and len(list((root / "predict" / "masks").iterdir())) == 4
    rows, gain = result["rows"], result["gain"]
    assert rows[0]["parameters"] > 5 * rows[1]["parameters"] and rows[1]["parameters"] == rows[2]["parameters"]
    assert all(0 <= r["f1"] <= 1 and r["onnx_fps"] > 0 for r in rows)
    assert result["speedup"] > 1.5  # mcff-edge-m against a 0.35 M student, at 64 px (6x at the demo's 128)
    assert gain["distilled"] == pytest.approx(rows[2]["f1"]) and gain["alone"] == pytest.approx(rows[1]["f1"])
    assert gain["low"] <= gain["gain"] <= gain["high"] and gain["sentence"].startswith("F1 ")
    again = demo(project=tmp_path, n_train=8, n_test=2, size=32, epochs=1, teacher_epochs=1)
    assert Path(again["root"]).name == "demo2"  # the first demo is kept
