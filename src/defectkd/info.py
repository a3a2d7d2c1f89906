"""Model facts: parameters, MACs (torch's FlopCounterMode) and measured CPU latency / FPS."""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .models import build_model, model_spec


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: torch.nn.Module, imgsz: int) -> int:
    """Multiply-accumulates of one forward pass at imgsz x imgsz (FLOPs / 2)."""
    x = torch.rand(1, 3, imgsz, imgsz)
    with FlopCounterMode(display=False) as counter:
        model.eval()(x)
    return counter.get_total_flops() // 2


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
    """Parameters, GMACs and (optionally) median CPU latency / FPS of a registered model."""
    spec = model_spec(name)
    model = build_model(name)
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
    return info
