"""INT8 quantization helpers that need no model."""

import logging

from defectkd.export.quantize import _QuietAxisWarnings


def test_only_ort_per_channel_fallback_warnings_are_dropped():
    quiet = _QuietAxisWarnings()

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("root", logging.WARNING, __file__, 1, msg, None, None)

    assert not quiet.filter(record("Axis 1 is out-of-range for weight 'rect.head.1.weight' with rank 1"))
    assert quiet.filter(record("Please consider to run pre-processing before quantization"))


def _noise_images(folder, n: int, size: int) -> list:
    """N seeded random-noise PNGs of size x size: calibration images for graphs that need no real content."""
    import cv2
    import numpy as np

    paths = [folder / f"{i}.png" for i in range(n)]
    for i, path in enumerate(paths):
        cv2.imwrite(str(path), np.random.default_rng(i).integers(0, 256, (size, size, 3), dtype=np.uint8))
    return paths


def test_skip_head_leaves_the_classifier_head_in_float(tmp_path):
    import numpy as np
    import onnx
    import torch

    from defectkd.export.quantize import quantize_int8
    from defectkd.models import build_model
    from defectkd.models.info import export_onnx_model

    torch.manual_seed(0)
    fp32 = export_onnx_model(build_model("cmi", classes=3, width=0.25), tmp_path / "cmi.onnx", 32)
    images = _noise_images(tmp_path, 4, 32)

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


def _conv_graph(path, weight: float, bias: float):
    """x (1, 1, 8, 8) -> 1x1 Conv (weight, bias) -> Relu: an activation of range ~weight around bias."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((1, 1, 1, 1), weight, np.float32), "w")
    b = numpy_helper.from_array(np.array([bias], np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"]), helper.make_node("Relu", ["c"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])], [w, b])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_percentile_falls_back_to_minmax_on_a_nearly_constant_activation(tmp_path):
    import numpy as np

    from defectkd.export.quantize import quantize_int8

    images = _noise_images(tmp_path, 3, 8)

    def prepare(rgb):
        return np.ascontiguousarray(rgb[None, None, :, :, 0], dtype=np.float32) / 255

    spread = quantize_int8(_conv_graph(tmp_path / "a.onnx", 1.0, 0.5), tmp_path / "a8.onnx", images, prepare,
                           method="percentile")
    assert spread["method"] == "percentile" and "percentile calibration on 3 images" in spread["quantization"]
    # values 4.595 + [0, 1e-4]: narrower than 2048 float32 steps at 4.6, so ORT's histogram cannot be built
    flat = quantize_int8(_conv_graph(tmp_path / "b.onnx", 1e-4, 4.595), tmp_path / "b8.onnx", images, prepare,
                         method="percentile")
    assert flat["method"] == "minmax" and "(percentile impossible" in flat["quantization"]
    assert (tmp_path / "b8.onnx").is_file()
