"""Export formats: the table, INT8 (calibration, metadata, --max-drop), OpenVINO, the benchmark verb."""

import csv
import importlib.util
import json

import numpy as np
import onnx
import pytest
import torch

from defectkd.core.errors import ConfigError
from defectkd.deploy.backends import BackendError, backend_kind, open_backend, open_runtime
from defectkd.export.formats import FORMATS, check_options, format_table, resolve_format

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


@pytest.fixture(scope="module")
def edge_weights(tmp_path_factory):
    """An mcff-edge-n deploy file with seeded random weights (fast at 64 px)."""
    from defectkd.core.checkpoint import DEPLOY_FORMAT
    from defectkd.models import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("edge") / "edge.pt"
    torch.save({"format": DEPLOY_FORMAT, "model_name": "mcff-edge-n", "model_kwargs": {"classes": 2},
                "threshold": 0.5, "state_dict": build_model("mcff-edge-n").state_dict()}, path)
    return path


def test_format_table_aliases_and_typos():
    assert resolve_format("trt").name == "engine" and resolve_format("OV").name == "openvino"
    assert resolve_format("onnx", int8=True).name == "onnx-int8"
    with pytest.raises(ConfigError, match="did you mean 'openvino'"):
        resolve_format("openvno")
    with pytest.raises(ConfigError, match="--half does not apply to --format onnx"):
        check_options(FORMATS["onnx"], {"half": True})
    check_options(FORMATS["openvino"], {"half": True, "int8": False, "data": None})  # accepted
    rows = {r["format"]: r for r in format_table()}
    assert set(rows) == {"onnx", "onnx-int8", "openvino", "engine"}
    assert rows["onnx"]["status"] == "available"
    if not torch.cuda.is_available():  # TensorRT needs a GPU: reported, not crashed on
        assert rows["engine"]["status"] != "available"


def test_backend_kind_and_bad_files(tmp_path):
    assert backend_kind("a.onnx") == "onnx" and backend_kind("m_openvino_model") == "openvino"
    assert backend_kind("a.engine") == "engine" and backend_kind("best.pt") is None
    with pytest.raises(BackendError, match="file not found"):
        open_backend(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BackendError, match="bad.onnx: cannot load it"):
        open_backend(bad)


def test_cli_export_errors_are_one_line(cli, edge_weights, tmp_path):
    r = cli("export", "--weights", edge_weights, "--format", "tensorrtt")
    assert r.code == 2 and "did you mean 'engine'" in r.err and "Traceback" not in r.err
    r = cli("export", "--weights", edge_weights, "--max-drop", "0.01", "--out", tmp_path / "x.onnx")
    assert r.code == 2 and "apply to INT8 exports" in r.err
    assert not (tmp_path / "x.onnx").exists()
    if not torch.cuda.is_available():
        r = cli("export", "--weights", edge_weights, "--format", "trt")
        assert r.code == 2 and "--format engine is unavailable" in r.err
    r = cli("export", "--list")
    assert r.code == 0 and "onnx-int8" in r.out and "openvino" in r.out


def test_int8_export_calibrates_reports_and_runs(cli, edge_weights, tiny_seg, tmp_path):
    out = tmp_path / "edge.int8.onnx"
    r = cli("export", "--weights", edge_weights, "--format", "onnx", "--int8", "--data", tiny_seg, "--imgsz", 64,
            "--fraction", 0.5, "--out", out)
    assert r.code == 0, r.err
    assert "INT8" in r.out and "F1 on 2 validation images" in r.out
    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["model"] == "mcff-edge-n" and "int8 static QDQ" in meta["quantization"]
    assert "calibration on 16 images" in meta["quantization"]  # 50 % of 22 training images = 11 < minimum 16
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # the quantized graph runs in the deploy runtime and stays close to the FP32 one in probability
    fp32 = tmp_path / "edge.onnx"
    assert cli("export", "--weights", edge_weights, "--imgsz", 64, "--out", fp32).code == 0
    rgb = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    p8, _ = open_runtime(out).segment(rgb)
    p32, _ = open_runtime(fp32).segment(rgb)
    assert p8.shape == p32.shape == (64, 64) and np.abs(p8 - p32).mean() < 0.05


def test_max_drop_rejects_and_keeps_the_file_aside(edge_weights, tiny_seg, tmp_path, monkeypatch):
    from defectkd.core.errors import ExportError
    from defectkd.export import exporter, quality

    scores = iter([0.80, 0.70])  # FP32 then INT8: a 10-point loss
    monkeypatch.setattr(quality, "score", lambda runtime, images, progress=None: next(scores))
    out = tmp_path / "m.int8.onnx"
    with pytest.raises(ExportError, match=r"loses 0.1000 F1 .*more than --max-drop 0.01; kept aside as .*m.int8"
                                          r".rejected.onnx"):
        exporter.export_model(edge_weights, "onnx-int8", imgsz=64, data=tiny_seg, out=out, max_drop=0.01)
    assert not out.exists() and (tmp_path / "m.int8.rejected.onnx").is_file()


