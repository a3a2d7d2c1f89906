"""Heat-map of a robustness report: corruption x severity Dice, one panel per model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_robustness(models: list[dict], corruptions: Sequence[str], severities: Sequence[int],
                    out: str | Path) -> None:
    """One panel per model (side by side), each cell annotated with its Dice; title: clean Dice and mDS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(models)
    width = 1.2 + 0.65 * len(severities)
    fig, axes = plt.subplots(1, n, figsize=(1.6 + width * n, 0.9 + 0.42 * len(corruptions)), squeeze=False)
    image = None
    for ax, entry in zip(axes[0], models, strict=True):
        dice = {(r["corruption"], r["severity"]): r["dice"] for r in entry["cells"]}
        grid = np.array([[dice[(c, s)] for s in severities] for c in corruptions])
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(severities)), [str(s) for s in severities])
        ax.set_yticks(range(len(corruptions)), corruptions if ax is axes[0][0] else [""] * len(corruptions))
        ax.set_xlabel("severity")
        ax.set_title(f"{entry['label']}\nclean {entry['clean_dice']:.3f}, mDS {entry['mDS']:.3f}", fontsize=8)
    fig.colorbar(image, ax=list(axes[0]), label="crack Dice", shrink=0.8)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
