"""Lightning wrappers for defect classification (kept apart from the exportable nn.Modules).

`ClassifyModule` trains one model with cross-entropy (optional label smoothing), AdamW or SGD and a
cosine schedule. `ClassifyDistillModule` adds a frozen teacher and weighted distillation terms from
the same loss registry as segmentation (`build_loss("kd", T=...)`, `build_loss("dkd", ...)`, MGD on
the last feature map, ...). As in engine/distill_module.py, the teacher is not a child module: it is
never trained, moved by Lightning or saved, so checkpoints hold the student (plus the adapters of
feature terms, which the deploy file drops) and load like any trained classifier.

Loss = hard_weight * CE + sum over terms of weight * term; a logits term is
`loss(student_logits, teacher_logits, target)`, a features term sums over its (student layer,
teacher layer) pairs, tapped with FeatureTaps.
"""

from __future__ import annotations

import torch
from torch import nn

from defectkd.distill import build_loss
from defectkd.distill.terms import DistillTerms, try_loss
from defectkd.engine.module import TrainModule
from defectkd.engine.optim import configure_optimizers
from defectkd.models import build_model
from defectkd.tasks.classify.metrics import ClassificationMetrics

PROBE_SIZE = 64


class ClassifyModule(TrainModule):
    """One classifier on hard labels; logs val/accuracy and macro val/precision, val/recall, val/f1."""

    def __init__(self, model_name: str, model_kwargs: dict, config: dict, pretrained: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["pretrained", "teacher"])  # a subclass may pass a teacher
        self.model = build_model(model_name, pretrained=pretrained, **model_kwargs)
        self.cfg = config
        self.criterion = nn.CrossEntropyLoss(label_smoothing=float(config.get("label_smoothing", 0.0)))
        self.val_metrics = ClassificationMetrics(config["class_names"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _to_memory_format(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.get("channels_last") else x

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        loss = self.criterion(self.model(self._to_memory_format(x)).float(), y)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=x.shape[0])
        return self.finite_or_skip(loss)

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, _ = batch
        logits = self.model(self._to_memory_format(x)).float()
        self.log("val/loss", self.criterion(logits, y), on_epoch=True, batch_size=x.shape[0])
        self.val_metrics.update(logits, y)

    def on_validation_epoch_end(self) -> None:
        metrics = self.val_metrics.compute()
        self.val_metrics.reset()
        for key in ("accuracy", "precision", "recall", "f1"):
            if key in metrics:
                self.log(f"val/{key}", metrics[key], prog_bar=key in ("accuracy", "f1"))

    def configure_optimizers(self):
        return configure_optimizers(self.parameters(), self.cfg, monitor="val/accuracy", nesterov=True)


class ClassifyDistillModule(DistillTerms, ClassifyModule):
    """Student training with a frozen teacher and weighted distillation terms (config["losses"])."""

    def __init__(self, model_name: str, model_kwargs: dict, config: dict, teacher: nn.Module,
                 pretrained: str | None = None) -> None:
        super().__init__(model_name, model_kwargs, config, pretrained=pretrained)
        self.save_hyperparameters(ignore=["pretrained", "teacher"])  # the student only, never the teacher
        self.setup_terms(config, teacher)
        self.distill_losses = nn.ModuleList(self._build_losses())

    def _build_losses(self) -> list[nn.Module]:
        """One loss per logits term, one per (term, feature pair), each tried on a probe batch (eval mode:
        no BatchNorm statistics touched), so shapes that cannot work fail at setup, not mid-run."""
        x = torch.rand(2, 3, PROBE_SIZE, PROBE_SIZE, generator=torch.Generator().manual_seed(0))
        was = self.model.training
        self.model.eval()
        with torch.no_grad():
            s_logits = self.model(x).float()
            s_feats = dict(self.student_taps.features) if self.student_taps else {}
            t_logits = self.teacher(x).float()
            t_feats = dict(self.teacher_taps.features) if self.teacher_taps else {}
        self.model.train(was)
        if t_logits.dim() != 2 or t_logits.shape[1] != s_logits.shape[1]:
            raise ValueError(f"the teacher returns {tuple(t_logits.shape)} logits for a probe batch, the student "
                             f"{tuple(s_logits.shape)}: a classification teacher with the same classes is needed")
        target = torch.zeros(2, dtype=torch.long)
        out: list[nn.Module] = []
        for term, pairs in zip(self.terms, self.pairs, strict=True):
            params = dict(term["params"])
            if term["on"] == "logits":
                loss = build_loss(term["method"], **params)
                try_loss(loss, s_logits, t_logits, target, f"{term['method']} on logits")
                out.append(loss)
                continue
            out.append(self.feature_losses(term, pairs, s_feats, t_feats))
        return out

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        x = self._to_memory_format(x)
        logits = self.model(x).float()
        s_feats = dict(self.student_taps.features) if self.student_taps else {}
        hard = self.criterion(logits, y)
        with torch.no_grad():
            self.teacher.eval()
            t_logits = self.teacher(x).float()
            t_feats = dict(self.teacher_taps.features) if self.teacher_taps else {}
        values = [self.feature_value(loss, pairs, s_feats, t_feats) if term["on"] == "features"
                  else loss(logits, t_logits, y)
                  for term, loss, pairs in zip(self.terms, self.distill_losses, self.pairs, strict=True)]
        n = x.shape[0]
        distill = self.weigh_terms(self.hard_weight * hard, values, n)
        total = self.hard_weight * hard + distill
        self.log("train/loss", total, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        self.log("train/hard", hard, on_step=True, on_epoch=True, batch_size=n)
        self.log("train/kd", distill, on_step=True, on_epoch=True, batch_size=n)
        return self.finite_or_skip(total)


__all__ = ["ClassifyDistillModule", "ClassifyModule"]
