"""FitNets hint loss (Romero et al. 2015): L = mean((r(F_s) - F_t)^2).

r = 1x1 conv + BatchNorm + ReLU regressor when the channel counts differ (identity otherwise), and
the student map is resized to the teacher's H, W after it (docs/methods.md). Mean
reduction; the usual weight of about 100 is the training module's, not applied here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defectkd.distill.adapters import ChannelAdapter, check_pair, full_precision, match_spatial


class FitNetLoss(nn.Module):
    """`loss(student_feat, teacher_feat)`: both (N, C, H, W). Trainable when channels differ."""

    def __init__(self, student_channels: int | None = None, teacher_channels: int | None = None) -> None:
        super().__init__()
        self.regressor = ChannelAdapter(student_channels, teacher_channels, bn_relu=True)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        check_pair("fitnet", student, teacher)
        teacher = teacher.detach()
        s = match_spatial(self.regressor.adapt("fitnet", student, teacher), teacher)
        with full_precision(s):
            return F.mse_loss(s.float(), teacher.float())
