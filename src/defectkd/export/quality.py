"""The one figure that says whether an exported file still does its job, measured the same way for
every runtime (PyTorch, ONNX Runtime FP32/INT8, OpenVINO, TensorRT) through their common interface:

- segmentation: crack F1 over all pixels at the model's threshold (the `f1` of `defectkd val`);
- classification: top-1 accuracy;
- detection: COCO mAP at IoU 0.5 (scores >= 0.05, as for a PR curve).

Also picks the images: training images for INT8 calibration, the validation split for `--max-drop`
(the same split training held out), any split for `defectkd benchmark`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defectkd.core.errors import DataError
from defectkd.data.io import read_image, read_mask

METRIC_NAMES = {"segment": "F1", "classify": "accuracy", "detect": "mAP50"}
DETECT_SCORE_FLOOR = 0.05


@dataclass
class EvalImages:
    task: str
    calibration: list[Path]  # training images
    samples: list  # labelled samples of the requested split (Sample, ClassSample or DetectSample)
    class_names: list[str]


def model_task(hp: dict) -> str:
    from defectkd.tasks.classify.val import is_classifier
    from defectkd.tasks.detect.val import is_detector

    return "classify" if is_classifier(hp) else "detect" if is_detector(hp) else "segment"


def eval_images(hp: dict, data: str | Path | None, split: str = "val") -> EvalImages:
    """Training images and the SPLIT's labelled samples of DATA (default: the data the run trained on);
    split 'val' is the validation split training used (its val_fraction and split_seed)."""
    config = hp.get("config", {})
    data = data or config.get("data")
    if not data or not Path(data).exists():
        raise DataError(f"{data or 'the run'}: data not found; pass --data PATH (images to calibrate and check on)")
    fraction, seed = float(config.get("val_fraction", 0.1)), int(config.get("split_seed", 0))
    task = model_task(hp)
    if task == "classify":
        from defectkd.tasks.classify.data import discover_classify, eval_split, split_train_val_classify
        from defectkd.tasks.classify.evaluate import model_class_names, samples_for_model

        source = discover_classify(data)
        names = model_class_names(hp, source.classes)
        train, val, _ = split_train_val_classify(source, fraction, seed)
        samples = val if split == "val" else eval_split(source, split)
        samples = samples_for_model(source, samples, names)
    elif task == "detect":
        from defectkd.tasks.detect.data import eval_split, load_detect, split_train_val_detect, usable
        from defectkd.tasks.detect.evaluate import model_class_names

        names = model_class_names(hp)
        source, _ = load_detect(data, names)
        train, val, _ = split_train_val_detect(source, fraction, seed)
        samples = val if split == "val" else usable(source, eval_split(source, split))
    else:
        from defectkd.data.layouts import discover
        from defectkd.tasks.segment.dataset import eval_samples, split_train_val

        source, names = discover(data), ["background", "crack"]
        train, val, _ = split_train_val(source, fraction, seed)
        samples = val if split == "val" else eval_samples(source, split)
    if not samples:
        raise DataError(f"{data}: split {split!r} has no labelled images")
    return EvalImages(task, [s.image for s in train], samples, names)


def pick_calibration(images: list[Path], fraction: float, minimum: int = 16, seed: int = 0) -> list[Path]:
    """`fraction` of the training images (at least `minimum`, or all there are), drawn with `seed`."""
    if not 0 < fraction <= 1:
        raise DataError(f"--fraction must be in (0, 1], got {fraction}")
    n = min(len(images), max(minimum, round(len(images) * fraction)))
    return sorted(random.Random(seed).sample(images, n))


def score(runtime, images: EvalImages, progress: Callable[[], None] | None = None) -> float:
    """METRIC_NAMES[task] of a runtime (segment/classify/detect interface) on the samples, in [0, 1]."""
    if images.task == "segment":
        tp = fp = fn = 0
        threshold = float(getattr(runtime, "threshold", 0.5))
        for s in images.samples:
            prob, _ = runtime.segment(read_image(s.image))
            pred, truth = prob >= threshold, read_mask(s.mask) > 0
            tp += int(np.sum(pred & truth))
            fp += int(np.sum(pred & ~truth))
            fn += int(np.sum(~pred & truth))
            if progress:
                progress()
        return 2 * tp / max(2 * tp + fp + fn, 1)
    if images.task == "classify":
        right = 0
        for s in images.samples:
            probs, _ = runtime.classify(read_image(s.image))
            right += int(int(np.argmax(probs)) == s.label)
            if progress:
                progress()
        return right / len(images.samples)
    import torch

    from defectkd.tasks.detect.metrics import DetectionMetrics

    metrics = DetectionMetrics(images.class_names)
    for s in images.samples:
        dets, _ = runtime.detect(read_image(s.image), threshold=DETECT_SCORE_FLOOR)
        pred = {"boxes": torch.as_tensor(dets["boxes"], dtype=torch.float32).reshape(-1, 4),
                "scores": torch.as_tensor(dets["scores"], dtype=torch.float32),
                "labels": torch.as_tensor(dets["labels"], dtype=torch.int64)}
        truth = {"boxes": torch.as_tensor(s.boxes, dtype=torch.float32).reshape(-1, 4),
                 "labels": torch.as_tensor(s.labels, dtype=torch.int64)}
        metrics.update([pred], [truth])
        if progress:
            progress()
    return float(metrics.compute().get("map_50", 0.0))
