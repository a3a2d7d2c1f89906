"""A dense model (segmenter or classifier) -> ONNX: written, checked by onnx.checker, run once in ONNX Runtime
against PyTorch. The graph takes RGB float images in [0, 1] (N, 3, H, W); input scaling and stride padding are
inside, so the edge side does no model-specific preprocessing. Facts travel in the file's metadata."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from defectkd.core.errors import ExportError
from defectkd.core.tensors import image_tensor

PARITY_TOLERANCE = 1e-4


def write_onnx(module: torch.nn.Module, example: torch.Tensor, out: str | Path, opset: int,
               outputs: tuple[str, ...] = ("logits",), dynamic_axes: dict | None = None) -> Path:
    """The one call of the TorchScript-based exporter (a few seconds; static or dynamic H, W both exact, measured):
    input `images`, the given output names."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), str(out), input_names=["images"], output_names=list(outputs),
                          opset_version=opset, dynamic_axes=dynamic_axes, dynamo=False)
    return Path(out)


def save_checked(proto, meta: dict, out: Path) -> None:
    """Write META into the graph's metadata_props, run onnx.checker (one-line ExportError) and save to OUT."""
    import onnx

    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else (
            json.dumps(value) if isinstance(value, list | dict) else str(value))
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{out}: onnx.checker rejected the model ({str(exc).splitlines()[0][:120]})") from None
    onnx.save(proto, str(out))


def export_dense(model: torch.nn.Module, hp: dict, out: Path, imgsz: int, dynamic: bool, opset: int,
                 parity: tuple[np.ndarray, str], meta: dict | None = None, spatial_output: bool = True) -> dict:
    """Write MODEL (logits NCHW, or NC when not `spatial_output`) to OUT and check it on `parity` (RGB uint8,
    name) to PARITY_TOLERANCE. `meta` adds to / replaces the default metadata (None values are dropped)."""
    import onnx

    from defectkd.deploy.backends import ort_session

    model = model.float().eval()
    example = torch.zeros(1, 3, imgsz, imgsz)
    axes = {"images": {0: "batch", 2: "height", 3: "width"},
            "logits": {0: "batch", 2: "height", 3: "width"} if spatial_output else {0: "batch"}}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_onnx(model, example, out, opset, dynamic_axes=axes if dynamic else None)
    proto = onnx.load(str(out))
    threshold = hp.get("config", {}).get("threshold", 0.5)
    full = {"model": hp["model_name"], "classes": model.classes, "threshold": threshold,
            "imgsz": "dynamic" if dynamic else imgsz, "input": "RGB float [0,1] NCHW", "output": "logits NCHW",
            "producer": "defectkd", **(meta or {})}
    save_checked(proto, {k: v for k, v in full.items() if v is not None}, out)

    rgb, source = parity
    x = image_tensor(rgb)[None]
    with torch.no_grad():
        reference = model(x).numpy()
    session = ort_session(out)
    result = session.run(None, {"images": x.numpy()})[0]
    diff = float(np.abs(result - reference).max())
    summary = {"file": str(out), "model": hp["model_name"], "imgsz": imgsz, "dynamic": dynamic, "opset": opset,
               "size_mb": round(out.stat().st_size / 2**20, 2), "parity_image": source, "max_abs_diff": diff,
               "tolerance": PARITY_TOLERANCE}
    if not diff < PARITY_TOLERANCE:
        raise ExportError(f"{out}: ONNX Runtime logits differ from PyTorch by {diff:.2e} "
                          f"(limit {PARITY_TOLERANCE:g}) on {source}")
    return summary
