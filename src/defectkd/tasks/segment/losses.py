"""Task losses for crack segmentation, chosen by name and combined with '+' ("ce+dice").

Cracks cover 1-5 % of the pixels, so every loss here answers class imbalance in its own way:
weighted CE/BCE (crack weight `pos_weight`), Dice and Tversky (overlap-based, imbalance-free),
Focal (down-weights easy background) and the MCFF-L paper's weighted MSE.
Dice, Focal and Tversky come from segmentation_models_pytorch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defectkd.core.errors import ConfigError

SEGMENT_LOSSES = ("ce", "dice", "focal", "tversky", "mcff")


class WeightedCE(nn.Module):
    """Cross-entropy (2+ channels) or BCE (1 channel) with the crack class weighted by `pos_weight`."""

    def __init__(self, pos_weight: float = 1.0) -> None:
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] == 1:
            pw = torch.tensor(self.pos_weight, device=logits.device, dtype=logits.dtype)
            return F.binary_cross_entropy_with_logits(logits[:, 0], target, pos_weight=pw)
        weight = torch.ones(logits.shape[1], device=logits.device, dtype=logits.dtype)
        weight[1:] = self.pos_weight
        return F.cross_entropy(logits, target.long(), weight=weight)


class MCFFWeightedMSE(nn.Module):
    """MCFF-L's loss: MSE between class probabilities and one-hot labels, the crack channel weighted
    (x200 in the paper), plus a term pushing the two class probabilities to sum to one. Under a
    softmax that term is zero by construction; it matters only for per-channel sigmoid outputs."""

    def __init__(self, crack_weight: float = 200.0, sum_weight: float = 1.0) -> None:
        super().__init__()
        self.crack_weight = crack_weight
        self.sum_weight = sum_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] == 1:
            p_crack = torch.sigmoid(logits[:, 0])
            p_bg = 1 - p_crack
        else:
            probs = torch.softmax(logits, dim=1)
            p_bg, p_crack = probs[:, 0], probs[:, 1]
        mse = (p_bg - (1 - target)) ** 2 + self.crack_weight * (p_crack - target) ** 2
        return mse.mean() + self.sum_weight * ((p_bg + p_crack - 1) ** 2).mean()


class _SMPLoss(nn.Module):
    """Adapter: smp losses want (N,C,H,W) logits and (N,H,W) long targets (multiclass) or
    (N,1,H,W) targets (binary); only the crack class is scored for Dice/Tversky."""

    def __init__(self, factory, n_classes: int, **kwargs) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        self.binary = n_classes == 1
        mode = smp.losses.BINARY_MODE if self.binary else smp.losses.MULTICLASS_MODE
        self.loss = factory(mode=mode, **kwargs)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.binary:
            return self.loss(logits, target.unsqueeze(1))
        return self.loss(logits, target.long())


class CombinedLoss(nn.Module):
    """Sum of named losses; `terms` keeps each one for logging."""

    def __init__(self, losses: dict[str, nn.Module]) -> None:
        super().__init__()
        self.losses = nn.ModuleDict(losses)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(loss(logits, target) for loss in self.losses.values())


def build_segment_loss(spec: str, classes: int = 2, pos_weight: float = 10.0) -> CombinedLoss:
    """Parse "ce+dice" style specs into a CombinedLoss."""
    import segmentation_models_pytorch as smp

    names = [n.strip().lower() for n in spec.split("+") if n.strip()]
    unknown = [n for n in names if n not in SEGMENT_LOSSES]
    if not names or unknown:
        raise ConfigError(f"loss: unknown term {unknown[0] if unknown else spec!r}; "
                          f"use names from {', '.join(SEGMENT_LOSSES)} joined by '+'")
    only_crack = None if classes == 1 else [1]
    builders = {
        "ce": lambda: WeightedCE(pos_weight),
        "dice": lambda: _SMPLoss(smp.losses.DiceLoss, classes, classes=only_crack, from_logits=True),
        "focal": lambda: _SMPLoss(smp.losses.FocalLoss, classes, alpha=0.75 if classes == 1 else None, gamma=2.0),
        "tversky": lambda: _SMPLoss(smp.losses.TverskyLoss, classes, classes=only_crack, alpha=0.3, beta=0.7),
        "mcff": lambda: MCFFWeightedMSE(),
    }
    return CombinedLoss({n: builders[n]() for n in names})
