"""Overlay images: where a person would rather look than read."""

from __future__ import annotations

import cv2
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


def label(image: np.ndarray, text: str) -> np.ndarray:
    """RGB copy with TEXT in the top-left corner on a dark band (a classifier's video overlay)."""
    out = np.ascontiguousarray(image).copy()
    scale = max(0.4, out.shape[1] / 640)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (w + 8, h + base + 8), (0, 0, 0), -1)
    cv2.putText(out, text, (4, h + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out
