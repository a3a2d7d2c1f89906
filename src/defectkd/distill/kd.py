"""Hinton knowledge distillation for classification logits and dense (per-pixel) logits.

L = T^2 * KL(p_t || p_s), p = softmax(z / T) over channels, averaged over the batch and, for dense
maps, over pixels too, so the term does not grow with resolution (REFERENCES.md section 2).
A 1-channel (sigmoid) student uses the binary KL per pixel. The config-level weight (alpha) is
applied by the training module, not here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_EPS = 1e-7


def match_channels(teacher_logits: torch.Tensor, student_channels: int) -> torch.Tensor:
    """Express a teacher's logits in the student's output form.

    2-class softmax -> 1-channel sigmoid: z1 - z0 (sigmoid(z1 - z0) = softmax(z)[1], at any T).
    1-channel sigmoid -> 2-class softmax: [0, z].
    """
    c = teacher_logits.shape[1]
    if c == student_channels:
        return teacher_logits
    if c == 2 and student_channels == 1:
        return teacher_logits[:, 1:2] - teacher_logits[:, 0:1]
    if c == 1 and student_channels == 2:
        return torch.cat([torch.zeros_like(teacher_logits), teacher_logits], dim=1)
    raise ValueError(f"teacher has {c} output channels, student {student_channels}: no common form")


def match_size(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Resize a dense teacher map (logits or probabilities) to the student's H, W (bilinear)."""
    if t.dim() == 4 and t.shape[-2:] != like.shape[-2:]:
        return F.interpolate(t, size=like.shape[-2:], mode="bilinear", align_corners=False)
    return t


def soften(teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """Temperature-softened teacher probabilities: softmax over channels, or sigmoid for 1 channel."""
    z = teacher_logits.float() / T
    return torch.sigmoid(z) if z.shape[1] == 1 else torch.softmax(z, dim=1)


def kd_from_probabilities(student_logits: torch.Tensor, teacher_probs: torch.Tensor, T: float) -> torch.Tensor:
    """T^2 * mean over samples (and pixels) of KL(teacher_probs || softmax(student / T)).

    The entry point for offline distillation, where the cache already holds softened probabilities.
    """
    z = student_logits.float() / T
    q = teacher_probs.float()
    if z.shape[1] == 1:  # binary KL per pixel: q log(q/p) + (1-q) log((1-q)/(1-p))
        log_p, log_1mp = F.logsigmoid(z), F.logsigmoid(-z)
        q = q.clamp(_EPS, 1 - _EPS)
        kl = q * (q.log() - log_p) + (1 - q) * ((1 - q).log() - log_1mp)
        per_position = kl[:, 0]
    else:
        log_p = F.log_softmax(z, dim=1)
        per_position = (torch.xlogy(q, q) - q * log_p).sum(dim=1)  # xlogy: 0 log 0 = 0
    return per_position.mean() * T * T


class KDLoss(nn.Module):
    """Hinton KD: `loss(student, teacher, target=None)` on logits (N,C) or (N,C,H,W).

    Teacher logits with a different channel form (2-class vs sigmoid) or size are converted to the
    student's (see `match_channels`, `match_size`)."""

    def __init__(self, T: float = 4.0) -> None:
        super().__init__()
        if T <= 0:
            raise ValueError(f"temperature T must be > 0, got {T}")
        self.T = float(T)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        teacher = match_size(match_channels(teacher.detach(), student.shape[1]), student)
        return kd_from_probabilities(student, soften(teacher, self.T), self.T)

    def extra_repr(self) -> str:
        return f"T={self.T}"
