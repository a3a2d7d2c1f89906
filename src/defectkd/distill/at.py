"""Attention transfer (Zagoruyko & Komodakis 2017), as in the original code.

a(F) = l2-normalise over positions of mean_c F^p, flattened; L = mean((a_s - a_t)^2). Channel
counts need not match (the map is averaged over channels). When H, W differ, the larger feature map
is adaptive-average-pooled to the smaller size before the attention map is taken (per axis, so a
taller-but-narrower pair meets at the smaller of each). The usual weight of about 1000 is the
training module's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defectkd.distill.adapters import check_pair, full_precision


def _attention(feat: torch.Tensor, p: float) -> torch.Tensor:
    return F.normalize(feat.pow(p).mean(1).reshape(feat.shape[0], -1), dim=1)


class ATLoss(nn.Module):
    """`loss(student_feat, teacher_feat)`: both (N, C, H, W), any channels; no parameters."""

    def __init__(self, p: float = 2) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f"p must be > 0, got {p}")
        self.p = p

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        check_pair("at", student, teacher)
        teacher = teacher.detach()
        size = (min(student.shape[2], teacher.shape[2]), min(student.shape[3], teacher.shape[3]))
        with full_precision(student):
            s, t = student.float(), teacher.float()
            if s.shape[-2:] != size:
                s = F.adaptive_avg_pool2d(s, size)
            if t.shape[-2:] != size:
                t = F.adaptive_avg_pool2d(t, size)
            return (_attention(s, self.p) - _attention(t, self.p)).pow(2).mean()

    def extra_repr(self) -> str:
        return f"p={self.p}"
