"""mAP50 recomputed from per-image matches equals COCO's (torchmetrics with faster-coco-eval) on the same boxes, and
a resample's mAP50 equals COCO's on the resampled images."""

import numpy as np
import pytest
import torch

from defectkd.engine.compare import paired_bootstrap
from defectkd.tasks import TASKS
from defectkd.tasks.detect.compare import image_rows, match_image, rows_map50
from defectkd.tasks.detect.metrics import DetectionMetrics

CLASSES = 3


def _scene(rng, n_images=30):
    """Random true boxes and noisy detections of them (some missed, some false, shuffled labels)."""
    scenes = []
    for _ in range(n_images):
        k = int(rng.integers(0, 5))
        xy = rng.uniform(0, 150, (k, 2))
        truth = np.concatenate([xy, xy + rng.uniform(10, 50, (k, 2))], 1)
        labels = rng.integers(0, CLASSES, k)
        keep = rng.random(k) > 0.2
        pred = truth[keep] + rng.normal(0, 4, (int(keep.sum()), 4))
        plabels = np.where(rng.random(int(keep.sum())) > 0.15, labels[keep], rng.integers(0, CLASSES, int(keep.sum())))
        fxy = rng.uniform(0, 150, (int(rng.integers(0, 3)), 2))
        false = np.concatenate([fxy, fxy + 30], 1)
        boxes = np.concatenate([pred, false]) if len(false) else pred
        scores = rng.uniform(0.05, 1, len(boxes))
        scene_labels = np.concatenate([plabels, rng.integers(0, CLASSES, len(false))]).astype(int)
        f32 = lambda x: x.astype(np.float32)  # noqa: E731  (what a model and a label file give)
        scenes.append((f32(boxes.reshape(-1, 4)), f32(scores), scene_labels, f32(truth.reshape(-1, 4)), labels))
    return scenes


def _coco_map50(scenes) -> float:
    m = DetectionMetrics([f"c{i}" for i in range(CLASSES)])
    for boxes, scores, labels, truth, tlabels in scenes:
        m.update([{"boxes": torch.tensor(boxes, dtype=torch.float32),
                   "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels)}],
                 [{"boxes": torch.tensor(truth, dtype=torch.float32), "labels": torch.tensor(tlabels)}])
    return m.compute()["map_50"]


def test_map50_from_matches_equals_coco_on_the_set_and_on_a_resample():
    rng = np.random.default_rng(0)
    scenes = _scene(rng)
    rows = image_rows([match_image(*s, classes=CLASSES) for s in scenes], CLASSES)
    assert rows_map50(rows) == pytest.approx(_coco_map50(scenes), abs=1e-4)
    idx = rng.integers(0, len(scenes), len(scenes))  # with repeats, as the bootstrap draws
    assert rows_map50(rows[idx[None]])[0] == pytest.approx(_coco_map50([scenes[i] for i in idx]), abs=2e-3)


def test_detection_paired_bootstrap_finds_the_better_detector():
    rng = np.random.default_rng(1)
    scenes = _scene(rng, 60)
    good = image_rows([match_image(*s, classes=CLASSES) for s in scenes], CLASSES)
    halves = [rng.random(len(sc)) < 0.5 for _, sc, _, _, _ in scenes]  # a detector that misses half of it all
    worse = [(b[k], sc[k], lab[k], t, tl) for (b, sc, lab, t, tl), k in zip(scenes, halves, strict=True)]
    bad = image_rows([match_image(*s, classes=CLASSES) for s in worse], CLASSES)
    r = paired_bootstrap(TASKS["detect"], good, bad, n=300)
    assert r["verdict"] == "better" and r["low"] > 0 and r["gain"] == pytest.approx(rows_map50(good) - rows_map50(bad))
