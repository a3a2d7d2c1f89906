"""Robustness evaluation: models on a clean split and on every corruption x severity of it.

Each image is read once and corrupted in memory once per cell (`data.corruptions.corrupt`, seeded
by `corruption_seed(seed, stem, corruption, severity)`), and every model sees that same corrupted
image; masks stay as they are. Per model and cell: pooled crack Dice (= F1) and IoU at the model's
threshold (`metrics.SegmentationMetrics`, no tolerant metrics). mDS = mean Dice over all cells.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from defectkd.core.tensors import image_tensor
from defectkd.data.corruptions import corrupt, corruption_seed
from defectkd.data.layouts import Sample
from defectkd.engine.layout import nhwc, nhwc_model
from defectkd.models import crack_probability
from defectkd.tasks.segment.dataset import SegmentationDataset
from defectkd.tasks.segment.metrics import SegmentationMetrics

CLEAN = "clean"  # the corruption name of the uncorrupted rows (severity 0)


def weights_labels(paths: Sequence[str | Path]) -> list[str]:
    """Short distinct names for weights files: <run>/<file stem> inside a run folder, else the file stem;
    a repeated name gets #2, #3, ..."""
    labels, seen = [], {}
    for p in map(Path, paths):
        label = f"{p.parent.parent.name}/{p.stem}" if p.parent.name == "weights" and p.parent.parent.name else p.stem
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return labels


def _probability(model: torch.nn.Module, image: np.ndarray) -> torch.Tensor:
    """Crack probability (H, W); the same tensor path as `evaluate_model`, so clean scores equal `val`."""
    x = image_tensor(image)
    return crack_probability(model(nhwc(x[None])).float())[0]


@torch.no_grad()
def evaluate_robustness(models: Sequence[torch.nn.Module], thresholds: Sequence[float], samples: list[Sample],
                        corruptions: Sequence[str], severities: Sequence[int], seed: int = 0,
                        progress: Callable[[], None] | None = None) -> list[dict]:
    """Per model: {"clean_dice", "clean_iou", "mDS", "per_corruption": {name: mean Dice}, "cells": [rows]},
    rows being {"corruption", "severity", "dice", "iou"} (the clean row first, severity 0)."""
    cells = [(CLEAN, 0)] + [(name, s) for name in corruptions for s in severities]
    meters = [[SegmentationMetrics(threshold=t, tolerant=False) for _ in cells] for t in thresholds]
    for model in models:
        nhwc_model(model.eval())
    dataset = SegmentationDataset(samples, transform=None, cache=False)
    for i, sample in enumerate(samples):
        image, mask = dataset.load(i)
        truth = torch.from_numpy(mask).float()
        for k, (name, severity) in enumerate(cells):
            seen = image if name == CLEAN else corrupt(image, name, severity,
                                                       corruption_seed(seed, sample.image.stem, name, severity))
            for m, model in enumerate(models):
                meters[m][k].update(_probability(model, seen), truth)
        if progress:
            progress()
    results = []
    for per_cell in meters:
        rows = []
        for (name, severity), meter in zip(cells, per_cell, strict=True):
            scores = meter.compute()
            rows.append({"corruption": name, "severity": severity, "dice": scores["f1"], "iou": scores["iou"]})
        corrupted = rows[1:]
        results.append({
            "clean_dice": rows[0]["dice"], "clean_iou": rows[0]["iou"],
            "mDS": float(np.mean([r["dice"] for r in corrupted])),
            "per_corruption": {name: float(np.mean([r["dice"] for r in corrupted if r["corruption"] == name]))
                               for name in corruptions},
            "cells": rows,
        })
    return results


def write_robustness(report: dict, out: Path) -> dict[str, str]:
    """robustness.csv (weights, label, corruption, severity, dice, iou; clean rows with severity 0),
    robustness.json (the whole report) and robustness.png (heat-maps) in OUT; returns the file paths."""
    from defectkd.tasks.segment.robustness_plot import plot_robustness

    files = {"csv": str(out / "robustness.csv"), "json": str(out / "robustness.json"),
             "png": str(out / "robustness.png")}
    with open(files["csv"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["weights", "label", "corruption", "severity", "dice", "iou"])
        for entry in report["models"]:
            for row in entry["cells"]:
                writer.writerow([entry["weights"], entry["label"], row["corruption"], row["severity"],
                                 f"{row['dice']:.6f}", f"{row['iou']:.6f}"])
    Path(files["json"]).write_text(json.dumps({**report, "files": files}, indent=1))
    plot_robustness(report["models"], report["corruptions"], report["severities"], files["png"])
    return files
