"""Guards of a distillation run: a teacher that finds nothing is refused before training; a term that drowns the
task loss (above 10x it at an epoch's end) is lowered to its balanced share, or only reported with dominant=warn;
and a student that collapses (its validation metric at the task's "finds nothing" level, epoch after epoch) is
stopped with a message that names the loss term that dominated.

Reported collapses look alike: a CWD student predicting only background (open-mmlab/mmrazor#15), KD mAP at 0 after
one epoch (IntelLabs/distiller#347), an MGD student at mAP 0 for 12 epochs (open-mmlab/mmrazor#619); several "no
gain" threads ended with a teacher that had not loaded (yzd-v/FGD#35).
"""

from __future__ import annotations

import logging
import math

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


def term_ratios(metrics: dict, weights: list[float], hard_weight: float) -> dict[int, tuple[str, float]]:
    """Each weighted distillation term's epoch mean over the weighted task loss's (train/term<i>_<method>):
    {i: (method, ratio)}."""
    hard = metrics.get("train/hard_epoch")
    if hard is None or float(hard) * hard_weight <= 0:
        return {}
    out = {}
    for key, value in metrics.items():
        if key.startswith("train/term") and key.endswith("_epoch"):
            i, method = key.removeprefix("train/term").removesuffix("_epoch").split("_", 1)
            if int(i) < len(weights):
                out[int(i)] = (method, weights[int(i)] * float(value) / (float(hard) * hard_weight))
    return out


class CollapseGuard(L.Callback):
    """After `start` epochs, a main metric at the degenerate level on `patience` consecutive epochs stops the run.
    A term above 10x the task loss is lowered to its balanced share (`rescale`, the module's `rescale_term`) or
    reported once (`rescale=False`)."""

    def __init__(self, task, classes: int, start: int = 3, patience: int = 2, rescale: bool = True) -> None:
        self.task, self.classes, self.start, self.patience, self.rescale = task, classes, start, patience, rescale
        self.bad = 0
        self.warned: set[str] = set()
        self.peak: dict[str, float] = {}  # the largest ratio each term reached: what a collapse message names

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        epoch = trainer.current_epoch + 1
        # rank 0's view decides, so that under DDP every process rescales the same term by the same factor
        ratios = trainer.strategy.broadcast(term_ratios(metrics, module.term_weights(), float(module.hard_weight)))
        balancer = getattr(module, "balancer", None)
        settled = balancer is None or not balancer.calibrating  # a calibrating balancer still sets the weights
        methods = [m for m, _ in ratios.values()]
        for i, (method, ratio) in ratios.items():
            if not math.isfinite(ratio):  # a skipped non-finite step poisoned the epoch mean: nothing to judge
                continue
            name = method if methods.count(method) == 1 else f"{i}_{method}"  # two terms of one method: by index
            self.peak[name] = max(ratio, self.peak.get(name, 0.0))
            if ratio <= DOMINANT:
                continue
            if self.rescale and settled:
                before = module.term_weights()[i]
                after = module.rescale_term(i, ratio)
                if trainer.is_global_zero:
                    log.warning(f"epoch {epoch}: the {name} term stood at {ratio:.0f}x the task loss, so the labels "
                                f"barely counted; its weight goes from {before:.3g} to {after:.3g} (its balanced "
                                "share) for the rest of the run (dominant=warn keeps the weights as given)")
            elif not self.rescale and name not in self.warned and trainer.is_global_zero:
                self.warned.add(name)
                log.warning(f"epoch {epoch}: the {name} term is {ratio:.0f}x the task loss; the labels barely count "
                            "(balance=loss weighs terms from their size; dominant=rescale lowers it)")
        problem = self.task.degenerate(metrics, self.classes)
        self.bad = self.bad + 1 if problem and epoch >= self.start else 0
        if self.bad >= self.patience:
            top = max(self.peak.items(), key=lambda kv: kv[1], default=None)
            why = f"; the largest term, {top[0]}, stood at up to {top[1]:.2g}x the task loss" if top else ""
            raise TrainingError(
                f"distillation collapsed: validation {problem} for {self.bad} epochs in a row (epoch {epoch}){why}. "
                "Try balance=loss (the default), a lower T or term weight, or the task's default --method; "
                "`--baseline` shows what the student reaches alone (weights/last.pt holds the previous epoch)")
