"""Train, validate and resume through the CLI on tiny synthetic data; the run folder's contents."""

import csv
import json

import pytest
import torch
import yaml

from tests.helpers import run_cli

FAST = ["--imgsz", "64", "--batch", "4", "workers=0", "precision=32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_seg):
    """One 2-epoch run shared by the tests of this module."""
    project = tmp_path_factory.mktemp("proj")
    run_cli("train", "segment", "--data", tiny_seg, "--model", "mcff-l", "--epochs", "2", "--name", "tiny", *FAST,
            f"project={project}")
    return project / "segment" / "tiny"


def test_run_folder_contents(trained, tiny_seg):
    for rel in ("config.yaml", "data.json", "weights/best.pt", "weights/last.pt", "metrics.csv",
                "curves.png", "results.json"):
        assert (trained / rel).is_file(), rel
    cfg = yaml.safe_load((trained / "config.yaml").read_text())
    assert cfg["model"] == "mcff-l" and cfg["epochs"] == 2 and cfg["imgsz"] == 64 and cfg["data"] == str(tiny_seg)
    rows = list(csv.DictReader((trained / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(0.0 <= float(r["val/f1"]) <= 1.0 for r in rows)
    data = json.loads((trained / "data.json").read_text())
    assert data["train_pairs"] + data["val_pairs"] == 24 and "seed 0" in data["validation_split"]


def test_checkpoint_is_weights_only_and_rebuilds(trained):
    from defectkd.models.loading import load_checkpoint_model

    ckpt = torch.load(trained / "weights" / "best.pt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["model_name"] == "mcff-l"
    model, hp = load_checkpoint_model(trained / "weights" / "best.pt")
    with torch.no_grad():
        out = model(torch.rand(1, 3, 40, 56))
    assert out.shape == (1, 2, 40, 56)


def test_val_json_and_overlays(cli, trained, tiny_seg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("val", "--weights", trained / "weights" / "best.pt", "--data", tiny_seg, "--json")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    m = result["metrics"]
    assert m["images"] == 24 and 0 <= m["f1"] <= 1 and m["ods_f1"] >= m["f1"] - 1e-9
    assert {"precision", "recall", "iou", "miou_2class", "ois_f1", "ods_f1_tol", "ois_f1_tol"} <= set(m)
    save = tmp_path / result["save_dir"]
    assert json.loads((save / "metrics.json").read_text())["metrics"] == m
    assert len(list((save / "overlays").glob("*.jpg"))) == 24
    assert (save / "pr_curve.png").stat().st_size > 1000


def test_val_metrics_match_results_of_training(trained):
    """The final evaluation in results.json equals evaluating best.pt on the recorded val images."""
    from defectkd.data.layouts import Sample
    from defectkd.tasks.segment.evaluate import evaluate_weights

    data = json.loads((trained / "data.json").read_text())
    results = json.loads((trained / "results.json").read_text())
    from pathlib import Path

    samples = []
    for img in data["val_images"]:
        p = Path(img)
        samples.append(Sample(p, p.parent.parent / "masks" / p.name))
    again = evaluate_weights(trained / "weights" / "best.pt", samples, tolerant=False)
    assert again["f1"] == pytest.approx(results["val"]["f1"], abs=1e-6)


@pytest.mark.slow
def test_resume_continues_to_more_epochs(cli, trained):
    r = cli("train", "segment", "--resume", trained, "--epochs", "3")
    assert r.code == 0, r.err
    rows = list(csv.DictReader((trained / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert yaml.safe_load((trained / "config.yaml").read_text())["epochs"] == 3


def test_same_name_gets_new_folder(cli, trained, tiny_seg):
    project = trained.parent.parent
    r = cli("train", "segment", "--data", tiny_seg, "--epochs", "1", "--name", "tiny", *FAST, f"project={project}",
            "val_fraction=0.5")
    assert r.code == 0, r.err
    assert (project / "segment" / "tiny2" / "weights" / "best.pt").is_file()
    assert yaml.safe_load((trained / "config.yaml").read_text())["val_fraction"] == 0.1  # first run untouched


def test_threshold_is_calibrated_on_validation_and_stored_everywhere(cli, tiny_seg, tmp_path, monkeypatch):
    """The run stores its validation split's F1-optimal threshold (ODS) in best.pt and deploy.pt; val, predict and
    export use it; a threshold the user set is kept."""
    monkeypatch.setattr("defectkd.tasks.segment.task.CALIBRATION_GAIN", -1.0)  # whatever the gain: store it
    project = tmp_path / "p"
    assert cli("train", "segment", "--data", tiny_seg, "--model", "mcff-edge-n", "--epochs", "2", "--name", "auto",
               *FAST, f"project={project}").code == 0
    trained = project / "segment" / "auto"
    results = json.loads((trained / "results.json").read_text())
    chosen = round(results["val"]["ods_threshold"], 4)
    assert results["operating_point"] == {"threshold": chosen, "chosen_on": "validation split (best F1)"}
    best = torch.load(trained / "weights" / "best.pt", map_location="cpu", weights_only=True)
    deploy = torch.load(trained / "weights" / "deploy.pt", map_location="cpu", weights_only=True)
    assert best["hyper_parameters"]["config"]["threshold"] == deploy["threshold"] == chosen
    monkeypatch.chdir(tmp_path)
    r = cli("val", "--weights", trained / "weights" / "deploy.pt", "--data", tiny_seg, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["threshold"] == chosen, r.out[:300]
    onnx = cli("export", "--weights", trained / "weights" / "deploy.pt", "--out", tmp_path / "m.onnx")
    assert onnx.code == 0, onnx.err
    import onnx as onnx_lib

    meta = {p.key: p.value for p in onnx_lib.load(str(tmp_path / "m.onnx")).metadata_props}
    assert float(meta["threshold"]) == pytest.approx(chosen)
    assert cli("train", "segment", "--data", tiny_seg, "--model", "mcff-edge-n", "--epochs", "1", "--name", "fixed",
               *FAST, "threshold=0.3", f"project={project}").code == 0
    fixed = project / "segment" / "fixed"
    assert "operating_point" not in json.loads((fixed / "results.json").read_text())
    assert torch.load(fixed / "weights" / "deploy.pt", weights_only=True)["threshold"] == 0.3


def test_calibration_moves_the_threshold_only_for_a_clear_validation_gain():
    from defectkd.tasks.segment.config import SegmentTrainConfig
    from defectkd.tasks.segment.task import CALIBRATION_GAIN, SegmentTask

    task, cfg = SegmentTask(), SegmentTrainConfig(data="x")
    assert task.operating_point({"f1": 0.40, "ods_f1": 0.70, "ods_threshold": 0.03}, cfg) == {"threshold": 0.03}
    small = {"f1": 0.759, "ods_f1": 0.759 + CALIBRATION_GAIN / 2, "ods_threshold": 0.76}  # DeepCrack's case
    assert task.operating_point(small, cfg) is None
    assert task.operating_point({"f1": 0.1, "ods_f1": 0.9, "ods_threshold": 0.0}, cfg) == {"threshold": 0.01}
    for off in (SegmentTrainConfig(data="x", calibrate=False), SegmentTrainConfig(data="x", threshold=0.3)):
        assert task.operating_point({"f1": 0.40, "ods_f1": 0.70, "ods_threshold": 0.03}, off) is None
