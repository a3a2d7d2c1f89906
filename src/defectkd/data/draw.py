"""Drawing primitives shared by the synthetic generators and the corruptions: the tapering, branching crack
stroke (synthetic cracks; the crack-texture distractor on real images) and rolled-steel backgrounds."""

from __future__ import annotations

import math

import cv2
import numpy as np


def crack_walk(rng, start, angle, length, width, size, mask, depth, max_depth):
    """Draw one tapering random-walk crack (and its branches) into `mask` as 0..1 coverage."""
    x, y = start
    step = 2.0
    n = int(length / step)
    heading = angle
    drift = rng.normal(0, 0.02)
    for i in range(n):
        t = i / max(n - 1, 1)
        w = max(1.0, width * (1.0 - t) ** 0.6 + rng.normal(0, 0.3))
        heading += drift + rng.normal(0, 0.25)
        heading = 0.85 * heading + 0.15 * angle  # keep the overall direction, wiggle locally
        nx, ny = x + step * math.cos(heading), y + step * math.sin(heading)
        cv2.line(mask, (round(x), round(y)), (round(nx), round(ny)), 1.0, thickness=int(round(w)), lineType=cv2.LINE_8)
        x, y = nx, ny
        if not (-10 < x < size + 10 and -10 < y < size + 10):
            break
        if depth < max_depth and rng.random() < 0.012:
            side = rng.choice([-1.0, 1.0])
            crack_walk(rng, (x, y), heading + side * rng.uniform(0.35, 1.0), length * rng.uniform(0.2, 0.5),
                       max(1.0, w * rng.uniform(0.5, 0.8)), size, mask, depth + 1, max_depth)


def steel_field(rng: np.random.Generator, h: int, w: int, size: int) -> np.ndarray:
    small = rng.standard_normal((max(2, h), max(2, w))).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def steel_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Grey rolled steel in [0, 1]: streaks along x, grain, a gradient."""
    base = rng.uniform(0.42, 0.62)
    streaks = steel_field(rng, max(2, size // 3), max(2, size // 24), size)  # long along x, short along y
    grain = rng.standard_normal((size, size)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    gx, gy = rng.uniform(-0.15, 0.15, 2)
    img = base + 0.03 * streaks + rng.uniform(0.015, 0.035) * grain + gx * (xx - 0.5) + gy * (yy - 0.5)
    return cv2.GaussianBlur(img, (0, 0), 0.5)
