"""INT8 quantization helpers that need no model."""

import logging

from defectkd.export.quantize import _QuietAxisWarnings


def test_only_ort_per_channel_fallback_warnings_are_dropped():
    quiet = _QuietAxisWarnings()

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("root", logging.WARNING, __file__, 1, msg, None, None)

    assert not quiet.filter(record("Axis 1 is out-of-range for weight 'rect.head.1.weight' with rank 1"))
    assert quiet.filter(record("Please consider to run pre-processing before quantization"))


def test_skip_head_leaves_the_classifier_head_in_float(tmp_path):
    import cv2
    import numpy as np
    import onnx
    import torch

    from defectkd.export.quantize import quantize_int8
    from defectkd.info import export_onnx_model
    from defectkd.models import build_model

    torch.manual_seed(0)
    fp32 = export_onnx_model(build_model("cmi", classes=3, width=0.25), tmp_path / "cmi.onnx", 32)
    images = []
    for i in range(4):
        images.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(images[-1]), np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8))

    def prepare(rgb):
        return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255

    def head_inputs(path):
        graph = onnx.load(str(path)).graph
        made_by = {out: n.op_type for n in graph.node for out in n.output}
        gemm = next(n for n in graph.node if n.op_type == "Gemm")
        return [made_by.get(name) for name in gemm.input]

    default = quantize_int8(fp32, tmp_path / "all.onnx", images, prepare)
    float_head = quantize_int8(fp32, tmp_path / "head.onnx", images, prepare, skip_head=True, per_channel=False)
    assert head_inputs(tmp_path / "all.onnx") == ["DequantizeLinear"] * 3  # int8 weights and bias
    assert head_inputs(tmp_path / "head.onnx")[1:] == [None, None]  # float weights and bias (initializers)
    assert "per-channel weights" in default["quantization"]
    assert "per-tensor weights" in float_head["quantization"] and "head in float" in float_head["quantization"]
