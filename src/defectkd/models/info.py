"""Model facts: parameters, MACs (torch's FlopCounterMode) and measured CPU latency / FPS, in PyTorch eager
and in ONNX Runtime (the deployment runtime)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from defectkd.models import build_deployed, model_spec
from defectkd.models.rep import BRANCH_KEYS


def count_parameters(model: torch.nn.Module) -> int:
    """Parameters of the model as deployed: a -rep model's training branches (folded away on load) not counted."""
    return sum(p.numel() for n, p in model.named_parameters() if not any(b in f".{n}" for b in BRANCH_KEYS))


@torch.no_grad()
def count_macs(model: torch.nn.Module, imgsz: int) -> int:
    """Multiply-accumulates of one forward pass at imgsz x imgsz (FLOPs / 2)."""
    x = torch.rand(1, 3, imgsz, imgsz)
    with FlopCounterMode(display=False) as counter:
        model.eval()(x)
    return counter.get_total_flops() // 2


@torch.no_grad()
def count_macs_meta(model: torch.nn.Module, imgsz: int) -> int:
    """As `count_macs`, computing nothing: the model moves to the meta device (shapes, no data), so even the
    teachers take a fraction of a second. The model's weights are gone afterwards: pass a throwaway model."""
    model = model.to("meta").eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, imgsz, imgsz, device="meta"))
    return counter.get_total_flops() // 2


def export_onnx_model(model: torch.nn.Module, path: str | Path, imgsz: int, opset: int = 17) -> Path:
    """A static (1, 3, imgsz, imgsz) ONNX export of `model`'s forward (the deployed head), as `defectkd export`
    writes it (TorchScript-based exporter), for speed measurements; no metadata, no parity check."""
    from defectkd.models.onnx import write_onnx

    return write_onnx(model, torch.zeros(1, 3, imgsz, imgsz), path, opset)


def onnx_session(path: str | Path, threads: int | None):
    """An ONNX Runtime CPU session with `threads` intra-op threads, as `OnnxSegmenter` opens it."""
    from defectkd.deploy.backends import ort_session

    return ort_session(path, threads)


def measure_onnx_latency(model: torch.nn.Module, imgsz: int, repeats: int = 10, warmup: int = 2,
                         threads: int | None = None) -> list[float]:
    """Seconds per ONNX Runtime FP32 run (batch 1) of `model` exported to a temporary file, over `repeats` runs."""
    threads = threads or torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        return onnx_file_latency(export_onnx_model(model, Path(tmp) / "model.onnx", imgsz), imgsz, repeats, warmup,
                                 threads)


def onnx_file_latency(path: str | Path, imgsz: int, repeats: int = 10, warmup: int = 2,
                      threads: int | None = None) -> list[float]:
    """Seconds per ONNX Runtime run (batch 1, one random imgsz x imgsz image) of the ONNX file at PATH."""
    import numpy as np

    session = onnx_session(path, threads)
    x = {session.get_inputs()[0].name: np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)}
    for _ in range(warmup):
        session.run(None, x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, x)
        times.append(time.perf_counter() - t0)
    return times


@torch.no_grad()
def measure_latency(model: torch.nn.Module, imgsz: int, repeats: int = 10, warmup: int = 2,
                    threads: int | None = None) -> list[float]:
    """Seconds per forward pass (batch 1, fp32, eval mode) over `repeats` timed runs."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        model.eval()
        x = torch.rand(1, 3, imgsz, imgsz)
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
        return times
    finally:
        torch.set_num_threads(previous)


def model_info(name: str, imgsz: int = 448, repeats: int = 10, threads: int | None = None,
               speed: bool = True) -> dict:
    """Parameters, GMACs and (optionally) median CPU latency / FPS of a registered model, in PyTorch eager and
    (when onnxruntime is installed) in ONNX Runtime with the same thread count."""
    spec = model_spec(name)
    model = build_deployed(name)  # the deployed graph: training-only branches folded
    macs = count_macs(model, imgsz)
    info = {
        "model": name, "task": spec.task, "role": spec.role, "imgsz": imgsz,
        "parameters": count_parameters(model),
        "gmacs": round(macs / 1e9, 3),
        "gflops": round(2 * macs / 1e9, 3),
        "outputs": f"{getattr(model, 'classes', '?')} channel logits",
    }
    if speed:
        times = measure_latency(model, imgsz, repeats=repeats, threads=threads)
        median = statistics.median(times)
        info.update({"threads": threads or torch.get_num_threads(), "latency_ms_median": round(median * 1e3, 2),
                     "fps": round(1.0 / median, 2), "repeats": repeats, "runtime": "pytorch-eager-fp32"})
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return info
        ort_median = statistics.median(measure_onnx_latency(model, imgsz, repeats=repeats, threads=info["threads"]))
        info.update({"ort_latency_ms_median": round(ort_median * 1e3, 2), "ort_fps": round(1.0 / ort_median, 2),
                     "ort_runtime": "onnxruntime-fp32"})
    return info
