"""Measurements an inspector reports from a crack mask: share of pixels, area, crack length."""

from __future__ import annotations

import cv2
import numpy as np
from skimage.morphology import skeletonize

_DIAGONAL = float(np.sqrt(2.0))


def skeleton_lengths(skeleton: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Length in pixels of each labelled part of a one-pixel-wide skeleton: 1 per straight step and
    sqrt(2) per diagonal step between neighbouring skeleton pixels, plus 1 for the end pixel (a line of
    k pixels is k long). A diagonal step is skipped where a corner pixel already links the two, so
    L-shaped corners are not counted twice."""
    s = skeleton.astype(bool)
    lengths = np.zeros(n, np.float64)
    steps = [
        (s[:, 1:] & s[:, :-1], labels[:, :-1], 1.0),
        (s[1:, :] & s[:-1, :], labels[:-1, :], 1.0),
        (s[1:, 1:] & s[:-1, :-1] & ~s[:-1, 1:] & ~s[1:, :-1], labels[:-1, :-1], _DIAGONAL),
        (s[1:, :-1] & s[:-1, 1:] & ~s[:-1, :-1] & ~s[1:, 1:], labels[:-1, 1:], _DIAGONAL),
    ]
    for where, owner, weight in steps:
        lengths += weight * np.bincount(owner[where].ravel(), minlength=n)[:n]
    has_pixels = np.bincount(labels[s].ravel(), minlength=n)[:n] > 0
    return lengths + has_pixels


def crack_stats(mask: np.ndarray) -> dict:
    """Crack-pixel ratio, crack area (px), number of cracks (8-connected regions) and the length of the
    longest one, measured along its skeleton (px)."""
    mask = mask.astype(bool)
    area = int(mask.sum())
    if area == 0:
        return {"crack_ratio": 0.0, "area_px": 0, "cracks": 0, "longest_crack_px": 0.0}
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    lengths = skeleton_lengths(skeletonize(mask), labels, n)
    return {"crack_ratio": area / mask.size, "area_px": area, "cracks": n - 1,
            "longest_crack_px": round(float(lengths[1:].max()), 1)}
