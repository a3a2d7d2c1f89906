"""Defect detection through the real CLI on tiny synthetic defects: `data synth/check`, train, val, distill (mgd on
every FPN level), export with box parity (ONNX Runtime + numpy post-processing vs torchvision), predict (.onnx and
.pt) and bad input (one line, exit 2)."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
import yaml

from defectkd.core.checkpoint import DEPLOY_FORMAT
from defectkd.models import build_model
from defectkd.models.loading import load_checkpoint_model
from tests.helpers import assert_one_line_error, run_cli

TINY = ["--epochs", "1", "--imgsz", "64", "--batch", "4", "workers=0"]


@pytest.fixture(scope="module")
def tiny_det(tmp_path_factory):
    """16 synthetic 64x64 images with VOC boxes (13 train, one of them background; 3 test)."""
    from defectkd import api

    return api.synth(tmp_path_factory.mktemp("det") / "data", n=16, size=64, seed=5, task="detect")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_det):
    project = tmp_path_factory.mktemp("proj")
    run_cli("train", "detect", "--data", tiny_det, "--model", "retinanet-r18", "--name", "tiny", *TINY,
            f"project={project}")
    return project / "detect" / "tiny"


@pytest.fixture(scope="module")
def random_detector(tmp_path_factory):
    """A deploy file of a randomly initialised but fixed retinanet-r18 whose scores spread over (0, 1), with a
    predict threshold of 0.3, so that there are boxes to compare."""
    return random_deploy_file(tmp_path_factory.mktemp("random") / "random-r18.pt", "retinanet-r18", 0.05)


def random_deploy_file(path, model_name: str, cls_std: float):
    """A seeded random detector saved as a deploy file (4 NEU classes, 96 px, predict threshold 0.3); its
    classification layer re-drawn with `cls_std` around a -1 bias so that scores spread across the threshold."""
    torch.manual_seed(0)
    kwargs = {"classes": 4, "min_size": 96, "max_size": 96}
    model = build_model(model_name, **kwargs)
    head = model.net.head.classification_head.cls_logits
    torch.nn.init.normal_(head.weight, std=cls_std)
    torch.nn.init.constant_(head.bias, -1.0)
    torch.save({"format": DEPLOY_FORMAT, "model_name": model_name, "model_kwargs": kwargs, "threshold": 0.3,
                "task": "detect", "class_names": ["inclusion", "patches", "pits", "scratches"], "imgsz": 96,
                "state_dict": model.state_dict()}, path)
    return path


def test_edge_detector_exports_with_box_parity(tmp_path):
    """retinanet-mnv3 (MobileNetV3 + 128-channel FPN): ONNX Runtime + numpy post-processing give torchvision's
    boxes, as for the ResNet detectors."""
    from defectkd import api

    # its random head features are ~1e-3, so a wide classification layer spreads the logits by ~1
    path = random_deploy_file(tmp_path / "random-mnv3.pt", "retinanet-mnv3", 200.0)
    summary = api.export(path, out=tmp_path / "mnv3.onnx")
    assert summary["boxes"] > 0 and summary["box_max_abs_diff"] < 1e-3 and summary["unmatched_boxes"] == 0


def test_synth_and_check_through_the_cli(cli, tiny_det, tmp_path):
    r = cli("data", "synth", "detect", "--out", tmp_path / "s", "--n", 10, "--size", 64)
    assert r.code == 0 and "10 images" in r.out and "4 classes" in r.out
    assert (tmp_path / "s" / "annotations" / "synth_00000.xml").is_file()
    assert_one_line_error(cli("data", "synth", "detect", "--out", tmp_path / "s", "--n", 10), "not empty")
    report = json.loads(cli("data", "check", tiny_det, "--task", "detect", "--json").out)
    assert report["task"] == "detect" and report["layout"] == "voc" and report["classes"] == [
        "inclusion", "patches", "pits", "scratches"]
    assert report["splits"]["train"]["images"] == 13 and report["splits"]["test"]["images"] == 3
    assert report["background_images"] == 1 and report["boxes"] == sum(report["per_class"].values()) > 0
    assert not report["problems"]
    r = cli("data", "check", tiny_det, "--task", "detect")
    assert r.code == 0 and "boxes per class and split" in r.out and "background images" in r.out
    r = cli("data", "check", tiny_det, "--task", "detect", "--classes", "pits,scratches")
    assert r.code == 1 and "is not one of the classes (pits, scratches)" in r.out  # problems: exit 1
    auto = cli("data", "check", tiny_det, "--classes", "pits")  # recognised as VOC without --task: --classes applies
    assert auto.code == 1 and "task detect (recognised): layout voc" in auto.out
    assert "not one of the classes" in auto.out


def test_train_run_folder(trained, tiny_det):
    for rel in ("config.yaml", "data.json", "weights/best.pt", "weights/last.pt", "weights/deploy.pt", "metrics.csv",
                "curves.png", "results.json", "pr_curve.png"):
        assert (trained / rel).is_file(), rel
    assert list((trained / "examples").glob("*.jpg"))
    cfg = yaml.safe_load((trained / "config.yaml").read_text())
    assert cfg["task"] == "detect" and cfg["model"] == "retinanet-r18" and cfg["imgsz"] == 64
    assert cfg["class_names"] == ["inclusion", "patches", "pits", "scratches"]
    assert "val/map" in (trained / "metrics.csv").read_text().splitlines()[0]
    data = json.loads((trained / "data.json").read_text())
    assert data["train_images"] + data["val_images"] == 13 and data["data_check"]["background_images"] == 1
    results = json.loads((trained / "results.json").read_text())
    assert results["task"] == "detect" and {"map", "map_50", "map_75", "per_class"} <= set(results["val"])
    deploy = torch.load(trained / "weights" / "deploy.pt", weights_only=True)
    assert deploy["task"] == "detect" and deploy["class_names"] == cfg["class_names"] and deploy["imgsz"] == 64
    assert deploy["model_kwargs"] == {"classes": 4, "min_size": 64, "max_size": 64}
    model, _ = load_checkpoint_model(trained / "weights" / "deploy.pt")
    assert model.net.transform.min_size == (64,)


def test_val_writes_metrics_pr_curve_and_examples(cli, trained, tiny_det, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("val", "--weights", trained / "weights" / "best.pt", "--data", tiny_det, "--json")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    m = result["metrics"]
    assert result["task"] == "detect" and result["split"] == "test" and m["images"] == 3 and m["boxes"] > 0
    assert set(m["per_class"]) == {"inclusion", "patches", "pits", "scratches"} and -1 <= m["map"] <= 1
    save = tmp_path / result["save_dir"]
    assert "runs/detect/val" in result["save_dir"] and (save / "pr_curve.png").stat().st_size > 5000
    assert len(list((save / "examples").glob("*.jpg"))) == 3
    assert json.loads((save / "metrics.json").read_text())["metrics"] == m
    again = cli("val", "--weights", trained / "weights" / "deploy.pt", "--data", tiny_det)
    assert again.code == 0 and "per class" in again.out and "ap_50" in again.out


def test_distill_mgd_on_every_fpn_level(cli, trained, tiny_det, tmp_path):
    base = ("distill", "detect", "--teacher", trained, "--student", "retinanet-r18", "--data", tiny_det, *TINY,
            f"project={tmp_path}")
    # a 1-epoch teacher finds nothing yet: refused before any run folder exists, unless told to go on
    assert_one_line_error(cli(*base), "mAP50 0.0000 on the validation split", "teacher_check=false")
    assert not (tmp_path / "detect").exists()
    r = cli(*base, "--baseline", "teacher_check=false")
    assert r.code == 0, r.err
    b = json.loads((tmp_path / "detect" / "retinanet-r18-mgd" / "results.json").read_text())["baseline"]
    assert b["metric"] == "mAP50" and b["split"] == "test" and b["images"] == 3  # COCO mAP50, resampled per image
    assert b["low"] <= b["gain"] <= b["high"] and (tmp_path / "detect" / "retinanet-r18-mgd-alone").is_dir()
    run = tmp_path / "detect" / "retinanet-r18-mgd"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["method"] == "mgd" and cfg["losses"][0]["params"] == {"alpha": 2e-5, "mask_ratio": 0.65,
                                                                     "mask": "spatial"}
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "train/kd" in header and "train/hard" in header and "teacher" in r.out
    summary = json.loads((run / "results.json").read_text())
    assert summary["teacher"]["model"] == "retinanet-r18" and "map" in summary["teacher"]["val"]
    ckpt = torch.load(run / "weights" / "best.pt", weights_only=True)
    assert not any("teacher" in k for k in ckpt["state_dict"])  # student (+ MGD generators), never the teacher
    assert sum(k.endswith("generation.0.weight") for k in ckpt["state_dict"]) == 5  # one MGD per FPN level
    deploy = torch.load(run / "weights" / "deploy.pt", weights_only=True)
    assert set(deploy["state_dict"]) == set(build_model("retinanet-r18", classes=4).state_dict())


def test_export_parity_and_predict_with_both_runtimes(cli, random_detector, tmp_path, monkeypatch):
    from defectkd import api
    from defectkd.deploy.detect import OnnxDetector
    from defectkd.tasks.detect.evaluate import TorchDetector
    from defectkd.tasks.detect.synthetic import synth_detect_sample

    monkeypatch.chdir(tmp_path)
    file = tmp_path / "det.onnx"
    r = cli("export", "--weights", random_detector, "--out", file)
    assert r.code == 0, r.err
    assert "dynamic N, H, W" in r.out and "onnx.checker passed" in r.out and "boxes (numpy post-processing" in r.out
    proto = onnx.load(str(file))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["task"] == "detect" and json.loads(meta["class_names"])[2] == "pits" and meta["threshold"] == "0.3"
    assert json.loads(meta["post"])["min_size"] == 96
    assert [o.name for o in proto.graph.output] == ["cls_logits", "bbox_regression"]
    summary = api.export(random_detector, out=tmp_path / "again.onnx")
    assert summary["boxes"] > 0 and summary["box_max_abs_diff"] < 1e-3 and summary["unmatched_boxes"] == 0

    onnx_rt, torch_rt = OnnxDetector(file), TorchDetector(random_detector)
    rgb = np.ascontiguousarray(synth_detect_sample(7, 120)[0][:80])  # 80 x 120: resized to 64 x 96, padded
    a, _ = onnx_rt.detect(rgb, 0.3)
    b, _ = torch_rt.detect(rgb, 0.3)
    assert len(a["boxes"]) > 3 and np.array_equal(a["labels"], b["labels"])
    assert np.abs(a["boxes"] - b["boxes"]).max() < 1e-3 and np.abs(a["scores"] - b["scores"]).max() < 1e-4

    images = tmp_path / "images"
    images.mkdir()
    import cv2

    for i in range(3):
        cv2.imwrite(str(images / f"img{i}.png"), synth_detect_sample(i, 72)[0])
    r = cli("predict", "--weights", file, "--source", images, "--json", "--save")
    assert r.code == 0, r.err
    lines = [json.loads(line) for line in r.out.splitlines()]
    assert len(lines) == 3 and lines[0]["count"] == len(lines[0]["boxes"]) == len(lines[0]["labels"]) > 0
    assert set(lines[0]["labels"]) <= {"inclusion", "patches", "pits", "scratches"} and min(lines[0]["scores"]) > 0.3
    assert {"read_ms", "preprocess_ms", "inference_ms", "postprocess_ms", "total_ms"} <= set(lines[0]["times_ms"])
    saved = tmp_path / "runs" / "predict" / "predict"
    assert len((saved / "predictions.jsonl").read_text().splitlines()) == 3
    assert len(list((saved / "overlays").glob("*.jpg"))) == 3
    torch_run = api.predict(random_detector, images)
    assert torch_run["runtime"] == "TorchDetector"
    for x, y in zip(lines, torch_run["results"], strict=True):
        assert x["labels"] == y["labels"] and np.abs(np.array(x["boxes"]) - np.array(y["boxes"])).max() < 1e-2
    table = cli("predict", "--weights", random_detector, "--source", images, "--threshold", 0.9)
    assert table.code == 0 and "score >= 0.9" in table.out and table.out.count(".png") == 3


def test_bad_input_is_one_line(cli, tiny_det, tiny_weights, random_detector, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project = f"project={tmp_path / 'p'}"
    data = tmp_path / "data"
    shutil.copytree(tiny_det, data)
    (data / "images" / "synth_00003.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert_one_line_error(cli("train", "detect", "--data", data, *TINY, project), "synth_00003.png", "truncated",
                          "--skip-bad")
    assert_one_line_error(cli("train", "detect", "--data", tiny_det, *TINY, project, "class_names=[pits]"),
                          "is not one of the classes (pits)", "--skip-bad")
    assert not (tmp_path / "p").exists()  # refusals leave no run folder
    assert_one_line_error(cli("train", "detect", "--data", tiny_det, "--model", "cmi", *TINY, project),
                          "classify model", "detection models")
    assert_one_line_error(cli("distill", "detect", "--teacher", tiny_weights, "--data", tiny_det, *TINY, project),
                          "not a detection model")
    assert_one_line_error(cli("distill", "detect", "--teacher", random_detector, "--data", tiny_det, "--method", "kd",
                              *TINY, project), "unknown distillation method 'kd'")
    assert_one_line_error(cli("export", "--weights", random_detector, "--imgsz", 64, "--out", tmp_path / "x.onnx"),
                          "drop --imgsz")
    assert cli("val", "--weights", random_detector, "--data", data).code == 0  # the bad image is not in test
    (data / "images" / "synth_00014.png").write_bytes(b"")
    assert_one_line_error(cli("val", "--weights", random_detector, "--data", data), "synth_00014.png", "corrupt")
    data_fixed = tmp_path / "fixed"
    shutil.copytree(tiny_det, data_fixed)
    (data_fixed / "annotations" / "synth_00015.xml").write_text("<annotation><object>")
    assert_one_line_error(cli("val", "--weights", random_detector, "--data", data_fixed), "synth_00015.xml",
                          "unreadable annotation")


def test_int8_export_of_a_detector_scores_map50(trained, tiny_det, tmp_path):
    from defectkd import api
    from defectkd.deploy.backends import open_runtime

    r = api.export(trained, format="onnx-int8", out=tmp_path / "det.int8.onnx", data=tiny_det)
    assert r["metric"] == "mAP50" and r["task"] == "detect" and 0 <= r["metric_int8"] <= 1
    # detectors ask for percentile calibration (min-max costs mAP50); this 1-epoch detector's P7 logits all sit
    # at the prior bias (a 7e-4 range: no 2048 histogram bins), so it gets min-max instead, and says why
    assert r["method"] == "minmax" and "percentile impossible" in r["quantization"]
    dets, _ = open_runtime(r["file"]).detect(np.zeros((64, 64, 3), np.uint8), threshold=0.0)
    assert dets["boxes"].shape[1] == 4 and len(dets["scores"]) == len(dets["labels"])
