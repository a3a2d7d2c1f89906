"""An exponential moving average of the student's weights (EMA), as ultralytics and timm keep by default: the
averaged copy is what validation sees (so best.pt is chosen on it), what the checkpoints hold as their state_dict
(so the deploy file and every export carry it; the raw weights stay under "current_model_state" for a resume) and
what the model holds when training ends.

Only `pl_module.model` is averaged: Lightning's WeightAveraging averages the whole training module, which here
holds a frozen teacher (copied for nothing), feature adapters (up to 70x the student, swapped at every validation)
and the term balancer's weights (which results.json must report as the loss used them). torch's AveragedModel does
the averaging. The decay is warmed up as TensorFlow's ExponentialMovingAverage(num_updates) does,
min(decay, (1 + n) / (10 + n)) at update n: with a fixed 0.99 the average would still be mostly the first step's
weights after the first epoch of a small data set.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel


def warmed_decay(decay: float, updates: int) -> float:
    """The decay of update number `updates` (1 = the first after the copy that starts the average)."""
    return min(decay, (1 + updates) / (10 + updates))


class WarmedEMA:
    """AveragedModel's `multi_avg_fn`: one group of tensors of one device and dtype, in place. A class, not a
    closure, so that a trainer with this callback pickles (ddp_spawn)."""

    def __init__(self, decay: float) -> None:
        self.decay = decay

    @torch.no_grad()
    def __call__(self, averaged: list[Tensor], current: list[Tensor], updates: Tensor) -> None:
        if averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, 1.0 - warmed_decay(self.decay, int(updates)))
        else:  # BatchNorm's batch count
            torch._foreach_copy_(averaged, current)


class EMA(L.Callback):
    """EMA of the student's parameters and buffers, updated after each optimiser step."""

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.average: AveragedModel | None = None
        self._updated_at = 0  # global step of the last update (one update per optimiser step)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.average = AveragedModel(pl_module.model, use_buffers=True, multi_avg_fn=WarmedEMA(self.decay))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if self.average is not None and trainer.global_step > self._updated_at:
            self.average.update_parameters(pl_module.model)
            self._updated_at = trainer.global_step

    def _swap(self, pl_module: L.LightningModule) -> None:
        if self.average is None or not int(self.average.n_averaged):
            return
        with torch.no_grad():
            for mine, live in zip(self._tensors(self.average.module), self._tensors(pl_module.model), strict=True):
                held = mine.clone()
                mine.copy_(live)
                live.copy_(held)

    @staticmethod
    def _tensors(module: torch.nn.Module) -> list[Tensor]:
        return [*module.parameters(), *module.buffers()]

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swap(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swap(pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.average is not None and int(self.average.n_averaged):
            pl_module.model.load_state_dict(self.average.module.state_dict())

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """The student's keys of state_dict become the average; the raw ones move to "current_model_state"."""
        if self.average is None or not int(self.average.n_averaged):
            return
        state = checkpoint["state_dict"]
        checkpoint["current_model_state"] = {k: v for k, v in state.items() if k.startswith("model.")}
        state.update({f"model.{k}": v for k, v in self.average.module.state_dict().items()})
        checkpoint["ema"] = {"decay": self.decay, "updates": int(self.average.n_averaged)}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Resume: the average from state_dict, the live student from current_model_state (Lightning has already
        loaded state_dict, the average, into the module)."""
        if self.average is None or "current_model_state" not in checkpoint:
            return
        state = checkpoint["state_dict"]
        self.average.module.load_state_dict({k.removeprefix("model."): v for k, v in state.items()
                                             if k.startswith("model.")})
        self.average.n_averaged.fill_(checkpoint["ema"]["updates"])
        pl_module.model.load_state_dict({k.removeprefix("model."): v
                                         for k, v in checkpoint["current_model_state"].items()})
        self._updated_at = checkpoint["global_step"]
