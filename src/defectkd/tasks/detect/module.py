"""Lightning wrappers for defect detection (kept apart from the exportable nn.Modules).

`DetectModule` trains a RetinaNet with torchvision's own losses (sigmoid focal loss + L1 box regression, summed),
AdamW or SGD, a cosine schedule and gradient-norm clipping; validation computes COCO mAP (metrics/detect.py).
`DetectDistillModule` adds a frozen teacher (not a child: never trained, moved by Lightning or saved) and weighted
feature terms on the FPN levels (`fpn_levels.p3` ... `p7`, paired by name; DistillTerms, as for the other tasks):

    loss = hard_weight * (focal + box) + sum over terms of weight * sum over levels of term(student, teacher)

The teacher sees the same (augmented) images and runs its transform + backbone only (`features`), no heads.
"""

from __future__ import annotations

import torch
from torch import nn

from defectkd.distill.terms import DistillTerms
from defectkd.engine.module import TrainModule
from defectkd.engine.optim import configure_optimizers
from defectkd.models import build_model
from defectkd.tasks.detect.metrics import DetectionMetrics

PROBE_SIZE = 64
LOGGED = ("map", "map_50", "map_75", "mar_100")


class DetectModule(TrainModule):
    """One detector on boxes; logs train/loss (= focal + box), val/map, val/map_50, val/map_75, val/mar_100."""

    def __init__(self, model_name: str, model_kwargs: dict, config: dict, pretrained: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["pretrained", "teacher"])  # a subclass may pass a teacher
        self.model = build_model(model_name, pretrained=pretrained, **model_kwargs)
        self.cfg = config
        self.val_metrics = DetectionMetrics(config["class_names"])

    def forward(self, images):
        return self.model(images)

    def detection_loss(self, images, targets) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        losses = self.model(images, targets)
        return losses["classification"] + losses["bbox_regression"], losses

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, targets, _ = batch
        loss, parts = self.detection_loss(images, targets)
        n = len(images)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        self.log("train/cls", parts["classification"], on_step=False, on_epoch=True, batch_size=n)
        self.log("train/box", parts["bbox_regression"], on_step=False, on_epoch=True, batch_size=n)
        return self.finite_or_skip(loss)

    def validation_step(self, batch, batch_idx: int) -> None:
        images, targets, _ = batch
        self.val_metrics.update(self.model(images), targets)

    def on_validation_epoch_end(self) -> None:
        metrics = self.val_metrics.compute()
        self.val_metrics.reset()
        for key in LOGGED:
            if key in metrics:
                self.log(f"val/{key}", max(0.0, metrics[key]), prog_bar=key == "map_50")  # -1: nothing to measure

    def configure_optimizers(self):
        return configure_optimizers(self.parameters(), self.cfg, monitor="val/map_50")


class DetectDistillModule(DistillTerms, DetectModule):
    """Student training with a frozen teacher detector and weighted feature terms on the FPN levels."""

    def __init__(self, model_name: str, model_kwargs: dict, config: dict, teacher: nn.Module,
                 pretrained: str | None = None) -> None:
        super().__init__(model_name, model_kwargs, config, pretrained=pretrained)
        self.save_hyperparameters(ignore=["pretrained", "teacher"])  # the student only, never the teacher
        self.setup_terms(config, teacher)
        self.distill_losses = nn.ModuleList(self._build_losses())

    def _build_losses(self) -> list[nn.Module]:
        """One loss per (term, level pair), sized and tried on the levels of a probe image (eval mode)."""
        for term in self.terms:
            if term["on"] != "features":
                raise ValueError(f"detection distillation terms act on features (FPN levels); {term['method']} "
                                 f"on {term['on']} is not available")
        x = [torch.rand(3, PROBE_SIZE, PROBE_SIZE, generator=torch.Generator().manual_seed(0))]
        was = self.model.training
        self.model.eval()
        with torch.no_grad():
            self.model.features(x)
            s_feats = dict(self.student_taps.features)
            self.teacher.features(x)
            t_feats = dict(self.teacher_taps.features)
        self.model.train(was)
        return [self.feature_losses(term, pairs, s_feats, t_feats) for term, pairs in zip(self.terms, self.pairs,
                                                                                           strict=True)]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, targets, _ = batch
        hard, parts = self.detection_loss(images, targets)  # the student's taps fire here
        s_feats = dict(self.student_taps.features)
        with torch.no_grad():
            self.teacher.eval()
            self.teacher.features(images)
            t_feats = dict(self.teacher_taps.features)
        n = len(images)
        values = [self.feature_value(loss, pairs, s_feats, t_feats)
                  for loss, pairs in zip(self.distill_losses, self.pairs, strict=True)]
        distill = self.weigh_terms(self.hard_weight * hard, values, n)
        total = self.hard_weight * hard + distill
        self.log("train/loss", total, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        self.log("train/hard", hard, on_step=True, on_epoch=True, batch_size=n)
        self.log("train/kd", distill, on_step=True, on_epoch=True, batch_size=n)
        self.log("train/cls", parts["classification"], on_step=False, on_epoch=True, batch_size=n)
        self.log("train/box", parts["bbox_regression"], on_step=False, on_epoch=True, batch_size=n)
        return self.finite_or_skip(total)


__all__ = ["DetectDistillModule", "DetectModule"]
