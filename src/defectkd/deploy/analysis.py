"""Measurements an inspector reports from a crack mask: share of pixels, area, crack length."""

from __future__ import annotations

import cv2
import numpy as np

try:  # scikit-image when installed (the PC); an edge device without it thins with numpy below
    from skimage.morphology import skeletonize
except ImportError:  # pragma: no cover - exercised through thin() directly in the tests
    skeletonize = None

_DIAGONAL = float(np.sqrt(2.0))


def _zhang_suen_table() -> np.ndarray:
    """Per 8-neighbourhood code (bits NW=1, N=2, NE=4, E=8, SE=16, S=32, SW=64, W=128): 1 when the pixel may go
    in the first sub-iteration, 2 in the second, 3 in both (Zhang & Suen 1984 with Lu & Wang's 1986 B >= 3,
    which keeps two-pixel-thick diagonal lines)."""
    table = np.zeros(256, np.uint8)
    for code in range(256):
        p = [(code >> k) & 1 for k in (1, 2, 3, 4, 5, 6, 7, 0)]  # P2..P9, clockwise from north
        b = sum(p)
        a = sum(1 for i in range(8) if not p[i] and p[(i + 1) % 8])
        if not (3 <= b <= 6 and a == 1):
            continue
        p2, _, p4, _, p6, _, p8, _ = p
        table[code] = (1 if not (p2 and p4 and p6) and not (p4 and p6 and p8) else 0) + \
                      (2 if not (p2 and p4 and p8) and not (p2 and p6 and p8) else 0)
    return table


_ZS = _zhang_suen_table()


def thin(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide skeleton with numpy only (Zhang-Suen parallel thinning), for devices without scikit-image."""
    ys, xs = np.nonzero(mask)
    out = np.zeros(mask.shape, bool)
    if ys.size == 0:
        return out
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    img = np.pad(mask[y0:y1, x0:x1].astype(np.uint8), 1)
    changed = True
    while changed:
        changed = False
        for step in (1, 2):
            c = img[1:-1, 1:-1]
            code = (img[:-2, :-2] | img[:-2, 1:-1] << 1 | img[:-2, 2:] << 2 | img[1:-1, 2:] << 3
                    | img[2:, 2:] << 4 | img[2:, 1:-1] << 5 | img[2:, :-2] << 6 | img[1:-1, :-2] << 7)
            remove = (c == 1) & ((_ZS[code] & step) > 0)
            if remove.any():
                c[remove] = 0
                changed = True
    out[y0:y1, x0:x1] = _drop_stair_corners(img.astype(bool))[1:-1, 1:-1]
    return out


# a pixel joining two 4-neighbours that touch diagonally, with nothing on the other side, is a stair corner
_STAIRS = (((-1, 0), (0, 1), ((1, 0), (0, -1), (1, -1))), ((0, 1), (1, 0), ((-1, 0), (0, -1), (-1, -1))),
           ((1, 0), (0, -1), ((-1, 0), (0, 1), (-1, 1))), ((0, -1), (-1, 0), ((1, 0), (0, 1), (1, 1))))


def _drop_stair_corners(img: np.ndarray) -> np.ndarray:
    """Remove the corner pixels of 4-connected staircases left by the thinning (a one-pixel border is assumed),
    so a diagonal crack is measured along its diagonal steps, as scikit-image's skeleton is."""
    h, w = img.shape

    def at(d):
        return img[1 + d[0]:h - 1 + d[0], 1 + d[1]:w - 1 + d[1]]

    centre = img[1:-1, 1:-1]
    for a, b, others in _STAIRS:
        corner = centre & at(a) & at(b)
        for d in others:
            corner &= ~at(d)
        centre[corner] = False
    return img


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
    lengths = skeleton_lengths(skeletonize(mask) if skeletonize is not None else thin(mask), labels, n)
    return {"crack_ratio": area / mask.size, "area_px": area, "cracks": n - 1,
            "longest_crack_px": round(float(lengths[1:].max()), 1)}
