"""Common behaviour of every segmentation network: input scaling, padding, named heads.

Every model takes RGB float images in [0, 1], shape (N, 3, H, W) with any H, W, and scales them
itself. That keeps the data pipeline model-agnostic and lets a teacher and a student with different
input conventions ([-1, 1] for MCFF, ImageNet statistics for smp encoders) share one batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SYMMETRIC_MEAN = (0.5, 0.5, 0.5)  # maps [0, 1] to [-1, 1], the MCFF-L input convention
SYMMETRIC_STD = (0.5, 0.5, 0.5)


class SegmentationNet(nn.Module):
    """Base class: subclasses implement `_heads(x)` on a normalised, stride-aligned input.

    `forward` returns only the main logits (what is exported and deployed);
    `forward_heads` returns every head by name for training (deep supervision, multi-head KD).
    """

    main_head: str = "out"
    feature_layer: str | None = None  # default tap for feature distillation (a named_modules path)
    autocast_ok: bool = True  # precision=auto may train it under bf16/fp16 autocast

    def __init__(self, classes: int, stride: int, mean=SYMMETRIC_MEAN, std=SYMMETRIC_STD) -> None:
        super().__init__()
        if classes < 1:
            raise ValueError(f"classes must be >= 1, got {classes}")
        self.classes = classes
        self.stride = stride
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def _heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward_heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """All heads' logits, cropped back to the input size."""
        h, w = x.shape[-2:]
        x = (x - self.mean) / self.std
        pad_h = (self.stride - h % self.stride) % self.stride
        pad_w = (self.stride - w % self.stride) % self.stride
        # An ONNX trace records the branch taken: always pad and crop there, so a --dynamic graph traced
        # at a stride-aligned size still pads other sizes (the pad sizes themselves are traced).
        exporting = torch.onnx.is_in_onnx_export()
        if pad_h or pad_w or exporting:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        heads = self._heads(x)
        if pad_h or pad_w or exporting:
            heads = {k: v[..., :h, :w] for k, v in heads.items()}
        return heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_heads(x)[self.main_head]


def crack_probability(logits: torch.Tensor) -> torch.Tensor:
    """Probability of the crack class, (N, H, W): sigmoid for 1 channel, softmax channel 1 otherwise."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=1)[:, 1]
