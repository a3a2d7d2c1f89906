"""ONNX export (parity with PyTorch, metadata, no overwrite) and prediction with both runtimes."""

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from defectkd.models.loading import load_checkpoint_model


def test_static_and_dynamic_export_match_pytorch(tmp_path, tiny_weights, tiny_seg, cli):
    model, _ = load_checkpoint_model(tiny_weights)
    static = tmp_path / "static.onnx"
    r = cli("export", "--weights", tiny_weights, "--imgsz", 64, "--out", static)
    assert r.code == 0, r.err
    assert "onnx.checker passed" in r.out and "max abs difference of logits" in r.out
    proto = onnx.load(str(static))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["model"] == "mcff-l" and meta["threshold"] == "0.5" and meta["imgsz"] == "64"
    outputs = [o.name for o in proto.graph.output]
    assert outputs == ["logits"]  # the deploy head only: training heads are not in the graph

    dynamic = tmp_path / "dynamic.onnx"
    assert cli("export", "--weights", tiny_weights, "--dynamic", "--out", dynamic).code == 0
    session = ort.InferenceSession(str(dynamic), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 40, 72)  # other batch, odd size: the graph pads to the stride and crops back
    with torch.no_grad():
        expected = model(x).numpy()
    got = session.run(None, {"images": x.numpy()})[0]
    assert got.shape == expected.shape == (2, 2, 40, 72)
    assert np.abs(got - expected).max() < 1e-4
    # traced at 448 (stride-aligned, no padding needed there), run at a size that needs padding
    x = torch.rand(1, 3, 42, 70)
    with torch.no_grad():
        expected = model(x).numpy()
    got = session.run(None, {"images": x.numpy()})[0]
    assert got.shape == (1, 2, 42, 70) and np.abs(got - expected).max() < 1e-4


def test_export_api_reports_parity_on_a_real_image_and_never_overwrites(tmp_path, tiny_weights, tiny_seg, cli):
    from defectkd import api

    image = next((tiny_seg / "images").iterdir())
    out = tmp_path / "m.onnx"
    r = api.export(tiny_weights, imgsz=64, out=out, image=image)
    assert r["parity_image"] == str(image) and r["max_abs_diff"] < 1e-4 and r["size_mb"] > 1
    before = out.read_bytes()
    bad = cli("export", "--weights", tiny_weights, "--imgsz", 64, "--out", out)
    assert bad.code == 2 and "already exists" in bad.err and len(bad.err.strip().splitlines()) == 1
    assert out.read_bytes() == before
    assert cli("export", "--weights", tiny_weights, "--format", "tflite").code == 2


@pytest.mark.slow
def test_predict_folder_with_pt_and_onnx_agree(tmp_path, tiny_weights, tiny_seg, cli, monkeypatch):
    from defectkd import api

    monkeypatch.chdir(tmp_path)
    onnx_file = api.export(tiny_weights, imgsz=64, out=tmp_path / "m.onnx")["file"]
    r = cli("predict", "--weights", onnx_file, "--source", tiny_seg / "images", "--save", "--json")
    assert r.code == 0, r.err
    lines = [json.loads(line) for line in r.out.splitlines()]
    assert len(lines) == 24
    keys = {"image", "crack_ratio", "area_px", "cracks", "longest_crack_px", "times_ms"}
    assert keys <= set(lines[0]) and {"read_ms", "inference_ms", "total_ms"} <= set(lines[0]["times_ms"])
    save = tmp_path / "runs" / "predict" / "predict"
    assert len(list((save / "masks").iterdir())) == 24 and len(list((save / "overlays").iterdir())) == 24
    assert len((save / "predictions.jsonl").read_text().splitlines()) == 24
    torch_run = api.predict(tiny_weights, tiny_seg / "images")
    assert torch_run["runtime"] == "TorchSegmenter" and torch_run["save_dir"] is None
    for a, b in zip(lines, torch_run["results"], strict=True):
        assert a["image"] == b["image"] and abs(a["crack_ratio"] - b["crack_ratio"]) < 2e-3
    glob_run = cli("predict", "--weights", tiny_weights, "--source", f"{tiny_seg}/images/*_0000[0-2].png")
    assert glob_run.code == 0 and glob_run.out.count(".png") == 3
    missing = cli("predict", "--weights", onnx_file, "--source", tmp_path / "nothing")
    assert missing.code == 2 and "no such file, folder or pattern" in missing.err


def test_deploy_package_imports_without_torch():
    code = ("import sys, defectkd.deploy, defectkd.deploy.predict; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


@pytest.mark.parametrize("shape,expected", [((5, 2, 10), 10.0), ((0, 0, 0), 0.0)])
def test_crack_length_of_a_straight_line(shape, expected):
    from defectkd.deploy import crack_stats

    row, start, length = shape
    mask = np.zeros((16, 16), bool)
    mask[row, start:start + length] = True
    stats = crack_stats(mask)
    assert stats["longest_crack_px"] == expected and stats["area_px"] == length
    assert stats["cracks"] == (1 if length else 0)
