"""Static post-training INT8 quantization of an exported ONNX graph with ONNX Runtime's tools.

Activations are calibrated on real images prepared exactly as the runtime prepares them (the task
runtime's `prepare`), weights are quantized per output channel, and the graph is written in QDQ form,
which ONNX Runtime fuses into integer kernels on CPU and which OpenVINO and TensorRT read as INT8.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


class _Images:
    """onnxruntime CalibrationDataReader over image files (read lazily, one at a time)."""

    def __init__(self, images: list[Path], prepare: Callable[[np.ndarray], np.ndarray], input_name: str) -> None:
        self.images, self.prepare, self.input_name = images, prepare, input_name
        self._it: Iterator[Path] = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        from defectkd.data.io import read_image

        path = next(self._it, None)
        return None if path is None else {self.input_name: self.prepare(read_image(path))}

    def rewind(self) -> None:
        self._it = iter(self.images)


class _QuietAxisWarnings(logging.Filter):
    """ORT logs 'Axis 1 is out-of-range for weight ... with rank 1' once per 1-D weight (a norm's scale, a PReLU
    slope) that per-channel mode then quantizes per tensor, as intended: dozens of lines that look like errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is out-of-range for weight" not in record.getMessage()


def quantize_int8(fp32: Path, out: Path, images: list[Path], prepare: Callable[[np.ndarray], np.ndarray],
                  method: str = "minmax", per_channel: bool = True, op_types: list[str] | None = None,
                  skip_depthwise: bool = False, qoperator: bool = False, skip_head: bool = False) -> dict:
    """Write the INT8 twin of FP32 to OUT, calibrated on IMAGES; the FP32 file's metadata is kept.
    `op_types`: only these operator types (default: all ORT can quantize); `skip_depthwise`: leave grouped
    convolutions in float; `qoperator`: QLinearConv-style operators instead of QDQ pairs; `skip_head`: leave the
    fully connected layers (Gemm, MatMul: a classifier's head) in float."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calibrators = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                   "entropy": CalibrationMethod.Entropy}
    source = onnx.load(str(fp32))
    input_name = source.graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)  # folds, fuses, infers shapes
        nodes = onnx.load(str(prepared)).graph.node  # names after the fusions
        exclude = [n.name for n in nodes if skip_depthwise and n.op_type == "Conv"
                   and any(a.name == "group" and a.i > 1 for a in n.attribute)]
        exclude += [n.name for n in nodes if skip_head and n.op_type in ("Gemm", "MatMul")]
        quiet = _QuietAxisWarnings()
        logging.getLogger().addFilter(quiet)

        def run(calibration: str) -> None:
            quantize_static(str(prepared), str(out), _Images(images, prepare, input_name),
                            quant_format=QuantFormat.QOperator if qoperator else QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel,
                            calibrate_method=calibrators[calibration], op_types_to_quantize=op_types,
                            nodes_to_exclude=exclude, extra_options={"CalibMovingAverage": calibration == "minmax",
                                                                     "CalibPercentile": 99.999})

        used, why = method, ""
        try:
            run(method)
        except ValueError as exc:
            # ORT's histogram calibrators give every activation 2048 bins; one whose values all but coincide
            # (an untrained head's prior bias) cannot have them: min-max is the calibration that still works.
            if method == "minmax" or "Too many bins" not in str(exc):
                raise
            used, why = "minmax", f" ({method} impossible: an activation is nearly constant)"
            run(used)
        finally:
            logging.getLogger().removeFilter(quiet)
    quantized = onnx.load(str(out))
    del quantized.metadata_props[:]
    for entry in source.metadata_props:
        quantized.metadata_props.add(key=entry.key, value=entry.value)
    parts = ["per-channel weights" if per_channel else "per-tensor weights", f"{used} calibration on "
             f"{len(images)} images{why}"] + ["head in float"] * skip_head + ["depthwise in float"] * skip_depthwise
    note = f"int8 static {'QOperator' if qoperator else 'QDQ'} ({', '.join(parts)})"
    quantized.metadata_props.add(key="quantization", value=note)
    onnx.save(quantized, str(out))
    return {"file": str(out), "calibration_images": len(images), "method": used, "quantization": note}
