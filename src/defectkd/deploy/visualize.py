"""Overlay images: where a person would rather look than read."""

from __future__ import annotations

import numpy as np


def overlay(image: np.ndarray, pred: np.ndarray, truth: np.ndarray | None) -> np.ndarray:
    """RGB overlay: green = correct crack, red = false alarm, blue = missed crack (prediction only: red)."""
    out = image.astype(np.float32).copy()
    colours = []
    if truth is None:
        colours.append((pred, (255, 0, 0)))
    else:
        colours += [(pred & truth, (0, 255, 0)), (pred & ~truth, (255, 0, 0)), (~pred & truth, (0, 90, 255))]
    for where, colour in colours:
        out[where] = 0.35 * out[where] + 0.65 * np.array(colour, np.float32)
    return out.astype(np.uint8)
