"""Accelerator and precision choice: bf16 autocast where the CPU has AMX/AVX512-BF16 (4x faster
training of MCFF-L on this project's 2-core machine, measured in docs/benchmarks.md)."""

from __future__ import annotations

import torch


def pick_accelerator(device: str) -> str:
    if device == "gpu" and not torch.cuda.is_available():
        from defectkd.core.errors import ConfigError

        raise ConfigError("device: 'gpu' requested but no CUDA GPU is available (use --device cpu or auto)")
    if device == "gpu" or (device == "auto" and torch.cuda.is_available()):
        return "gpu"
    return "cpu"


def pick_precision(precision: str, accelerator: str, autocast_ok: bool = True) -> str:
    """`auto`: mixed precision where the hardware has it, unless the model says it trains badly so."""
    if precision != "auto":
        return precision
    if not autocast_ok:
        return "32"
    if accelerator == "gpu":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    cpu_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    cpu_amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return "bf16-mixed" if (cpu_bf16 or cpu_amx) else "32"
