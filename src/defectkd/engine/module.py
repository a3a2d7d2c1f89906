"""What every task's LightningModule inherits from the engine: the guard against non-finite losses."""

from __future__ import annotations

import lightning as L
import torch

from defectkd.core.errors import TrainingError

MAX_SKIPPED_STEPS = 20


class TrainModule(L.LightningModule):
    """Base of the task modules; `training_step` returns `self.finite_or_skip(loss)`."""

    def finite_or_skip(self, loss: torch.Tensor) -> torch.Tensor | None:
        """A non-finite loss would poison every weight through the optimiser: skip that step (Lightning
        skips when training_step returns None) and give up with one clear line if it keeps happening."""
        if torch.isfinite(loss):
            return loss
        self.skipped_steps = getattr(self, "skipped_steps", 0) + 1
        if self.skipped_steps > MAX_SKIPPED_STEPS:
            raise TrainingError(f"training diverged: {self.skipped_steps} steps with a non-finite loss by epoch "
                                f"{self.current_epoch + 1}; lower lr, or set precision=32 or grad_clip=1")
        if self._trainer is not None and self.trainer.world_size > 1:
            # under DDP every process must take part in the gradient all-reduce, or the others wait forever:
            # a zero loss on the (finite) weights gives this process's share as zeros
            return sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
        return None
