"""Evaluation of a saved detector (COCO mAP, PR curves, drawn examples) and its PyTorch runtime for `predict`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from defectkd.core.tensors import image_tensor
from defectkd.deploy.detect import draw_detections
from defectkd.models.loading import load_checkpoint_model
from defectkd.tasks.detect.data import DetectSample
from defectkd.tasks.detect.dataset import DetectDataset
from defectkd.tasks.detect.metrics import DetectionMetrics, plot_pr_curves


def _numpy(d: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: d[k].detach().cpu().numpy() for k in ("boxes", "scores", "labels") if k in d}


@torch.no_grad()
def evaluate_detector(model: torch.nn.Module, samples: list[DetectSample], class_names: list[str], batch: int = 4,
                      progress: Callable[[], None] | None = None, pr_png: Path | None = None,
                      examples: Path | None = None, n_examples: int = 8, draw_threshold: float = 0.25,
                      title: str = "") -> dict:
    """COCO metrics of `model` (eval mode, its own score threshold) on `samples` (see metrics.detect); optionally
    the PR-curve PNG and the first `n_examples` images with true (green) and predicted boxes (score >=
    `draw_threshold`) drawn to `examples/`."""
    model.eval()
    dataset = DetectDataset(samples, None, cache=False)
    metrics = DetectionMetrics(class_names)
    if examples is not None:
        examples.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(dataset), batch):
        items = [dataset[i] for i in range(start, min(start + batch, len(dataset)))]
        images, targets = [it[0] for it in items], [it[1] for it in items]
        preds = model(images)
        metrics.update(preds, targets)
        for (x, target, i), pred in zip(items, preds, strict=True):
            if examples is not None and i < n_examples:
                dets = {k: v[pred["scores"] >= draw_threshold] for k, v in _numpy(pred).items()}
                rgb = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                drawn = draw_detections(rgb, dets, class_names, truth=_numpy(target))
                cv2.imwrite(str(examples / f"{samples[i].image.stem}.jpg"), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            if progress:
                progress()
    result = metrics.compute()
    if pr_png is not None:
        plot_pr_curves(metrics.pr_curves(), pr_png, title)
    return result


def model_class_names(hp: dict) -> list[str]:
    names = (hp.get("config") or {}).get("class_names")
    classes = int((hp.get("model_kwargs") or {}).get("classes", len(names or [])))
    return list(names) if names else [str(i) for i in range(classes)]


class TorchDetector:
    """Eager PyTorch inference for `predict`: same interface as deploy.detect.OnnxDetector. torchvision's
    pipeline runs whole (resize, network, score threshold, top-k, NMS): `inference_ms` covers it all."""

    def __init__(self, weights: str | Path) -> None:
        self.model, hp = load_checkpoint_model(weights)
        self.class_names = model_class_names(hp)
        self.threshold = float(hp.get("config", {}).get("threshold", 0.25))
        self.model_name = hp["model_name"]

    @torch.no_grad()
    def detect(self, rgb: np.ndarray, threshold: float | None = None) -> tuple[dict[str, np.ndarray], dict]:
        t0 = time.perf_counter()
        x = image_tensor(rgb)
        self.model.net.score_thresh = self.threshold if threshold is None else threshold
        t1 = time.perf_counter()
        out = self.model([x])[0]
        t2 = time.perf_counter()
        dets = _numpy(out)
        t3 = time.perf_counter()
        return dets, {"preprocess_ms": (t1 - t0) * 1e3, "inference_ms": (t2 - t1) * 1e3,
                      "postprocess_ms": (t3 - t2) * 1e3}
