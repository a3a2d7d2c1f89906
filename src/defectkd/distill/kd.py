"""Hinton knowledge distillation for classification logits and dense (per-pixel) logits.

L = T^2 * KL(p_t || p_s), p = softmax(z / T) over channels, averaged over the batch and, for dense
maps, over pixels too, so the term does not grow with resolution (docs/methods.md).
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


def crack_probability_at_t1(teacher_probs: torch.Tensor, T: float) -> torch.Tensor:
    """The teacher's crack probability at T = 1, (N, H, W), recovered from its probabilities at T
    (exact for 2 classes and for sigmoid outputs: the logit difference is T times the softened one)."""
    q = teacher_probs.float().clamp(_EPS, 1 - _EPS)
    crack = q[:, -1] if q.shape[1] <= 2 else 1 - q[:, 0]  # 1 channel: it; 2: channel 1; more: not background
    return torch.sigmoid(T * (crack.log() - (1 - crack).log()))


def kd_from_probabilities(student_logits: torch.Tensor, teacher_probs: torch.Tensor, T: float,
                          pos_weight: float = 1.0) -> torch.Tensor:
    """T^2 * mean over samples (and pixels) of KL(teacher_probs || softmax(student / T)).

    The entry point for offline distillation, where the cache already holds softened probabilities.
    `pos_weight` > 1 (dense maps only) weights each pixel by 1 + (pos_weight - 1) * p_crack, the
    teacher's crack probability at T = 1, and takes the weighted mean: the per-pixel KL otherwise
    spends almost all of its weight on background (about 96 % of crack-image pixels), as an
    unweighted cross-entropy would.
    """
    z = student_logits.float() / T
    q = teacher_probs.float()
    if z.shape[1] == 1:  # binary KL per pixel: q log(q/p) + (1-q) log((1-q)/(1-p))
        log_p, log_1mp = F.logsigmoid(z), F.logsigmoid(-z)
        qc = q.clamp(_EPS, 1 - _EPS)
        kl = qc * (qc.log() - log_p) + (1 - qc) * ((1 - qc).log() - log_1mp)
        per_position = kl[:, 0]
    else:
        log_p = F.log_softmax(z, dim=1)
        per_position = (torch.xlogy(q, q) - q * log_p).sum(dim=1)  # xlogy: 0 log 0 = 0
    if pos_weight != 1.0 and per_position.dim() == 3:
        w = 1 + (pos_weight - 1) * crack_probability_at_t1(q, T)
        return (w * per_position).sum() / w.sum() * T * T
    return per_position.mean() * T * T


class KDLoss(nn.Module):
    """Hinton KD: `loss(student, teacher, target=None)` on logits (N,C) or (N,C,H,W).
    `pos_weight`: crack-weighted pixel mean for dense maps (see `kd_from_probabilities`).

    Teacher logits with a different channel form (2-class vs sigmoid) or size are converted to the
    student's (see `match_channels`, `match_size`)."""

    def __init__(self, T: float = 4.0, pos_weight: float = 1.0) -> None:
        super().__init__()
        if T <= 0:
            raise ValueError(f"temperature T must be > 0, got {T}")
        if pos_weight <= 0:
            raise ValueError(f"pos_weight must be > 0, got {pos_weight}")
        self.T = float(T)
        self.pos_weight = float(pos_weight)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        teacher = match_size(match_channels(teacher.detach(), student.shape[1]), student)
        return kd_from_probabilities(student, soften(teacher, self.T), self.T, self.pos_weight)

    def extra_repr(self) -> str:
        return f"T={self.T}, pos_weight={self.pos_weight}"
