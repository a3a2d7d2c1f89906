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

    def __init__(self, path: str | Path, threads: int | None = None, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options,
                                            providers=providers or ["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        h, w = inp.shape[2], inp.shape[3]
        self.fixed_size = (int(h), int(w)) if isinstance(h, int) and isinstance(w, int) else None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = dict(meta)
        self.threshold = float(meta.get("threshold", 0.5))
        self.model_name = meta.get("model", self.path.stem)

    def segment(self, rgb: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        t0 = time.perf_counter()
        h, w = rgb.shape[:2]
        img = rgb if self.fixed_size is None or self.fixed_size == (h, w) else cv2.resize(
            rgb, (self.fixed_size[1], self.fixed_size[0]), interpolation=cv2.INTER_LINEAR)
        x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)
        t1 = time.perf_counter()
        logits = self.session.run(None, {self.input_name: x})[0][0]
        t2 = time.perf_counter()
        prob = crack_probability_np(logits.astype(np.float32))
        if prob.shape != (h, w):
            prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
        t3 = time.perf_counter()
        return prob, {"preprocess_ms": (t1 - t0) * 1e3, "inference_ms": (t2 - t1) * 1e3,
                      "postprocess_ms": (t3 - t2) * 1e3}
