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
from pathlib import Path

from defectkd.core.errors import DataError
from defectkd.tasks import TASKS, task_of
from defectkd.tasks.base import EvalImages


def eval_images(hp: dict, data: str | Path | None, split: str = "val") -> EvalImages:
    """Training images and the SPLIT's labelled samples of DATA (default: the data the run trained on);
    split 'val' is the validation split training used (its val_fraction and split_seed)."""
    data = data or hp.get("config", {}).get("data")
    if not data or not Path(data).exists():
        raise DataError(f"{data or 'the run'}: data not found; pass --data PATH (images to calibrate and check on)")
    images = task_of(hp).eval_images(hp, data, split)
    if not images.samples:
        raise DataError(f"{data}: split {split!r} has no labelled images")
    return images


def metric_name(task: str) -> str:
    """The one figure of a task (F1, accuracy, mAP50)."""
    return TASKS[task].metric_name


def pick_calibration(images: list[Path], fraction: float, minimum: int = 16, seed: int = 0) -> list[Path]:
    """`fraction` of the training images (at least `minimum`, or all there are), drawn with `seed`."""
    if not 0 < fraction <= 1:
        raise DataError(f"--fraction must be in (0, 1], got {fraction}")
    n = min(len(images), max(minimum, round(len(images) * fraction)))
    return sorted(random.Random(seed).sample(images, n))


def score(runtime, images: EvalImages, progress: Callable[[], None] | None = None) -> float:
    """The task's one figure (F1 / accuracy / mAP50) of a runtime on the samples, in [0, 1]."""
    return TASKS[images.task].score(runtime, images, progress)
