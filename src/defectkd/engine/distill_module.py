"""Lightning wrapper for distillation: a frozen teacher (or its cached soft labels) and a student.

The teacher is kept outside the module's children, so checkpoints hold the student only and load
like any trained model; it stays in eval mode (no gradients, no BatchNorm statistics updates).
Loss = (1 - alpha) * hard-label loss + alpha * sum over student heads of w_h * KD(head),
w_h = 1 for the main head and `aux_weight` for the others, as in hard-label training.
"""

from __future__ import annotations

import torch
from torch import nn

from ..distill import build_loss, kd_from_probabilities, match_size
from .segment_module import SegmentModule


def match_probability_channels(probs: torch.Tensor, student_channels: int) -> torch.Tensor:
    """Cached probabilities in the student's output form (2-class softmax <-> 1-channel sigmoid)."""
    c = probs.shape[1]
    if c == student_channels:
        return probs
    if c == 2 and student_channels == 1:
        return probs[:, 1:2]
    if c == 1 and student_channels == 2:
        return torch.cat([1 - probs, probs], dim=1)
    raise ValueError(f"soft labels have {c} channels, student {student_channels}: no common form")


def head_map(student_heads: list[str], teacher_heads: list[str], teacher_main: str, how: str) -> dict[str, str]:
    """Which teacher head teaches each student head."""
    by_name = all(h in teacher_heads for h in student_heads)
    if how == "by-name" and not by_name:
        missing = [h for h in student_heads if h not in teacher_heads]
        raise ValueError(f"kd_heads=by-name: the teacher has no head {missing[0]!r} (it has {teacher_heads})")
    if how == "by-name" or (how == "auto" and by_name):
        return {h: h for h in student_heads}
    return {h: teacher_main for h in student_heads}


class DistillModule(SegmentModule):
    """Student training with a distillation term; validation and optimisers as in SegmentModule."""

    def __init__(self, model_name: str, model_kwargs: dict, config: dict, teacher: nn.Module | None = None,
                 teacher_heads: list[str] | None = None, teacher_main: str | None = None,
                 pretrained: str | None = None) -> None:
        super().__init__(model_name, model_kwargs, config, pretrained=pretrained)
        # Checkpoints record what rebuilds the student, never the teacher object.
        self.save_hyperparameters(ignore=["pretrained", "teacher", "teacher_heads", "teacher_main"])
        if teacher is not None:
            teacher.eval().requires_grad_(False)
        object.__setattr__(self, "teacher", teacher)  # not a child: not trained, saved or moved by Lightning
        self.kd_pos_weight = float(config.get("kd_pos_weight", 1.0))
        self.kd = build_loss(config["method"], T=config["T"], pos_weight=self.kd_pos_weight)
        self.T = float(config["T"])
        self.alpha = float(config["alpha"])
        student_heads = list(self.model.forward_heads(torch.zeros(1, 3, 32, 32)).keys())
        t_heads = teacher_heads or [getattr(teacher, "main_head", "out")]
        self.head_map = head_map(student_heads, t_heads, teacher_main or t_heads[0], config["kd_heads"])

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device)
            if self.cfg.get("channels_last"):
                self.teacher.to(memory_format=torch.channels_last)
            self.teacher.eval()

    def _teacher_targets(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            self.teacher.eval()
            return {k: v.float() for k, v in self.teacher.forward_heads(x).items()}

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch[0], batch[1]
        x = self._to_memory_format(x)
        heads = self.model.forward_heads(x)
        main = self.model.main_head
        weights = {h: 1.0 if h == main else self.cfg["aux_weight"] for h in heads}
        labelled = batch[4] if len(batch) > 4 else None  # offline with unlabelled images: KD term only
        hard = x.new_zeros((), dtype=torch.float32)
        if labelled is None or labelled.all():
            hard = sum(w * self.criterion(heads[h].float(), y) for h, w in weights.items() if w > 0)
        elif labelled.any():
            hard = sum(w * self.criterion(heads[h][labelled].float(), y[labelled])
                       for h, w in weights.items() if w > 0)
        kd = x.new_zeros((), dtype=torch.float32)
        if len(batch) > 3:  # offline: cached probabilities at T
            soft = batch[3]
            for h, w in weights.items():
                if w > 0:
                    s = heads[h].float()
                    q = match_size(match_probability_channels(soft[self.head_map[h]], s.shape[1]), s)
                    kd = kd + w * kd_from_probabilities(s, q, self.T, self.kd_pos_weight)
        else:
            teacher = self._teacher_targets(x)
            for h, w in weights.items():
                if w > 0:
                    kd = kd + w * self.kd(heads[h].float(), teacher[self.head_map[h]])
        loss = (1 - self.alpha) * hard + self.alpha * kd
        n = x.shape[0]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        self.log("train/hard", hard, on_step=False, on_epoch=True, batch_size=n)
        self.log("train/kd", kd, on_step=False, on_epoch=True, batch_size=n)
        return loss


__all__ = ["DistillModule", "head_map", "match_probability_channels"]
