"""Defect classification through the real CLI on tiny synthetic classes: train, val, distill (kd, dkd),
export with parity, predict (.pt and .onnx), `data synth/check`, and bad input (one line, exit 2)."""

import csv
import importlib.util
import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml

from defectkd.core.checkpoint import DEPLOY_FORMAT
from defectkd.models import build_model
from defectkd.models.loading import load_checkpoint_model
from tests.helpers import assert_one_line_error, run_cli

TINY = ["--epochs", "1", "--imgsz", "32", "--batch", "8", "workers=0", "precision=32", "width=0.25"]


@pytest.fixture(scope="module")
def tiny_cls(tmp_path_factory):
    """20 synthetic 32x32 images, 5 classes x 4, written by `defectkd data synth classify`."""
    from defectkd import api

    return api.synth(tmp_path_factory.mktemp("cls") / "data", n=20, size=32, seed=5, task="classify")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_cls):
    project = tmp_path_factory.mktemp("proj")
    run_cli("train", "classify", "--data", tiny_cls, "--model", "cmi", "--name", "tiny", *TINY, f"project={project}")
    return project / "classify" / "tiny"


def test_synth_and_check_through_the_cli(cli, tiny_cls, tmp_path):
    r = cli("data", "synth", "classify", "--out", tmp_path / "s", "--n", 10, "--size", 32)
    assert r.code == 0 and "10 images" in r.out and "5 classes" in r.out
    assert_one_line_error(cli("data", "synth", "classify", "--out", tmp_path / "s", "--n", 10), "not empty")
    r = cli("data", "check", tiny_cls, "--json")
    report = json.loads(r.out)
    assert report["task"] == "classify" and report["layout"] == "imagefolder" and len(report["classes"]) == 5
    assert report["splits"]["all"]["per_class"]["scratches"] == 4 and not report["problems"]
    r = cli("data", "check", tiny_cls)
    assert r.code == 0 and "images per class" in r.out and "crazing" in r.out


def test_train_run_folder(trained, tiny_cls):
    for rel in ("config.yaml", "data.json", "weights/best.pt", "weights/last.pt", "weights/deploy.pt", "metrics.csv",
                "curves.png", "results.json", "confusion.png"):
        assert (trained / rel).is_file(), rel
    cfg = yaml.safe_load((trained / "config.yaml").read_text())
    assert cfg["task"] == "classify" and cfg["model"] == "cmi" and cfg["imgsz"] == 32 and cfg["width"] == 0.25
    assert cfg["class_names"] == ["crazing", "inclusion", "patches", "scratches", "spots"]
    header = (trained / "metrics.csv").read_text().splitlines()[0]
    assert "val/accuracy" in header and "val/f1" in header
    data = json.loads((trained / "data.json").read_text())
    assert data["train_images"] + data["val_images"] == 20 and data["val_images"] == 5  # one per class
    results = json.loads((trained / "results.json").read_text())
    assert results["task"] == "classify" and results["val"]["images"] == 5
    assert {"accuracy", "precision", "recall", "f1", "per_class", "confusion"} <= set(results["val"])
    deploy = torch.load(trained / "weights" / "deploy.pt", weights_only=True)
    assert deploy["task"] == "classify" and deploy["imgsz"] == 32 and deploy["class_names"] == cfg["class_names"]
    model = build_model(deploy["model_name"], **deploy["model_kwargs"])
    model.load_state_dict(deploy["state_dict"])
    assert model.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 5)


