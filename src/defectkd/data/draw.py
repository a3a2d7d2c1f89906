"""Crack strokes: the tapering, branching random walk that draws synthetic cracks (segment's generator) and the
crack-texture corruption (a distractor on real images)."""

from __future__ import annotations

import math

import cv2


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
