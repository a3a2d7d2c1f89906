"""The model zoo: shipped weights work by name wherever a weights path does, offline, with no training."""

import json

import cv2
import numpy as np
import torch

from defectkd import api
from defectkd.core.zoo import entries, folder, zoo_file


def test_every_entry_has_its_file_and_a_model_card():
    for name, card in entries().items():
        file = zoo_file(name)
        # the largest, the detector, is 9.2 MB in float16
        assert file is not None and file.is_file() and file.stat().st_size < 10_000_000, name
        for key in ("task", "model", "summary", "data", "licence", "trained_with", "input", "threshold", "metrics"):
            assert key in card, (name, key)
        deploy = torch.load(file, map_location="cpu", weights_only=True)
        assert deploy["model_name"] == card["model"] and "data" not in deploy  # no path of the machine that trained it
        if card["threshold"] is not None:
            assert deploy["threshold"] == card["threshold"]
    assert {z["name"] for z in api.zoo()} == set(entries())


def test_predict_val_export_and_pretrained_by_zoo_name(cli, tmp_path, monkeypatch, tiny_seg):
    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        img = np.full((96, 128, 3), 150, np.uint8)
        cv2.line(img, (5, 10 + 30 * i), (120, 60), (40, 40, 40), 2)
        cv2.imwrite(str(photos / f"p{i}.jpg"), img)
    r = cli("predict", "--weights", "mcff-edge-n-deepcrack", "--source", photos, "--save", "--json")
    assert r.code == 0, r.err
    lines = [json.loads(line) for line in r.out.splitlines()]
    assert len(lines) == 2 and lines[0]["threshold"] == entries()["mcff-edge-n-deepcrack"]["threshold"]
    assert len(list((tmp_path / "runs" / "predict" / "predict" / "masks").iterdir())) == 2
    v = cli("val", "--weights", "mcff-edge-n-deepcrack", "--data", tiny_seg, "--json")
    assert v.code == 0 and json.loads(v.out)["metrics"]["images"] == 24
    e = cli("export", "--weights", "mcff-edge-n-deepcrack", "--imgsz", 64)
    assert e.code == 0, e.err
    assert (tmp_path / "mcff-edge-n-deepcrack.onnx").is_file() and not list(folder().glob("*.onnx"))
    models = cli("models")
    assert "mcff-edge-n-deepcrack" in models.out and "cmi-neu" in models.out
    t = cli("train", "segment", "--data", tiny_seg, "--model", "mcff-edge-n", "--pretrained", "mcff-edge-n-deepcrack",
            "--epochs", 1, "--imgsz", 48, "--batch", 4, "workers=0", f"project={tmp_path / 'ft'}")
    assert t.code == 0, t.err
    boxes = cli("predict", "--weights", "retinanet-mnv3-neu", "--source", photos / "p0.jpg", "--json")
    assert boxes.code == 0, boxes.err
    found = json.loads(boxes.out.splitlines()[0])
    card = entries()["retinanet-mnv3-neu"]
    assert found["threshold"] == card["threshold"] and set(found["labels"]) <= set(card["metrics"]["ap_50_by_class"])
    assert "retinanet-mnv3-neu" in models.out
    neu = ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]
    label = json.loads(cli("predict", "--weights", "cmi-neu", "--source", photos / "p0.jpg", "--json").out)
    assert label["class"] in neu and list(label["probs"]) == neu and abs(sum(label["probs"].values()) - 1) < 1e-3
    s = cli("predict", "--weights", "mcff-edge-s-deepcrack", "--source", photos, "--json")
    assert s.code == 0 and [json.loads(x)["threshold"] for x in s.out.splitlines()] == [0.5, 0.5], s.err
    missing = cli("predict", "--weights", "no-such-zoo-model", "--source", photos)
    assert missing.code == 2 and "zoo name" in missing.err