def test_val_json_confusion_and_deploy_file_agree(cli, trained, tiny_cls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("val", "--weights", trained / "weights" / "best.pt", "--data", tiny_cls, "--json")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    m = result["metrics"]
    assert result["task"] == "classify" and m["images"] == 20
    confusion = np.array(m["confusion"])
    assert confusion.sum() == 20 and m["accuracy"] == pytest.approx(np.trace(confusion) / 20, abs=1e-6)
    save = tmp_path / result["save_dir"]
    assert (save / "confusion.png").stat().st_size > 5000 and "runs/classify/val" in result["save_dir"]
    assert json.loads((save / "metrics.json").read_text())["metrics"] == m
    again = cli("val", "--weights", trained / "weights" / "deploy.pt", "--data", tiny_cls)
    assert again.code == 0 and "per class" in again.out and f"{m['accuracy']:.4f}" in again.out


def test_distill_baseline_compares_accuracy_on_the_held_out_images(cli, trained, tiny_cls, tmp_path):
    r = cli("distill", "classify", "--teacher", trained, "--student", "cmi", "--data", tiny_cls, "--baseline",
            *TINY, f"project={tmp_path}", "teacher_check=false")  # a 1-epoch teacher is at chance level
    assert r.code == 0, r.err
    summary = json.loads((tmp_path / "classify" / "cmi-kd" / "results.json").read_text())
    b = summary["baseline"]
    assert b["metric"] == "accuracy" and b["split"] == "val" and b["images"] == summary["val"]["images"]
    assert b["distilled"] == pytest.approx(summary["val"]["accuracy"]) and b["alone"] == pytest.approx(
        b["alone_val"]["accuracy"])  # the same held-out images the runs validated on
    assert (tmp_path / "classify" / "cmi-kd-alone" / "weights" / "best.pt").is_file()


def test_distill_kd_from_a_run_and_dkd_from_a_deploy_file(cli, trained, tiny_cls, tmp_path):
    r = cli("distill", "classify", "--teacher", trained, "--student", "cmi", "--data", tiny_cls, "--T", 6, "--alpha",
            0.7, *TINY, f"project={tmp_path}", "teacher_check=false")
    assert r.code == 0, r.err
    run = tmp_path / "classify" / "cmi-kd"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert (cfg["T"], cfg["alpha"], cfg["method"]) == (6.0, 0.7, "kd")
    assert cfg["hard_weight"] == pytest.approx(0.3) and cfg["losses"][0]["params"] == {"T": 6.0}
    assert "teacher" in r.out and "student" in r.out
    summary = json.loads((run / "results.json").read_text())
    assert summary["teacher"]["model"] == "cmi" and "accuracy" in summary["teacher"]["val"]
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "train/kd" in header and "train/hard" in header
    ckpt = torch.load(run / "weights" / "best.pt", weights_only=True)
    assert not any("teacher" in k for k in ckpt["state_dict"])  # student only

    torch.manual_seed(0)  # a random mobilenetv2 teacher as a bare deploy file (no class names recorded)
    teacher = build_model("mobilenetv2", classes=5, width=0.35)
    file = tmp_path / "teacher.pt"
    torch.save({"format": DEPLOY_FORMAT, "model_name": "mobilenetv2", "model_kwargs": {"classes": 5, "width": 0.35},
                "threshold": 0.5, "state_dict": teacher.state_dict()}, file)
    r = cli("distill", "classify", "--teacher", file, "--student", "cmi", "--data", tiny_cls, "--method", "dkd",
            *TINY, f"project={tmp_path}", "teacher_check=false")
    assert r.code == 0, r.err
    run = tmp_path / "classify" / "cmi-dkd"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["losses"][0]["method"] == "dkd" and cfg["losses"][0]["params"]["beta"] == 8.0
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert float(rows[0]["train/kd"]) >= 0 and rows[0]["train/hard"]
    model, hp = load_checkpoint_model(run / "weights" / "deploy.pt")
    assert hp["config"]["class_names"][0] == "crazing" and set(model.state_dict()) == set(
        build_model("cmi", classes=5, width=0.25).state_dict())


def test_export_parity_and_predict_with_both_runtimes(cli, trained, tiny_cls, tmp_path, monkeypatch):
    from defectkd import api

    monkeypatch.chdir(tmp_path)
    deploy = trained / "weights" / "deploy.pt"
    static = tmp_path / "cls.onnx"
    r = cli("export", "--weights", deploy, "--out", static)
    assert r.code == 0, r.err
    assert "1x3x32x32" in r.out and "onnx.checker passed" in r.out  # the training size by default
    proto = onnx.load(str(static))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["task"] == "classify" and json.loads(meta["class_names"])[2] == "patches" and meta["imgsz"] == "32"
    assert [o.name for o in proto.graph.output] == ["logits"] and [i.name for i in proto.graph.input] == ["images"]

    dynamic = api.export(deploy, dynamic=True, out=tmp_path / "dyn.onnx")
    assert dynamic["max_abs_diff"] < 1e-4
    model, _ = load_checkpoint_model(deploy)
    x = torch.rand(3, 3, 40, 56)
    with torch.no_grad():
        expected = model(x).numpy()
    got = ort.InferenceSession(dynamic["file"], providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
    assert got.shape == (3, 5) and np.abs(got - expected).max() < 1e-4

    r = cli("predict", "--weights", static, "--source", tiny_cls, "--json", "--save")
    assert r.code == 0, r.err
    lines = [json.loads(line) for line in r.out.splitlines()]
    assert len(lines) == 20 and lines[0]["class"] in lines[0]["probs"]
    assert sum(lines[0]["probs"].values()) == pytest.approx(1, abs=1e-4)
    assert lines[0]["score"] == max(lines[0]["probs"].values())
    assert len((tmp_path / "runs" / "predict" / "predict" / "predictions.jsonl").read_text().splitlines()) == 20
    torch_run = api.predict(deploy, tiny_cls)
    assert torch_run["runtime"] == "TorchClassifier"
    for a, b in zip(lines, torch_run["results"], strict=True):
        assert a["image"] == b["image"] and a["class"] == b["class"] and abs(a["score"] - b["score"]) < 1e-4
    table = cli("predict", "--weights", trained, "--source", tiny_cls / "spots")
    assert table.code == 0 and "score" in table.out and table.out.count(".png") == 4
    assert_one_line_error(cli("predict", "--weights", static, "--source", tiny_cls, "--threshold", 0.3), "threshold")


def test_bad_input_is_one_line(cli, tiny_cls, tiny_weights, tmp_path):
    project = f"project={tmp_path / 'p'}"
    data = tmp_path / "data"
    shutil.copytree(tiny_cls, data)
    (data / "rust").mkdir()  # an empty class folder
    assert_one_line_error(cli("train", "classify", "--data", data, *TINY, project), "rust",
                          "class folder holds no images")
    (data / "rust").rmdir()
    bad = data / "spots" / "spots_00004.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert_one_line_error(cli("train", "classify", "--data", data, *TINY, project), "spots_00004.png", "truncated",
                          "--skip-bad")
    table = tmp_path / "labels.csv"
    table.write_text(f"path,label\n{tiny_cls / 'spots' / 'spots_00004.png'},spots\nmissing/x.png,crazing\n")
    assert_one_line_error(cli("train", "classify", "--data", table, *TINY, project), "x.png", "not found")
    assert not (tmp_path / "p").exists()  # refusals leave no run folder

    assert_one_line_error(cli("train", "classify", "--data", tiny_cls, "--model", "mcff-l", *TINY, project),
                          "segment model")
    assert_one_line_error(cli("train", "segment", "--data", tiny_cls, "--model", "cmi", "epochs=1", project),
                          "classify model", "defectkd train classify")
    assert_one_line_error(cli("distill", "classify", "--teacher", tiny_weights, "--data", tiny_cls, *TINY, project),
                          "not a classification model")
    assert_one_line_error(cli("distill", "classify", "--teacher", tiny_weights, "--data", tiny_cls, "--method", "cwd",
                              *TINY, project), "unknown distillation method 'cwd'")
    split = tmp_path / "split"
    for part, classes in (("train", ("a", "b")), ("test", ("a", "c"))):
        for cls in classes:
            (split / part / cls).mkdir(parents=True)
            shutil.copy(tiny_cls / "spots" / "spots_00004.png", split / part / cls / "x.png")
    weights = tmp_path / "w.pt"
    torch.save({"format": DEPLOY_FORMAT, "model_name": "cmi", "model_kwargs": {"classes": 2, "width": 0.25},
                "threshold": 0.5, "task": "classify", "class_names": ["a", "b"], "imgsz": 32,
                "state_dict": build_model("cmi", classes=2, width=0.25).state_dict()}, weights)
    assert_one_line_error(cli("val", "--weights", weights, "--data", split), "class 'c'", "'test'")


def test_int8_and_openvino_exports_of_a_classifier(cli, trained, tiny_cls, tmp_path):
    from defectkd import api
    from defectkd.deploy.backends import open_runtime

    r = api.export(trained, format="onnx-int8", out=tmp_path / "cls.int8.onnx", data=tiny_cls, max_drop=0.5)
    assert r["metric"] == "accuracy" and r["task"] == "classify" and r["images"] >= 1
    assert 0 <= r["metric_int8"] <= 1 and r["drop"] == pytest.approx(r["metric_fp32"] - r["metric_int8"])
    assert r["method"] == "percentile" and "percentile calibration" in r["quantization"]  # min-max costs accuracy
    runtime = open_runtime(r["file"])
    probs, _ = runtime.classify(np.zeros((50, 40, 3), np.uint8))
    assert probs.shape == (5,) and runtime.class_names[2] == "patches"
    if importlib.util.find_spec("openvino"):
        ov = api.export(trained, format="openvino", out=tmp_path / "cls_openvino_model")
        assert ov["deviation"] < 1e-4 and open_runtime(ov["file"]).imgsz == 32
