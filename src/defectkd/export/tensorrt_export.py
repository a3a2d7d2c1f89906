"""ONNX -> TensorRT engine (`NAME.engine` + `NAME.engine.json` metadata), built on the GPU it will run on.

FP16 with `half`; INT8 from the QDQ graph (explicit quantization: the scales come from defectkd's
calibration, TensorRT needs no calibrator). A dynamic export gets one optimisation profile from 32 px
to twice the export size. Written against the TensorRT 10 Python API; it has not run on a GPU in
this project's CI (no GPU there), so treat its first use on a new machine as a check.
"""

from __future__ import annotations

import json
from pathlib import Path

from defectkd.core.errors import DefectKDError


class EngineBuildError(DefectKDError):
    """TensorRT could not parse or build the network."""


def onnx_to_engine(onnx_file: Path, out: Path, metadata: dict[str, str], imgsz: int, half: bool = False,
                   int8: bool = False, dynamic: bool = False, workspace_gib: int = 4) -> Path:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_file)):
        first = parser.get_error(0).desc() if parser.num_errors else "unknown error"
        raise EngineBuildError(f"{onnx_file}: TensorRT cannot parse the ONNX graph ({first})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_gib << 30)
    if half:
        config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        config.set_flag(trt.BuilderFlag.INT8)
    if dynamic:
        profile = builder.create_optimization_profile()
        name = network.get_input(0).name
        profile.set_shape(name, (1, 3, 32, 32), (1, 3, imgsz, imgsz), (8, 3, 2 * imgsz, 2 * imgsz))
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"{out}: TensorRT could not build the engine (see its log above)")
    out.write_bytes(bytes(serialized))
    Path(str(out) + ".json").write_text(json.dumps(metadata, indent=1))
    return out
