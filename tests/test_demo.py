"""The quick-start job, shrunk to seconds: every stage runs and leaves its outputs under one new folder."""

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_pipeline_small(tmp_path):
    from defectkd.api import demo

    said = []
    result = demo(project=tmp_path, n_train=12, n_test=4, size=64, epochs=1, teacher_epochs=1, say=said.append)
    root = Path(result["root"])
    assert root == tmp_path / "demo" / "demo"
    assert [s[:5] for s in said] == [f"[{i}/7]" for i in range(1, 8)]
    assert len(list((root / "data" / "train" / "images").iterdir())) == 12
    for run in ("teacher", "mcff-l-kd", "mcff-l-alone"):
        assert (root / "segment" / run / "weights" / "deploy.pt").is_file()
    manifest = json.loads((root / "soft_labels" / "manifest.json").read_text())
    assert manifest["T"] == 4.0 and manifest["teacher_model"] == "unet-r50" and len(manifest["images"]) == 12
    kd_config = (root / "segment" / "mcff-l-kd" / "config.yaml").read_text()
    assert "soft_labels:" in kd_config and "alpha: 0.5" in kd_config
    for name in ("teacher", "alone", "distilled"):
        metrics = json.loads((root / "val" / name / "metrics.json").read_text())
        assert metrics["split"] == "test" and metrics["metrics"]["images"] == 4
    assert result["onnx"]["max_abs_diff"] < 1e-4 and (root / "student.onnx").is_file()
    lines = (root / "predict" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 4 and len(list((root / "predict" / "masks").iterdir())) == 4
    rows = result["rows"]
    assert [r["runtime"] for r in rows] == ["pytorch"] * 3 + ["onnxruntime"]
    assert rows[0]["parameters"] > 10 * rows[1]["parameters"] and rows[1]["parameters"] == rows[2]["parameters"]
    assert all(0 <= r["f1"] <= 1 and r["fps"] > 0 for r in rows)
    assert result["kd_gain_f1"] == rows[2]["f1"] - rows[1]["f1"]
    again = demo(project=tmp_path, n_train=4, n_test=2, size=32, epochs=1, teacher_epochs=1)
    assert Path(again["root"]).name == "demo2"  # the first demo is kept
