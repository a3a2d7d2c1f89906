"""Lightning wrapper for distillation: a frozen teacher (or its cached soft labels), a student and a
list of weighted distillation terms.

The teacher is kept outside the module's children, so checkpoints hold the student only and load
like any trained model; it stays in eval mode (no gradients, no BatchNorm statistics updates).
The losses are children: their adapters (1x1 convs, MGD's generator) train with the student and are
left out of the deploy file, which keeps `model.*` only.

Loss = hard_weight * hard-label loss + sum over terms of weight * term, where a logits term sums
w_h * term(head) over the student's heads (w_h = 1 for the main head, `aux_weight` for the others,
as in hard-label training) and a features term sums over its (student layer, teacher layer) pairs.
"""

from __future__ import annotations

import torch
from torch import nn

from defectkd.distill import build_loss, kd_from_probabilities, match_channels, match_size
from defectkd.distill.kd import crack_probability_at_t1
from defectkd.distill.terms import DistillTerms, default_feature_pair, try_loss
from defectkd.tasks.segment.module import SegmentModule


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


class DistillModule(DistillTerms, SegmentModule):
    """Student training with distillation terms; validation and optimisers as in SegmentModule."""

    def __init__(self, model_name: str, model_kwargs: dict, config: dict, teacher: nn.Module | None = None,
                 teacher_heads: list[str] | None = None, teacher_main: str | None = None,
                 pretrained: str | None = None) -> None:
        super().__init__(model_name, model_kwargs, config, pretrained=pretrained)
        # Checkpoints record what rebuilds the student, never the teacher object.
        self.save_hyperparameters(ignore=["pretrained", "teacher", "teacher_heads", "teacher_main"])
        self.setup_terms(config, teacher)
        self.T = float(config["T"])
        self.kd_pos_weight = float(config.get("kd_pos_weight", 1.0))
        self.pseudo_labels = bool(config.get("pseudo_labels", False))
        student_heads, s_feats, t_feats = self._probe()
        t_heads = teacher_heads or [getattr(teacher, "main_head", "out")]
        self.head_map = head_map(student_heads, t_heads, teacher_main or t_heads[0], config["kd_heads"])
        self.distill_losses = nn.ModuleList(self._build_losses(s_feats, t_feats))
        self._probe_heads = None

    def _probe(self) -> tuple[list[str], dict, dict]:
        """Head names and feature maps of a 64-px probe (eval mode: no BatchNorm statistics touched)."""
        x = torch.zeros(1, 3, 64, 64)
        was = self.model.training
        self.model.eval()
        with torch.no_grad():
            s_heads = self.model.forward_heads(x)
            s_feats = dict(self.student_taps.features) if self.student_taps else {}
            t_heads = self.teacher.forward_heads(x) if self.teacher is not None else None
        self.model.train(was)
        main = self.model.main_head
        t_main = getattr(self.teacher, "main_head", "out")
        self._probe_heads = (s_heads[main].float(), t_heads[t_main].float()) if t_heads and t_main in t_heads else None
        return list(s_heads), s_feats, dict(self.teacher_taps.features) if self.teacher_taps else {}

    def _build_losses(self, s_feats: dict, t_feats: dict) -> list[nn.Module]:
        """One loss per logits term; one per (term, feature pair) so adapters fit each pair's shapes.
        Each feature loss is tried on the probe's maps: a shape no adapter aligns fails here, not mid-run."""
        out: list[nn.Module] = []
        for term, pairs in zip(self.terms, self.pairs, strict=True):
            params = dict(term["params"])
            if term["on"] == "logits":
                out.append(self._checked_logits_loss(term["method"], params))
                continue
            out.append(self.feature_losses(term, pairs, s_feats, t_feats))
        return out

    def _checked_logits_loss(self, method: str, params: dict) -> nn.Module:
        """A logits loss tried once on the probe's main heads (online), so a form no method accepts fails now."""
        loss = build_loss(method, **params)
        if self._probe_heads is not None:
            s, t = self._probe_heads
            try_loss(loss, s, self._teacher_logits(t, s), torch.zeros(s.shape[0], *s.shape[2:]),
                     f"{method} on logits: student {tuple(s.shape)} and teacher {tuple(t.shape)}")
        return loss

    def _teacher_targets(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        with torch.no_grad():
            self.teacher.eval()
            heads = {k: v.float() for k, v in self.teacher.forward_heads(x).items()}
            feats = dict(self.teacher_taps.features) if self.teacher_taps else {}
        return heads, feats

    def _hard_loss(self, heads: dict, y: torch.Tensor, weights: dict, labelled, soft: dict | None = None
                   ) -> torch.Tensor:
        """Hard-label loss on labelled samples. Offline unlabelled samples carry only the KD term, or, with
        `pseudo_labels`, also the task loss against the teacher's mask (its crack probability at T = 1 > 0.5), so
        they get the task loss's answers to class imbalance (crack weight, Dice) that plain KD lacks."""
        if labelled is not None and not labelled.all() and self.pseudo_labels and soft is not None:
            y = self._with_teacher_masks(y, labelled, soft)
            labelled = None
        if labelled is not None and not labelled.any():
            return y.new_zeros((), dtype=torch.float32)
        keep = slice(None) if labelled is None or labelled.all() else labelled
        return sum(w * self.criterion(heads[h][keep].float(), y[keep]) for h, w in weights.items() if w > 0)

    def _with_teacher_masks(self, y: torch.Tensor, labelled: torch.Tensor, soft: dict) -> torch.Tensor:
        main = self.head_map[self.model.main_head]
        q = match_size(soft[main].float(), y)  # the cache's probabilities at the mask's H x W
        teacher_mask = (crack_probability_at_t1(q, self.T) > 0.5).to(y.dtype)
        return torch.where(labelled.view(-1, *([1] * (y.dim() - 1))), y, teacher_mask)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch[0], batch[1]
        extras = batch[3] if len(batch) > 3 else {}
        x_student = extras.get("student_image", x)  # a corrupted copy for part of the batch (RFKD)
        heads = self.model.forward_heads(self._to_memory_format(x_student))
        s_feats = dict(self.student_taps.features) if self.student_taps else {}
        main = self.model.main_head
        weights = {h: 1.0 if h == main else self.cfg["aux_weight"] for h in heads}
        hard = self._hard_loss(heads, y, weights, extras.get("labelled"), extras.get("soft"))
        if "soft" in extras:  # offline: cached probabilities at T, kd terms only (checked at setup)
            t_heads, t_feats = None, {}
        else:
            t_heads, t_feats = self._teacher_targets(self._to_memory_format(x))
        values = []
        for term, loss, pairs in zip(self.terms, self.distill_losses, self.pairs, strict=True):
            if term["on"] == "features":
                value = self.feature_value(loss, pairs, s_feats, t_feats)
            elif t_heads is None:
                value = sum(w * self._offline_kd(heads[h].float(), extras["soft"][self.head_map[h]], loss)
                            for h, w in weights.items() if w > 0)
            else:
                value = sum(w * loss(heads[h].float(), self._teacher_logits(t_heads[self.head_map[h]], heads[h]), y)
                            for h, w in weights.items() if w > 0)
            values.append(value)
        n = x.shape[0]
        distill = self.weigh_terms(self.hard_weight * hard, values, n)
        loss = self.hard_weight * hard + distill
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        self.log("train/hard", hard, on_step=True, on_epoch=True, batch_size=n)
        self.log("train/kd", distill, on_step=True, on_epoch=True, batch_size=n)
        return self.finite_or_skip(loss)

    @staticmethod
    def _teacher_logits(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        """Teacher logits in the student's form (2-class <-> sigmoid, H x W) for every logits method."""
        return match_size(match_channels(teacher, student.shape[1]), student)

    def _offline_kd(self, student: torch.Tensor, probs: torch.Tensor, loss: nn.Module) -> torch.Tensor:
        q = match_size(match_probability_channels(probs, student.shape[1]), student)
        return kd_from_probabilities(student, q, loss.T, getattr(loss, "pos_weight", 1.0))


__all__ = ["DistillModule", "default_feature_pair", "head_map", "match_probability_channels"]
