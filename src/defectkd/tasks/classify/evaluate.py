"""Evaluation of a saved classifier (metrics, confusion matrix) and its PyTorch runtime for `predict`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from defectkd.core.errors import DataError
from defectkd.core.tensors import image_tensor
from defectkd.deploy.classify import resize_square
from defectkd.models.loading import load_checkpoint_model
from defectkd.tasks.classify.data import ClassifySource, ClassSample
from defectkd.tasks.classify.dataset import ClassifyDataset
from defectkd.tasks.classify.metrics import ClassificationMetrics, plot_confusion


@torch.no_grad()
def evaluate_classifier(model: torch.nn.Module, samples: list[ClassSample], class_names: list[str], imgsz: int,
                        batch: int = 32, progress: Callable[[], None] | None = None,
                        confusion_png: Path | None = None, title: str = "") -> dict:
    """Top-1 predictions of every sample (resized to imgsz x imgsz): accuracy, macro and per-class
    precision/recall/F1 and the confusion matrix (see metrics.classify); optionally its PNG."""
    model.eval()
    dataset = ClassifyDataset(samples, imgsz, transform=None, cache=False)
    metrics = ClassificationMetrics(class_names)
    for start in range(0, len(dataset), batch):
        items = [dataset[i] for i in range(start, min(start + batch, len(dataset)))]
        x = torch.stack([it[0] for it in items])
        y = torch.stack([it[1] for it in items])
        metrics.update(model(x).float(), y)
        if progress:
            for _ in items:
                progress()
    result = metrics.compute()
    if confusion_png is not None:
        plot_confusion(result["confusion"], class_names, confusion_png, title)
    return result


def model_class_names(hp: dict, fallback: list[str] | None = None) -> list[str]:
    """Class names a classifier was trained with (output order); `fallback` (the data's) or indices when
    the file does not record them (e.g. a hand-made deploy file)."""
    names = (hp.get("config") or {}).get("class_names")
    classes = int((hp.get("model_kwargs") or {}).get("classes", len(names or fallback or [])))
    if names:
        return list(names)
    if fallback and len(fallback) == classes:
        return list(fallback)
    return [str(i) for i in range(classes)]


def samples_for_model(source: ClassifySource, samples: list[ClassSample], names: list[str]) -> list[ClassSample]:
    """The samples with labels in the model's class order; refuses classes the model does not know."""
    unknown = sorted({source.classes[s.label] for s in samples} - set(names))
    if unknown:
        raise DataError(f"{source.root}: class {unknown[0]!r} is not among the model's classes "
                        f"({', '.join(names)})")
    index = {n: i for i, n in enumerate(names)}
    return [ClassSample(s.image, index[source.classes[s.label]]) for s in samples]


class TorchClassifier:
    """Eager PyTorch inference for `predict`: same interface as deploy.classify.OnnxClassifier."""

    def __init__(self, weights: str | Path) -> None:
        self.model, hp = load_checkpoint_model(weights)
        self.class_names = model_class_names(hp)
        self.imgsz = int(hp.get("config", {}).get("imgsz", 224))
        self.model_name = hp["model_name"]

    @torch.no_grad()
    def classify(self, rgb: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        t0 = time.perf_counter()
        img = resize_square(rgb, self.imgsz)
        x = image_tensor(img)[None]
        t1 = time.perf_counter()
        logits = self.model(x)
        t2 = time.perf_counter()
        probs = torch.softmax(logits.float(), dim=1)[0].numpy()
        t3 = time.perf_counter()
        return probs, {"preprocess_ms": (t1 - t0) * 1e3, "inference_ms": (t2 - t1) * 1e3,
                       "postprocess_ms": (t3 - t2) * 1e3}
