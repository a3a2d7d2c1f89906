"""ONNX Runtime inference for exported students (no torch).

An exported model takes RGB float images in [0, 1], NCHW, and returns logits (N, C, H, W); it
normalises its own input. A static export wants its export size: images are resized to it and the
crack probability is resized back. A dynamic export runs at the image's own size.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np


def crack_probability_np(logits: np.ndarray) -> np.ndarray:
    """(C, H, W) logits -> (H, W) crack probability: sigmoid for 1 channel, softmax channel 1 otherwise."""
    if logits.shape[0] == 1:
        return 1.0 / (1.0 + np.exp(-logits[0]))
    z = logits - logits.max(axis=0, keepdims=True)
    e = np.exp(z)
    return e[1] / e.sum(axis=0)


class OnnxSegmenter:
    """`segment(rgb) -> (crack probability (H, W), {"preprocess_ms", "inference_ms", "postprocess_ms"})`."""

    def __init__(self, path: str | Path, threads: int | None = None, providers: list[str] | None = None,
                 backend=None) -> None:
        """`backend`: one already open on `path` (deploy.backends); else opened from the file name."""
        from defectkd.deploy.backends import open_backend

        self.path = Path(path)
        self.backend = backend or open_backend(self.path, threads, providers)
        shape = self.backend.input_shape
        self.fixed_size = (shape[2], shape[3]) if shape[2] is not None and shape[3] is not None else None
        meta = self.backend.metadata
        self.metadata = dict(meta)
        self.threshold = float(meta.get("threshold", 0.5))
        self.model_name = meta.get("model", self.path.stem)

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 (H, W, 3) -> the model's input (1, 3, H', W') float32 in [0, 1]."""
        h, w = rgb.shape[:2]
        img = rgb if self.fixed_size is None or self.fixed_size == (h, w) else cv2.resize(
            rgb, (self.fixed_size[1], self.fixed_size[0]), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)

    def segment(self, rgb: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        t0 = time.perf_counter()
        h, w = rgb.shape[:2]
        x = self.prepare(rgb)
        t1 = time.perf_counter()
        logits = self.backend.run(x)[0][0]
        t2 = time.perf_counter()
        prob = crack_probability_np(logits.astype(np.float32))
        if prob.shape != (h, w):
            prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
        t3 = time.perf_counter()
        return prob, {"preprocess_ms": (t1 - t0) * 1e3, "inference_ms": (t2 - t1) * 1e3,
                      "postprocess_ms": (t3 - t2) * 1e3}
