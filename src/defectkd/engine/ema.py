"""An exponential moving average of the weights (EMA), as ultralytics and timm keep by default: Lightning's
WeightAveraging holds the averaged copy, validates it (so best.pt is chosen on it), saves it as the checkpoint's
state_dict (so the deploy file and every export carry it; the raw weights stay under "current_model_state" for a
resume) and puts it in the model when training ends.

The decay is warmed up as in timm (min(decay, (1 + n) / (10 + n)) after n updates): with a fixed 0.99 the average
would still be mostly the random initial weights after the first epoch of a small data set, and the collapse guard
would read its near-zero validation metric as a dead student.
"""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch import Tensor


def warmed_decay(decay: float, updates: int) -> float:
    """The decay used for update number `updates` (1 = the first after the copy of the initial weights)."""
    return min(decay, (1 + updates) / (10 + updates))


class EMA(WeightAveraging):
    """EMA of every parameter and buffer of the training module, updated after each optimiser step."""

    def __init__(self, decay: float) -> None:
        self.decay = decay

        def average(averaged: list[Tensor], current: list[Tensor], updates: Tensor) -> None:
            """One group of tensors of one device and dtype, in place; integer buffers (BatchNorm's batch count)
            are copied."""
            if averaged[0].is_floating_point():
                torch._foreach_lerp_(averaged, current, 1.0 - warmed_decay(decay, int(updates)))
            else:
                torch._foreach_copy_(averaged, current)

        super().__init__(use_buffers=True, multi_avg_fn=average)
