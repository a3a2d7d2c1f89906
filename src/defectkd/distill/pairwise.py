"""Pair-wise similarity distillation, the feature term of RFKD, after Structured KD (Liu et al.
CVPR 2019, `CriterionPairWiseforWholeFeatAfterPool`).

Both maps are average-pooled to the same grid of cells, each cell's feature vector is
l2-normalised over channels, S = F^T F is the (cells x cells) cosine-similarity matrix, and
L = mean over the batch and all cell pairs of (S_s - S_t)^2. Only similarities are compared, so
the channel counts need not match (no adapter, no parameters).

Grid: `grid=(gh, gw)` (or an int) fixes it. Otherwise `scale` keeps SKD's meaning: a cell spans
`scale` of the teacher map per axis (cell = max(1, int(H_t * scale)), gh = ceil(H_t / cell)), so
the default 0.5 gives 2x2 cells, SKD's `pool_scale` default, and a small scale (1 / H_t) keeps every
position. Differences from SKD: average pooling rather than max pooling (as RFKD's description),
adaptive pooling so two maps of any H, W meet on one grid, and the normaliser is not detached (the
gradient is that of the loss as written).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from defectkd.distill.adapters import check_pair, full_precision


def _similarity(feat: torch.Tensor) -> torch.Tensor:
    f = F.normalize(feat.flatten(2), dim=1)  # (N, C, cells), unit vector per cell
    return f.transpose(1, 2) @ f  # (N, cells, cells)


class PairwiseLoss(nn.Module):
    """`loss(student_feat, teacher_feat)`: both (N, C, H, W); any channels and sizes."""

    def __init__(self, scale: float = 0.5, grid: int | tuple[int, int] | None = None) -> None:
        super().__init__()
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        if grid is not None:
            grid = (grid, grid) if isinstance(grid, int) else tuple(grid)
            if len(grid) != 2 or any(not isinstance(g, int) or g < 1 for g in grid):
                raise ValueError(f"grid must be a positive int or a pair (gh, gw), got {grid!r}")
        self.scale = float(scale)
        self.grid = grid

    def grid_for(self, h: int, w: int) -> tuple[int, int]:
        """The (gh, gw) grid used for a teacher map of h x w."""
        if self.grid is not None:
            return self.grid
        ch, cw = max(1, int(h * self.scale)), max(1, int(w * self.scale))
        return math.ceil(h / ch), math.ceil(w / cw)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        check_pair("pairwise", student, teacher)
        teacher = teacher.detach()
        size = self.grid_for(*teacher.shape[-2:])
        with full_precision(student):
            s = F.adaptive_avg_pool2d(student.float(), size)
            t = F.adaptive_avg_pool2d(teacher.float(), size)
            return (_similarity(s) - _similarity(t)).pow(2).mean()

    def extra_repr(self) -> str:
        return f"scale={self.scale}, grid={self.grid}"
