"""Measurements an inspector reports from a crack mask: share of pixels, area, crack length."""

from __future__ import annotations

import cv2
import numpy as np
from skimage.morphology import skeletonize

_DIAGONAL = float(np.sqrt(2.0))


def skeleton_length(skeleton: np.ndarray) -> float:
    """Length in pixels of a one-pixel-wide skeleton: 1 per straight step, sqrt(2) per diagonal step,
    each step between neighbouring skeleton pixels counted once."""
    s = skeleton.astype(bool)
    straight = (s[:, 1:] & s[:, :-1]).sum() + (s[1:, :] & s[:-1, :]).sum()
    diagonal = (s[1:, 1:] & s[:-1, :-1]).sum() + (s[1:, :-1] & s[:-1, 1:]).sum()
    if s.sum() == 1:
        return 1.0
    return float(straight + _DIAGONAL * diagonal)


def crack_stats(mask: np.ndarray) -> dict:
    """Crack-pixel ratio, crack area (px), number of cracks (8-connected regions) and the length of the
    longest one, measured along its skeleton (px)."""
    mask = mask.astype(bool)
    area = int(mask.sum())
    if area == 0:
        return {"crack_ratio": 0.0, "area_px": 0, "cracks": 0, "longest_crack_px": 0.0}
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    skeleton = skeletonize(mask)
    longest = 0.0
    for k in range(1, n):
        region = labels == k
        ys, xs = np.nonzero(region)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        longest = max(longest, skeleton_length(skeleton[box] & region[box]))
    return {"crack_ratio": area / mask.size, "area_px": area, "cracks": n - 1, "longest_crack_px": round(longest, 1)}
