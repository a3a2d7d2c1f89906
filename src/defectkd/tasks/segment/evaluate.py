"""Evaluation of a saved segmentation model on labelled samples: metrics and overlay images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from defectkd.data.layouts import Sample
from defectkd.deploy.visualize import overlay
from defectkd.engine.layout import nhwc, nhwc_model
from defectkd.models import crack_probability
from defectkd.models.loading import load_checkpoint_model
from defectkd.tasks.segment.dataset import SegmentationDataset
from defectkd.tasks.segment.metrics import SegmentationMetrics, plot_pr_curve


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, samples: list[Sample], threshold: float = 0.5, tolerant: bool = True,
                   overlays: Path | None = None, progress: Callable[[], None] | None = None,
                   pr_curve: Path | None = None) -> dict:
    """Full-image inference on every sample, metrics over the set (see metrics.segment);
    optionally overlay images (a folder) and a precision-recall plot (a PNG path)."""
    model = nhwc_model(model.eval())
    dataset = SegmentationDataset(samples, transform=None, cache=False)
    metrics = SegmentationMetrics(threshold=threshold, tolerant=tolerant)
    if overlays is not None:
        overlays.mkdir(parents=True, exist_ok=True)
    for i in range(len(dataset)):
        x, y, _ = dataset[i]
        prob = crack_probability(model(nhwc(x[None])).float())[0]
        metrics.update(prob, y)
        if overlays is not None:
            img = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            vis = overlay(img, prob.numpy() >= threshold, y.numpy() > 0.5)
            cv2.imwrite(str(overlays / f"{samples[i].image.stem}.jpg"), cv2.cvtColor(vis, cv2.COLOR_RGB2BGR))
        if progress:
            progress()
    if pr_curve is not None:
        plot_pr_curve(metrics, pr_curve, title=f"{len(dataset)} images")
    return metrics.compute()


def evaluate_weights(weights: str | Path, samples: list[Sample], **kwargs) -> dict:
    model, _ = load_checkpoint_model(weights)
    return evaluate_model(model, samples, **kwargs)
