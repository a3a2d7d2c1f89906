"""PyTorch runtime for `predict` with a .pt file: same interface as deploy.runtime.OnnxSegmenter."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import torch

from defectkd.core.tensors import image_tensor
from defectkd.engine.layout import nhwc, nhwc_model
from defectkd.models import crack_probability
from defectkd.models.loading import load_checkpoint_model


class TorchSegmenter:
    """Eager PyTorch inference at the image's own size (the model pads to its stride itself)."""

    def __init__(self, weights: str | Path, imgsz: int | None = None) -> None:
        """`imgsz`: resize every image to imgsz x imgsz and the probability back, as a static export does."""
        model, hp = load_checkpoint_model(weights)
        self.model = nhwc_model(model)
        self.threshold = float(hp.get("config", {}).get("threshold", 0.5))
        self.model_name = hp["model_name"]
        self.imgsz = imgsz

    @torch.no_grad()
    def segment(self, rgb: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        t0 = time.perf_counter()
        h, w = rgb.shape[:2]
        if self.imgsz and (h, w) != (self.imgsz, self.imgsz):
            rgb = cv2.resize(rgb, (self.imgsz, self.imgsz), interpolation=cv2.INTER_LINEAR)
        x = image_tensor(rgb)[None]
        t1 = time.perf_counter()
        logits = self.model(nhwc(x))
        t2 = time.perf_counter()
        prob = crack_probability(logits.float())[0].numpy()
        if prob.shape != (h, w):
            prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
        t3 = time.perf_counter()
        return prob, {"preprocess_ms": (t1 - t0) * 1e3, "inference_ms": (t2 - t1) * 1e3,
                      "postprocess_ms": (t3 - t2) * 1e3}
