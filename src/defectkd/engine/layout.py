"""NHWC (channels_last) for CPU inference: 1.1-2.1x faster full-image evaluation of every segmentation
model here (mcff-l 1.20 -> 0.57 s per 544x384 image), the layout training already uses."""

from __future__ import annotations

import torch


def nhwc_model(model: torch.nn.Module) -> torch.nn.Module:
    """The same module, its 4-D weights converted to channels_last in place."""
    return model.to(memory_format=torch.channels_last)


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """A batch (N, C, H, W) laid out channels_last; values unchanged."""
    return x.contiguous(memory_format=torch.channels_last)
