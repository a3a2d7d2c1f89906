"""Guards of a distillation run: a teacher that finds nothing is refused before training, and a student that
collapses (its validation metric at the task's "finds nothing" level, epoch after epoch) is stopped with a message
that names the loss term that dominated.

Reported collapses look alike: a CWD student predicting only background (open-mmlab/mmrazor#15), KD mAP at 0 after
one epoch (IntelLabs/distiller#347), an MGD student at mAP 0 for 12 epochs (open-mmlab/mmrazor#619); several "no
gain" threads ended with a teacher that had not loaded (yzd-v/FGD#35).
"""

from __future__ import annotations

import logging

import lightning as L

from defectkd.core.errors import ConfigError, TrainingError

log = logging.getLogger("defectkd")

DOMINANT = 10.0  # a weighted term this many times the weighted task loss drowns the labels


def check_teacher(task, result: dict | None, classes: int) -> None:
    """Refuse (one line, exit 2) a teacher whose validation metric says it finds nothing."""
    problem = task.degenerate((result or {}).get("val"), classes)
    if problem:
        raise ConfigError(f"teacher {result['weights']}: {problem} on the validation split, so it has nothing to "
                          "teach; check that --teacher names the trained run, or train it longer "
                          "(teacher_check=false skips this)")


def term_ratios(metrics: dict, weights: list[float], hard_weight: float) -> dict[str, float]:
    """Each weighted distillation term's epoch mean over the weighted task loss's (train/term<i>_<method>)."""
    hard = metrics.get("train/hard_epoch")
    if hard is None or float(hard) * hard_weight <= 0:
        return {}
    out = {}
    for key, value in metrics.items():
        if key.startswith("train/term") and key.endswith("_epoch"):
            name = key.removeprefix("train/term").removesuffix("_epoch")
            i = int(name.split("_", 1)[0])
            if i < len(weights):
                out[name.split("_", 1)[1]] = weights[i] * float(value) / (float(hard) * hard_weight)
    return out


class CollapseGuard(L.Callback):
    """After `start` epochs, a main metric at the degenerate level on `patience` consecutive epochs stops the run;
    a term above 10x the task loss is reported once."""

    def __init__(self, task, classes: int, start: int = 3, patience: int = 2) -> None:
        self.task, self.classes, self.start, self.patience = task, classes, start, patience
        self.bad = 0
        self.warned: set[str] = set()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        epoch = trainer.current_epoch + 1
        ratios = term_ratios(metrics, module.term_weights(), float(module.hard_weight))
        for name, ratio in ratios.items():
            if ratio > DOMINANT and name not in self.warned and trainer.is_global_zero:
                self.warned.add(name)
                log.warning(f"epoch {epoch}: the {name} term is {ratio:.0f}x the task loss; the labels barely count "
                            "(balance=loss weighs terms from their size)")
        problem = self.task.degenerate(metrics, self.classes)
        self.bad = self.bad + 1 if problem and epoch >= self.start else 0
        if self.bad >= self.patience:
            top = max(ratios.items(), key=lambda kv: kv[1], default=None)
            why = f"; the largest term, {top[0]}, stood at {top[1]:.2g}x the task loss" if top else ""
            raise TrainingError(
                f"distillation collapsed: validation {problem} for {self.bad} epochs in a row (epoch {epoch}){why}. "
                "Try balance=loss (the default), a lower T or term weight, or the task's default --method; "
                "`--baseline` shows what the student reaches alone (weights/last.pt holds the previous epoch)")
