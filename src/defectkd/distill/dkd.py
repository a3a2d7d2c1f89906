"""Decoupled KD (Zhao et al. CVPR 2022), as in the original code.

With the target class's probability split off, b = [p_gt, 1 - p_gt] and the non-target classes
renormalised (softmax of z / T - 1000 * onehot):
    TCKD = T^2 * KL(b_t || b_s),  NCKD = T^2 * KL(p~_t || p~_s),
    L = min(epoch / warmup, 1) * (alpha * TCKD + beta * NCKD).
Classification logits (N, C) with target (N,): a mean over samples. Dense logits (N, C, H, W) with
target (N, H, W) or (N, 1, H, W): every pixel is a sample, and the sums are divided by N * H * W,
so the term does not grow with resolution (as KDLoss). A 1-channel (sigmoid) map is read as the
2-class logits [0, z]. With 2 classes there is one non-target class, so NCKD is 0 and DKD reduces
to alpha * the binary KD term. The CE part of DKD is the training module's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defectkd.distill.adapters import check_pair, full_precision, shape_of
from defectkd.distill.kd import match_channels, match_size


class DKDLoss(nn.Module):
    """`loss(student_logits, teacher_logits, target)`; target is required.

    Warm-up: `set_epoch(e)` sets the factor min(e / warmup, 1). The original code counts epochs from
    1 (factor 1/warmup in the first epoch, full weight from epoch `warmup` on), so a loop with
    0-based epochs (Lightning's current_epoch) should call `set_epoch(current_epoch + 1)` at every
    epoch start. Before any call the epoch is 0, i.e. factor 0 when warmup > 0; warmup=0 means full
    weight from the start. A float epoch (e.g. epoch + step / steps) gives a per-step ramp."""

    def __init__(self, T: float = 4.0, alpha: float = 1.0, beta: float = 8.0, warmup: float = 20) -> None:
        super().__init__()
        if T <= 0:
            raise ValueError(f"temperature T must be > 0, got {T}")
        if alpha < 0 or beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got alpha={alpha}, beta={beta}")
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0 epochs, got {warmup}")
        self.T = float(T)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.warmup = warmup
        self.epoch: float = 0

    def set_epoch(self, epoch: float) -> None:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = epoch

    @property
    def warmup_factor(self) -> float:
        return 1.0 if self.warmup == 0 else min(self.epoch / self.warmup, 1.0)

    def _flat(self, student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor):
        """(M, C) student, (M, C) teacher, (M,) long target: one row per sample or pixel."""
        c = student.shape[1]
        if student.dim() == 4:
            if target.dim() == 4 and target.shape[1] == 1:
                target = target[:, 0]
            if target.shape != (student.shape[0], *student.shape[2:]):
                raise ValueError(f"dkd: target {shape_of(target)} does not fit student {shape_of(student)}, "
                                 f"expected (N, H, W) = {(student.shape[0], *student.shape[2:])}")
            student = student.permute(0, 2, 3, 1).reshape(-1, c)
            teacher = teacher.permute(0, 2, 3, 1).reshape(-1, c)
        elif target.shape != (student.shape[0],):
            raise ValueError(f"dkd: target {shape_of(target)} does not fit student {shape_of(student)}, "
                             f"expected (N,) = ({student.shape[0]},)")
        target = target.reshape(-1)
        if target.is_floating_point():
            if not torch.equal(target, target.round()):
                raise ValueError("dkd: a float target must hold class indices (e.g. a {0, 1} mask)")
            target = target.long()
        if int(target.min()) < 0 or int(target.max()) >= c:
            raise ValueError(f"dkd: target classes must lie in [0, {c - 1}], got "
                             f"[{int(target.min())}, {int(target.max())}]")
        return student, teacher, target

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        if target is None:
            raise ValueError("dkd needs the ground-truth target: call loss(student, teacher, target)")
        check_pair("dkd", student, teacher, dims=(2, 4))
        teacher = teacher.detach()
        if student.shape[1] == 1:
            student = match_channels(student, 2)
        if teacher.shape[1] == 1:
            teacher = match_channels(teacher, 2)
        if student.shape[1] != teacher.shape[1]:
            raise ValueError(f"dkd: student {shape_of(student)} has {student.shape[1]} classes, teacher "
                             f"{shape_of(teacher)} {teacher.shape[1]}; expected the same classes")
        teacher = match_size(teacher, student)
        factor = self.warmup_factor
        with full_precision(student):
            s, t, y = self._flat(student.float(), teacher.float(), target.detach())
            gt = F.one_hot(y, s.shape[1]).bool()
            log_p_s, log_p_t = F.log_softmax(s / self.T, dim=1), F.log_softmax(t / self.T, dim=1)
            # binary [target, rest] in log space: log(1 - p_gt) as a logsumexp over the other classes
            log_b_s = torch.stack([log_p_s[gt], log_p_s.masked_fill(gt, float("-inf")).logsumexp(1)], dim=1)
            log_b_t = torch.stack([log_p_t[gt], log_p_t.masked_fill(gt, float("-inf")).logsumexp(1)], dim=1)
            tckd = F.kl_div(log_b_s, log_b_t.exp(), reduction="sum")
            nckd = F.kl_div(F.log_softmax(s / self.T - 1000.0 * gt, dim=1),
                            F.softmax(t / self.T - 1000.0 * gt, dim=1), reduction="sum")
            per_row = (self.alpha * tckd + self.beta * nckd) * (self.T * self.T) / s.shape[0]
            return factor * per_row

    def extra_repr(self) -> str:
        return f"T={self.T}, alpha={self.alpha}, beta={self.beta}, warmup={self.warmup}, epoch={self.epoch}"
