"""Classification metrics (torchmetrics) and the confusion-matrix plot.

- `accuracy`: share of images whose top class is right (micro over the set);
- `precision`, `recall`, `f1`: macro averages over the classes (each class counts the same, however
  many images it has); a class that appears neither in the truth nor in the predictions is left out
  of the average, as torchmetrics does; a class with no predictions has precision 0;
- `per_class`: precision, recall, F1 and support (true images) of every class by name;
- `confusion`: counts, rows = true class, columns = predicted class, in `class_names` order.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)


class ClassificationMetrics:
    """Accumulate top-1 predictions and targets with `update(logits, target)`; `compute()` -> dict."""

    def __init__(self, class_names: list[str]) -> None:
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.reset()

    def reset(self) -> None:
        self._preds: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """`logits` (N, C) (or already predicted class indices (N,)), `target` (N,) class indices."""
        preds = logits.argmax(dim=1) if logits.dim() == 2 else logits
        self._preds.append(preds.detach().long().cpu())
        self._targets.append(target.detach().long().cpu())

    def compute(self) -> dict:
        if not self._preds:
            return {"images": 0}
        p, t = torch.cat(self._preds), torch.cat(self._targets)
        kw = {"num_classes": self.num_classes}
        per = {name: torch.stack([multiclass_precision(p, t, average="none", **kw),
                                  multiclass_recall(p, t, average="none", **kw),
                                  multiclass_f1_score(p, t, average="none", **kw)])[:, i].tolist()
               for i, name in enumerate(self.class_names)}
        support = torch.bincount(t, minlength=self.num_classes).tolist()
        return {
            "images": int(t.numel()),
            "accuracy": float(multiclass_accuracy(p, t, average="micro", **kw)),
            "precision": float(multiclass_precision(p, t, average="macro", **kw)),
            "recall": float(multiclass_recall(p, t, average="macro", **kw)),
            "f1": float(multiclass_f1_score(p, t, average="macro", **kw)),
            "per_class": {name: {"precision": v[0], "recall": v[1], "f1": v[2], "support": support[i]}
                          for i, (name, v) in enumerate(per.items())},
            "confusion": multiclass_confusion_matrix(p, t, **kw).tolist(),
        }


def plot_confusion(confusion: list[list[int]], class_names: list[str], out: str | Path, title: str = "") -> Path:
    """Confusion matrix as a PNG: counts in every cell, colour = share of the true class (row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.asarray(confusion, dtype=np.int64)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, np.maximum(rows, 1), dtype=np.float64)
    n = len(class_names)
    side = max(4.0, 0.7 * n + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    acc = np.trace(m) / max(1, m.sum())
    ax.set_title(f"{title + ': ' if title else ''}accuracy {acc:.4f} ({int(m.sum())} images)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
