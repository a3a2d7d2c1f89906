"""Lightning training wrapper for segmentation models (kept apart from the exportable nn.Module)."""

from __future__ import annotations

import torch

from defectkd.core.errors import TrainingError
from defectkd.engine.module import TrainModule
from defectkd.engine.optim import configure_optimizers
from defectkd.models import build_model, crack_probability
from defectkd.tasks.segment.losses import build_segment_loss
from defectkd.tasks.segment.metrics import SegmentationMetrics


class SegmentModule(TrainModule):
    """Trains one model on hard labels: main head weight 1, auxiliary heads `aux_weight`."""

    def __init__(self, model_name: str, model_kwargs: dict, config: dict, pretrained: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["pretrained", "teacher", "teacher_heads", "teacher_main"])
        self.model = build_model(model_name, pretrained=pretrained, **model_kwargs)
        self.cfg = config
        self.criterion = build_segment_loss(config["loss"], model_kwargs.get("classes", 2), config["pos_weight"])
        self.val_metrics = SegmentationMetrics(threshold=config["threshold"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _to_memory_format(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.get("channels_last") else x

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        heads = self.model.forward_heads(self._to_memory_format(x))
        main = self.model.main_head
        loss = self.criterion(heads[main].float(), y)
        for name, logits in heads.items():
            if name != main and self.cfg["aux_weight"] > 0:
                loss = loss + self.cfg["aux_weight"] * self.criterion(logits.float(), y)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=x.shape[0])
        return self.finite_or_skip(loss)

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, _ = batch
        logits = self.model(self._to_memory_format(x)).float()
        if not torch.isfinite(logits).all():
            raise TrainingError(f"training diverged: the model's outputs are not finite at epoch "
                                f"{self.current_epoch + 1}; lower lr, or set precision=32 or grad_clip=1 "
                                "(weights/last.pt holds the last good epoch)")
        self.log("val/loss", self.criterion(logits, y), on_epoch=True, batch_size=x.shape[0])
        self.val_metrics.update(crack_probability(logits), y)

    def on_validation_epoch_end(self) -> None:
        metrics = self.val_metrics.compute()
        self.val_metrics.reset()
        for key in ("precision", "recall", "f1", "iou", "ods_f1", "miou_2class"):
            if key in metrics:
                self.log(f"val/{key}", metrics[key], prog_bar=key in ("f1", "iou"))

    def configure_optimizers(self):
        return configure_optimizers(self.parameters(), self.cfg)