def test_max_drop_refuses_a_student_that_finds_nothing(edge_weights, tiny_seg, tmp_path, monkeypatch):
    """0 -> 0 loses nothing but is no pass: a model whose own metric is ~0 is refused and kept aside."""
    from defectkd.core.errors import ExportError
    from defectkd.export import exporter, quality

    monkeypatch.setattr(quality, "score", lambda runtime, images, progress=None: 0.0)
    out = tmp_path / "dead.int8.onnx"
    with pytest.raises(ExportError, match=r"scores F1 0.0000 on \d+ validation images: it finds nothing.*kept aside"):
        exporter.export_model(edge_weights, "onnx-int8", imgsz=64, data=tiny_seg, out=out, max_drop=0.01)
    assert not out.exists() and (tmp_path / "dead.int8.rejected.onnx").is_file()


def test_max_drop_refuses_constant_outputs(edge_weights, tiny_seg, tmp_path):
    """All weights zero: the same logits for every pixel of every image, refused before any metric is trusted."""
    import torch

    from defectkd.core.errors import ExportError
    from defectkd.export import exporter

    deploy = torch.load(edge_weights, weights_only=True)
    deploy["state_dict"] = {k: torch.zeros_like(v) for k, v in deploy["state_dict"].items()}
    dead = tmp_path / "dead.pt"
    torch.save(deploy, dead)
    with pytest.raises(ExportError, match="outputs are constant"):
        exporter.export_model(dead, "onnx-int8", imgsz=64, data=tiny_seg, out=tmp_path / "d.int8.onnx", max_drop=0.01)
    assert (tmp_path / "d.int8.rejected.onnx").is_file()


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino not installed")
def test_openvino_export_matches_onnx_and_predicts(cli, edge_weights, tiny_seg, tmp_path):
    out = tmp_path / "edge_openvino_model"
    r = cli("export", "--weights", edge_weights, "--format", "openvino", "--imgsz", 64, "--out", out)
    assert r.code == 0, r.err
    assert (out / "edge.xml").is_file() and (out / "edge.bin").is_file()
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["model"] == "mcff-edge-n" and meta["precision"] == "fp32"
    assert "run once by openvino" in r.out
    fp32 = tmp_path / "edge.onnx"
    assert cli("export", "--weights", edge_weights, "--imgsz", 64, "--out", fp32).code == 0
    x = np.random.default_rng(1).random((1, 3, 64, 64)).astype(np.float32)
    ov, ort_ = open_backend(out), open_backend(fp32)
    assert np.abs(ov.run(x)[0] - ort_.run(x)[0]).max() < 1e-4
    r = cli("predict", "--weights", out, "--source", tiny_seg / "images", "--json", "--max-frames", 2)
    assert r.code == 0, r.err
    assert len([line for line in r.out.splitlines() if line.startswith("{")]) == 2
    half = tmp_path / "half_openvino_model"
    r = cli("export", "--weights", edge_weights, "--format", "openvino", "--half", "--imgsz", 64, "--out", half)
    assert r.code == 0, r.err
    assert json.loads((half / "metadata.json").read_text())["precision"] == "fp16"
    assert (half / "half.bin").stat().st_size < 0.6 * (out / "edge.bin").stat().st_size  # FP16 weights
    assert np.abs(open_backend(half).run(x)[0] - ort_.run(x)[0]).max() < 0.05


@pytest.mark.slow
def test_benchmark_rows_files_and_agreeing_metrics(cli, edge_weights, tiny_seg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("benchmark", "--weights", edge_weights, "--data", tiny_seg, "--split", "val", "--imgsz", 64,
            "--formats", "onnx,int8", "--rounds", 1, "--name", "b")
    assert r.code == 0, r.err
    saved = tmp_path / "runs" / "benchmark" / "b"
    with open(saved / "benchmark.csv") as f:
        rows = {row["Format"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"pytorch", "onnx", "onnx-int8"}
    assert all(rows[k]["Status"] == "ok" and float(rows[k]["FPS"]) > 0 for k in rows)
    # PyTorch resized to the export size and the FP32 graph score the same images identically
    assert abs(float(rows["pytorch"]["F1"]) - float(rows["onnx"]["F1"])) < 1e-3
    assert float(rows["onnx-int8"]["Size (MB)"]) < float(rows["onnx"]["Size (MB)"])
    assert "| onnx-int8 | ok |" in (saved / "benchmark.md").read_text()


def test_benchmark_times_a_real_image_of_the_split(tmp_path):
    """Detectors' NMS work depends on the picture, so speed is timed on the split's first image, not on noise."""
    import cv2

    from defectkd.export.benchmark import _timing_image

    rgb = np.zeros((60, 90, 3), np.uint8)
    rgb[10:30, 20:70] = (200, 40, 10)  # a red block, saved as BGR by OpenCV
    cv2.imwrite(str(tmp_path / "a.png"), rgb[:, :, ::-1])
    got = _timing_image(tmp_path / "a.png", 32)
    assert got.shape == (32, 32, 3) and got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, cv2.resize(rgb, (32, 32), interpolation=cv2.INTER_AREA))
    assert got[8, 16].tolist() == [200, 40, 10]  # RGB order, the block where it was
