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

import lightning as L
import torch
from torch import nn

from ..distill import build_loss
from ..distill.features import FeatureTaps, parse_feature_pairs
from ..distill.recipes import CHANNEL_ADAPTED
from ..metrics.classify import ClassificationMetrics
from ..models import build_model
from .distill_module import default_feature_pair

PROBE_SIZE = 64


class ClassifyModule(L.LightningModule):
    """One classifier on hard labels; logs val/accuracy and macro val/precision, val/recall, val/f1."""

    def __init__(self, model_name: str, model_kwargs: dict, config: dict, pretrained: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["pretrained"])
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
        return loss

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
        cfg = self.cfg
        params = [p for p in self.parameters() if p.requires_grad]
        if cfg["optimizer"] == "sgd":
            opt = torch.optim.SGD(params, lr=cfg["lr"], momentum=0.9, nesterov=True, weight_decay=cfg["weight_decay"])
        else:
            opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        if cfg["scheduler"] == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"], eta_min=cfg["lr"] * 0.01)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        return opt


class ClassifyDistillModule(ClassifyModule):
    """Student training with a frozen teacher and weighted distillation terms (config["losses"])."""

    def __init__(self, model_name: str, model_kwargs: dict, config: dict, teacher: nn.Module,
                 pretrained: str | None = None) -> None:
        super().__init__(model_name, model_kwargs, config, pretrained=pretrained)
        self.save_hyperparameters(ignore=["pretrained", "teacher"])  # the student only, never the teacher
        teacher.eval().requires_grad_(False)
        object.__setattr__(self, "teacher", teacher)  # not a child: not trained, saved or moved by Lightning
        self.hard_weight = float(config["hard_weight"])
        self.terms = [dict(t) for t in config["losses"]]
        default_pairs = parse_feature_pairs(config.get("feat") or [])
        self.pairs: list[list[tuple[str, str]]] = []
        for term in self.terms:
            if term["on"] != "features":
                self.pairs.append([])
            elif term.get("feat"):
                self.pairs.append(parse_feature_pairs(term["feat"]))
            else:
                self.pairs.append(default_pairs or default_feature_pair(self.model, teacher))
        student_paths = [s for pairs in self.pairs for s, _ in pairs]
        teacher_paths = [t for pairs in self.pairs for _, t in pairs]
        self.student_taps = FeatureTaps(self.model, student_paths, "student") if student_paths else None
        self.teacher_taps = FeatureTaps(teacher, teacher_paths, "teacher") if teacher_paths else None
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
                self._try(loss, s_logits, t_logits, target, f"{term['method']} on logits")
                out.append(loss)
                continue
            per_pair = nn.ModuleList()
            for s_path, t_path in pairs:
                s, t = s_feats[s_path], t_feats[t_path]
                if term["method"] in CHANNEL_ADAPTED and s.dim() == 4 and t.dim() == 4:
                    params.update(student_channels=s.shape[1], teacher_channels=t.shape[1])
                loss = build_loss(term["method"], **params)
                self._try(loss, s.float(), t.float(), None,
                          f"feat {s_path}:{t_path} ({term['method']}), student {tuple(s.shape)}, "
                          f"teacher {tuple(t.shape)}")
                per_pair.append(loss)
            out.append(per_pair)
        return out

    @staticmethod
    def _try(loss: nn.Module, s: torch.Tensor, t: torch.Tensor, target, what: str) -> None:
        try:  # fork_rng: MGD's mask draw leaves no trace in the global generator
            with torch.no_grad(), torch.random.fork_rng():
                loss.eval()(s, t, target)
            loss.train()
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"{what}: {str(exc).splitlines()[0]}") from None

    def on_fit_start(self) -> None:
        self.teacher.to(self.device)
        if self.cfg.get("channels_last"):
            self.teacher.to(memory_format=torch.channels_last)
        self.teacher.eval()

    def on_train_epoch_start(self) -> None:
        for loss in self.distill_losses.modules():
            if hasattr(loss, "set_epoch"):  # DKD's warm-up counts epochs from 1, as in its original code
                loss.set_epoch(self.current_epoch + 1)

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
        distill = logits.new_zeros(())
        for i, (term, loss, pairs) in enumerate(zip(self.terms, self.distill_losses, self.pairs, strict=True)):
            if term["on"] == "features":
                value = sum(fn(s_feats[s].float(), t_feats[t].float()) for fn, (s, t) in zip(loss, pairs, strict=True))
            else:
                value = loss(logits, t_logits, y)
            self.log(f"train/term{i}_{term['method']}", value, on_step=False, on_epoch=True, batch_size=x.shape[0])
            distill = distill + term["weight"] * value
        total = self.hard_weight * hard + distill
        n = x.shape[0]
        self.log("train/loss", total, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        self.log("train/hard", hard, on_step=False, on_epoch=True, batch_size=n)
        self.log("train/kd", distill, on_step=False, on_epoch=True, batch_size=n)
        return total


__all__ = ["ClassifyDistillModule", "ClassifyModule"]
