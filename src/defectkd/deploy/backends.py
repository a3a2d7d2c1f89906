"""Inference backends for exported files (no torch): ONNX Runtime, OpenVINO, TensorRT.

Every exported model has one float input (N, 3, H, W, RGB in [0, 1]) and the task's outputs; a backend
only runs it. The task runtimes (OnnxSegmenter, OnnxClassifier, OnnxDetector) sit on top, so one file
of any format predicts, streams and is benchmarked the same way.

- `.onnx`: ONNX Runtime (FP32 or INT8 QDQ); metadata in the file's metadata_props.
- `NAME_openvino_model/` (or its `.xml`): OpenVINO IR; metadata in `metadata.json` beside the IR.
- `.engine`: a TensorRT engine (NVIDIA GPU); metadata in `NAME.engine.json`.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Protocol

import numpy as np

from defectkd.core.errors import WeightsError

OPENVINO_METADATA = "metadata.json"


class BackendError(WeightsError, ValueError):
    """An exported file that cannot be opened by its backend (one line, names the file)."""


class Backend(Protocol):
    path: Path
    name: str  # "onnxruntime", "openvino", "tensorrt"
    input_shape: tuple  # (N, 3, H, W); None where dynamic
    metadata: dict[str, str]

    def run(self, x: np.ndarray) -> list[np.ndarray]: ...


def backend_kind(path: str | Path) -> str | None:
    """'onnx', 'openvino' or 'engine' from the file name; None for anything else (a .pt, a run folder)."""
    p = Path(path)
    if p.suffix == ".onnx":
        return "onnx"
    if p.suffix == ".engine":
        return "engine"
    if p.suffix == ".xml" or p.name.endswith("_openvino_model"):
        return "openvino"
    return None


def ort_session(path: str | Path, threads: int | None = None, providers: list[str] | None = None):
    """The one way defectkd opens an ONNX Runtime session: CPU unless told, `threads` intra-op threads (None:
    ONNX Runtime's choice), one inter-op thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])


class OrtBackend:
    name = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None, providers: list[str] | None = None) -> None:
        self.path = path
        self.session = ort_session(path, threads, providers)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: x})


def openvino_xml(path: Path) -> Path:
    """The IR's .xml file of an `_openvino_model` folder (or the .xml itself)."""
    if path.suffix == ".xml":
        return path
    found = sorted(path.glob("*.xml"))
    if not found:
        raise BackendError(f"{path}: no OpenVINO .xml model in this folder")
    return found[0]


class OpenVinoBackend:
    name = "openvino"

    def __init__(self, path: Path, threads: int | None = None, device: str = "CPU") -> None:
        try:
            import openvino as ov
        except ImportError:
            raise BackendError(f"{path}: OpenVINO is not installed (pip install 'defectkd[openvino]')") from None
        xml = openvino_xml(path)
        meta_file = xml.parent / OPENVINO_METADATA
        self.metadata = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        core = ov.Core()
        model = core.read_model(str(xml))
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if self.metadata.get("precision") != "fp16" and device == "CPU":
            # OpenVINO would run FP32 models in bf16 on CPUs that have it; keep the exported precision
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.path = path
        self.compiled = core.compile_model(model, device, config)
        self.request = self.compiled.create_infer_request()
        shape = model.inputs[0].get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in shape)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        result = self.request.infer({0: x})
        return [np.asarray(result[out]) for out in self.compiled.outputs]


class TensorRTBackend:
    """A serialized TensorRT engine run through TensorRT's Python API with torch CUDA buffers (a GPU machine
    has torch; the CPU edge path never comes here)."""

    name = "tensorrt"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            import tensorrt as trt
            import torch
        except ImportError:
            raise BackendError(f"{path}: TensorRT is not installed (pip install 'defectkd[tensorrt]')") from None
        if not torch.cuda.is_available():
            raise BackendError(f"{path}: a TensorRT engine needs an NVIDIA GPU, none is visible")
        self._torch = torch
        logger = trt.Logger(trt.Logger.WARNING)
        with open(path, "rb") as f, trt.Runtime(logger) as runtime:
            self.engine = runtime.deserialize_cuda_engine(f.read())
        if self.engine is None:
            raise BackendError(f"{path}: TensorRT could not deserialize the engine (built for another GPU/version?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.path = path
        self.input_shape = tuple(d if d >= 0 else None for d in self.engine.get_tensor_shape(self.inputs[0]))
        meta_file = Path(str(path) + ".json")
        self.metadata = json.loads(meta_file.read_text()) if meta_file.is_file() else {}

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        torch = self._torch
        xt = torch.from_numpy(np.ascontiguousarray(x)).cuda()
        self.context.set_input_shape(self.inputs[0], tuple(xt.shape))
        self.context.set_tensor_address(self.inputs[0], xt.data_ptr())
        outs = []
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(name, out.data_ptr())
            outs.append(out)
        stream = torch.cuda.current_stream()
        self.context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        return [o.cpu().numpy() for o in outs]


def open_backend(path: str | Path, threads: int | None = None, providers: list[str] | None = None) -> Backend:
    """The backend for an exported file, by its name; one-line BackendError when it cannot be opened."""
    path = Path(path)
    kind = backend_kind(path)
    if kind is None:
        raise BackendError(f"{path}: not an exported model (.onnx, NAME_openvino_model/ or .engine)")
    if not path.exists():
        raise BackendError(f"{path}: file not found")
    try:
        if kind == "onnx":
            return OrtBackend(path, threads, providers)
        if kind == "openvino":
            return OpenVinoBackend(path, threads)
        return TensorRTBackend(path, threads)
    except BackendError:
        raise
    except Exception as exc:  # each runtime raises its own exception types
        raise BackendError(f"{path}: cannot load it ({str(exc).strip().splitlines()[0][:120]})") from None


# the torch-free runtime of each task, by the `task` an exported file's metadata names (imported when used)
RUNTIMES = {"segment": "defectkd.deploy.runtime.OnnxSegmenter", "classify": "defectkd.deploy.classify.OnnxClassifier",
            "detect": "defectkd.deploy.detect.OnnxDetector"}


def open_runtime(path: str | Path, threads: int | None = None, providers: list[str] | None = None):
    """The task runtime (segmenter, classifier or detector, from the metadata) of an exported file."""
    backend = open_backend(path, threads, providers)
    task = backend.metadata.get("task", "segment")
    if task not in RUNTIMES:
        raise BackendError(f"{path}: task {task!r} in its metadata is not one defectkd runs ({', '.join(RUNTIMES)})")
    module, name = RUNTIMES[task].rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(path, backend=backend)
