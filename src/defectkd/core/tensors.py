"""The one conversion from an image array to a model input, shared by training, val, predict, robustness and
export parity, so that a model scores the same image the same way in each of them."""

from __future__ import annotations

import numpy as np
import torch


def image_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 in [0, 1], a contiguous copy the caller may modify."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255)
