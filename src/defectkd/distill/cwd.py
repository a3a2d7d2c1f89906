"""Channel-wise distillation (Shu et al. ICCV 2021) for dense maps.

For each channel c, phi(x_c) = softmax over the H*W positions of x_c / tau;
L = tau^2 / (N * C) * sum_{n,c} KL(phi(T_nc) || phi(S_nc)) (docs/methods.md). A mean over
samples and channels; a distribution over positions, so a map tiled spatially keeps its value.
The student is resized to the teacher's H, W; a 1x1 adapter maps channels when both counts are
given and differ. The original weight (3 on segmentation logits) is the training module's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defectkd.distill.adapters import ChannelAdapter, check_pair, full_precision, match_spatial


class CWDLoss(nn.Module):
    """`loss(student, teacher)`: (N, C, H, W) logits or features; 2-D input is refused (no positions)."""

    def __init__(self, T: float = 4.0, student_channels: int | None = None,
                 teacher_channels: int | None = None) -> None:
        super().__init__()
        if T <= 0:
            raise ValueError(f"temperature T must be > 0, got {T}")
        self.T = float(T)
        self.adapter = ChannelAdapter(student_channels, teacher_channels)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        check_pair("cwd", student, teacher)
        teacher = teacher.detach()
        s = match_spatial(self.adapter.adapt("cwd", student, teacher), teacher)
        n, c = teacher.shape[:2]
        with full_precision(s):
            log_p_s = F.log_softmax(s.float().reshape(n * c, -1) / self.T, dim=1)
            log_p_t = F.log_softmax(teacher.float().reshape(n * c, -1) / self.T, dim=1)
            kl = F.kl_div(log_p_s, log_p_t, reduction="sum", log_target=True)
            return kl * (self.T * self.T) / (n * c)

    def extra_repr(self) -> str:
        return f"T={self.T}"
