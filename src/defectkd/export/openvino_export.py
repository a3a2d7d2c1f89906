"""ONNX -> OpenVINO IR (`NAME_openvino_model/` with NAME.xml, NAME.bin and metadata.json).

OpenVINO reads the exported ONNX graph directly, FP32 or INT8 QDQ (it runs the quantized parts in
integer kernels); `half` stores the weights in FP16. The model's metadata (task, classes, threshold,
post-processing) goes beside it in metadata.json, which deploy.backends reads.
"""

from __future__ import annotations

import json
from pathlib import Path

from defectkd.deploy.backends import OPENVINO_METADATA


def onnx_to_openvino(onnx_file: Path, out_dir: Path, metadata: dict[str, str], half: bool = False) -> Path:
    import openvino as ov

    model = ov.convert_model(str(onnx_file))
    out_dir.mkdir(parents=True, exist_ok=True)
    xml = out_dir / (out_dir.name.removesuffix("_openvino_model") + ".xml")
    ov.save_model(model, str(xml), compress_to_fp16=half)
    (out_dir / OPENVINO_METADATA).write_text(json.dumps(metadata, indent=1))
    return xml
