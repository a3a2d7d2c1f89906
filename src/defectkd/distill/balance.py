"""Distillation terms weighted from their measured size instead of another paper's constant.

Published weights (FitNets 100, AT 1000, MGD 2e-5, KD's alpha * T^2) encode another model's feature scale,
resolution and reduction: on a 0.35 M crack student FitNets' x100 put its term at 65x the task loss and cost
3.8 F1, KD at T 10, alpha 0.9 (900:1) left a student that predicts background everywhere. With `balance: loss`
each term i gets

    w_i = share_i * median_k(hard_weight * L_task) / median_k(L_i)

over the first `balance_steps` training batches (running medians, so the first step is already balanced), then
the weights are frozen, logged and kept in the checkpoint: a resumed run reuses them. Shares default to 0.5 for a
logits term and 0.25 for a features term, scaled down so that together they stay <= 1: the task loss keeps at
least half of the signal. MGD's authors advise the same ("a weight that brings the loss to the order of the
original loss").
"""

from __future__ import annotations

import torch
from torch import nn

LOGITS_SHARE, FEATURES_SHARE = 0.5, 0.25


def default_shares(terms: list[dict]) -> list[float]:
    """Each term's share of the weighted task loss: its own `share`, else 0.5 (logits) / 0.25 (features); the
    defaults are scaled down together when they would sum above 1."""
    shares = [t.get("share") or (LOGITS_SHARE if t["on"] == "logits" else FEATURES_SHARE) for t in terms]
    given = [t.get("share") is not None for t in terms]
    total = sum(shares)
    if total > 1 and not all(given):
        free = sum(s for s, g in zip(shares, given, strict=True) if not g)
        room = max(0.0, 1 - sum(s for s, g in zip(shares, given, strict=True) if g))
        shares = [s if g else s * room / free for s, g in zip(shares, given, strict=True)]
    return shares


class TermBalancer(nn.Module):
    """Holds the weights of the distillation terms; while calibrating, sets them from running medians."""

    def __init__(self, shares: list[float], steps: int) -> None:
        super().__init__()
        self.shares = list(shares)
        self.steps = int(steps)
        self.register_buffer("weights", torch.zeros(len(shares)))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))  # batches measured so far
        self.register_buffer("history", torch.zeros(max(1, self.steps), len(shares) + 1))  # task, terms

    @property
    def calibrating(self) -> bool:
        return int(self.seen) < self.steps

    def update(self, task: torch.Tensor, values: list[torch.Tensor], reduce=None) -> bool:
        """Record one batch (detached) and refresh the weights; True on the batch that freezes them.
        `reduce` averages the row over processes under DDP, so every rank uses the same weights."""
        row = torch.stack([task.detach().float().reshape(()), *(v.detach().float().reshape(()) for v in values)])
        if reduce is not None:
            row = reduce(row)
        k = int(self.seen)
        self.history[k] = row.to(self.history)
        self.seen += 1
        medians = self.history[: k + 1].median(dim=0).values
        task_size, sizes = medians[0], medians[1:]
        shares = torch.tensor(self.shares, dtype=sizes.dtype, device=sizes.device)
        # a term that measures 0 (nothing to match yet) keeps weight 0 rather than dividing by it
        self.weights.copy_(torch.where(sizes > 1e-12, shares * task_size / sizes.clamp_min(1e-12),
                                       torch.zeros_like(sizes)))
        return not self.calibrating

    def describe(self, methods: list[str]) -> str:
        parts = [f"{m} x{w:.3g} ({s:.2f} of the task loss)" for m, w, s in zip(methods, self.weights.tolist(),
                                                                             self.shares, strict=True)]
        return f"balanced distillation terms on the first {self.steps} batches: " + ", ".join(parts)
