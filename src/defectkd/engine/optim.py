"""Optimizer and learning-rate schedule from a run config, shared by the three tasks' training modules."""

from __future__ import annotations

import torch


def configure_optimizers(params, cfg: dict, monitor: str = "val/f1", nesterov: bool = False):
    """What Lightning's `configure_optimizers` returns for cfg's optimizer (adamw, sgd, rmsprop) and scheduler
    (cosine to 1 % of lr over the epochs; plateau: halve after 5 epochs without a better `monitor`; none)."""
    params = [p for p in params if p.requires_grad]
    lr, decay = cfg["lr"], cfg["weight_decay"]
    if cfg["optimizer"] == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=nesterov, weight_decay=decay)
    elif cfg["optimizer"] == "rmsprop":
        opt = torch.optim.RMSprop(params, lr=lr, weight_decay=decay)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=decay)
    if cfg["scheduler"] == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"], eta_min=lr * 0.01)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
    if cfg["scheduler"] == "plateau":  # the MCFF-L paper's: halve on a 5-epoch plateau
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": monitor, "interval": "epoch"}}
    return opt
