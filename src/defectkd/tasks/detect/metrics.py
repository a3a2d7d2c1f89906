"""COCO detection metrics (torchmetrics MeanAveragePrecision on the faster_coco_eval backend when it is installed,
else pycocotools) and the precision-recall plot.

- `map`: AP averaged over IoU 0.50:0.05:0.95 (COCO's primary metric), `map_50`, `map_75`;
- `map_small`, `map_medium`, `map_large`: AP of boxes with area < 32^2, < 96^2, larger (pixels of the image as
  given, not of the resized model input);
- `mar_100`: recall with at most 100 detections per image;
- `per_class`: per class name, `ap` (0.50:0.95), `ap_50`, `ar_100` and `boxes` (true boxes);
- -1 where nothing can be measured (no true box of that class or size), as COCOeval reports it.
Detections are scored as given: the detector's own score threshold (0.05) applies before.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torchmetrics.detection import MeanAveragePrecision

SUMMARY = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100")
# COCOeval's own thresholds, in float64: torchmetrics' defaults come from torch.linspace in float32 (0.3 becomes
# 0.30000001), which moves the recall points where a class's recall is exactly a multiple of 0.01 (e.g. 3 of 10
# boxes) and so differs from pycocotools by up to ~1e-3 AP.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10).tolist()
REC_THRESHOLDS = np.linspace(0.0, 1.0, 101).tolist()


def coco_backend() -> str:
    return "faster_coco_eval" if importlib.util.find_spec("faster_coco_eval") else "pycocotools"


def _cpu(d: dict) -> dict:
    return {k: v.detach().cpu().float() if k == "boxes" or k == "scores" else v.detach().cpu().long()
            for k, v in d.items() if k in ("boxes", "scores", "labels")}


class DetectionMetrics:
    """Accumulate with `update(predictions, targets)` (torchvision's dicts, one per image); `compute()` -> dict."""

    def __init__(self, class_names: list[str]) -> None:
        self.class_names = list(class_names)
        self.reset()

    def reset(self) -> None:
        self.metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True,
                                           extended_summary=True, backend=coco_backend(),
                                           iou_thresholds=IOU_THRESHOLDS, rec_thresholds=REC_THRESHOLDS)
        self.images = 0
        self.true_boxes = np.zeros(len(self.class_names), np.int64)
        self.precision: np.ndarray | None = None  # (IoU, recall, class, area, max dets) after compute()
        self.classes: list[int] = []

    def update(self, predictions: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]]) -> None:
        preds, truth = [_cpu(p) for p in predictions], [_cpu(t) for t in targets]
        self.metric.update(preds, truth)
        self.images += len(truth)
        for t in truth:
            self.true_boxes += np.bincount(t["labels"].numpy(), minlength=len(self.class_names))[:len(self.class_names)]

    def compute(self) -> dict:
        if not self.images:
            return {"images": 0}
        r = self.metric.compute()
        out: dict = {"images": self.images, "boxes": int(self.true_boxes.sum())}
        out.update({k: float(r[k]) for k in SUMMARY})
        self.precision = r["precision"].numpy()
        self.classes = [int(c) for c in r["classes"].reshape(-1)]
        ap = r["map_per_class"].reshape(-1).tolist()
        ar = r["mar_100_per_class"].reshape(-1).tolist()
        per_class = {name: {"ap": -1.0, "ap_50": -1.0, "ar_100": -1.0, "boxes": int(self.true_boxes[i])}
                     for i, name in enumerate(self.class_names)}
        for j, c in enumerate(self.classes):
            if 0 <= c < len(self.class_names):
                p = self.precision[0, :, j, 0, -1]
                per_class[self.class_names[c]].update(
                    ap=float(ap[j]), ap_50=float(p[p > -1].mean()) if (p > -1).any() else -1.0, ar_100=float(ar[j]))
        out["per_class"] = per_class
        out["backend"] = coco_backend()
        return out

    def pr_curves(self) -> dict[str, np.ndarray]:
        """Precision at the 101 COCO recall points, IoU 0.5, all areas, 100 detections: per class with true boxes."""
        if self.precision is None:
            return {}
        curves = {}
        for j, c in enumerate(self.classes):
            p = self.precision[0, :, j, 0, -1]
            if 0 <= c < len(self.class_names) and (p > -1).any():
                curves[self.class_names[c]] = np.where(p > -1, p, np.nan)
        return curves


def plot_pr_curves(curves: dict[str, np.ndarray], out: str | Path, title: str = "") -> Path:
    """Precision-recall curves at IoU 0.5, one per class, with the mean (AP50 = area under each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recall = np.linspace(0, 1, 101)
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, p in curves.items():
        ax.plot(recall, p, lw=1.2, label=f"{name} ({np.nanmean(p):.3f})")
    if curves:
        mean = np.nanmean(np.stack(list(curves.values())), axis=0)
        ax.plot(recall, mean, "k", lw=2.5, label=f"all classes ({np.nanmean(mean):.3f} mAP@0.5)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title or "precision-recall at IoU 0.5")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
