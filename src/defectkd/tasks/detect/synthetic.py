"""Synthetic steel-surface defects with bounding boxes, deterministic by seed (the detection quick start and tests).

Each image is the rolled-steel background of the synthetic classes (data/synthetic_classify.py) with zero to three
defects of four classes, boxes drawn tight around what was painted:

| class     | what                                                             |
|-----------|------------------------------------------------------------------|
| inclusion | a dark streak along the rolling (horizontal) direction           |
| patches   | a large soft-edged dark (or bright) irregular region             |
| pits      | a cluster of small dark round pits                               |
| scratches | a long thin bright or dark line in any direction                 |

Every tenth image has no defect (a background image: an empty annotation). `write_synthetic_detect` writes
OUT/images/synth_<i>.png, OUT/annotations/synth_<i>.xml (Pascal VOC) and OUT/splits/{train,test}.txt (the
last 20 % of the images test): the NEU-DET layout, read by the VOC reader.
"""

from __future__ import annotations

import math
from pathlib import Path
from xml.sax.saxutils import escape

import cv2
import numpy as np

from defectkd.data.draw import steel_background as _background
from defectkd.data.draw import steel_field as _field

DETECT_CLASSES = ("inclusion", "patches", "pits", "scratches")


def _inclusion(rng, size, mark):
    c = (int(rng.uniform(0.15, 0.85) * size), int(rng.uniform(0.15, 0.85) * size))
    axes = (max(4, int(rng.uniform(0.12, 0.3) * size)), max(2, int(rng.uniform(0.03, 0.06) * size)))
    cv2.ellipse(mark, c, axes, float(rng.uniform(-8, 8)), 0, 360, 1.0, -1)
    return -rng.uniform(0.4, 0.6)


def _patches(rng, size, mark):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cx, cy = rng.uniform(0.2, 0.8, 2)
    rx, ry = rng.uniform(0.1, 0.22, 2)
    mark[:] = np.maximum(mark, (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 + 0.4 * _field(rng, 5, 5, size) < 1))
    return rng.uniform(0.25, 0.35) * (1 if rng.random() < 0.3 else -1)


def _pits(rng, size, mark):
    cx, cy = rng.uniform(0.2, 0.8, 2) * size
    spread = rng.uniform(0.06, 0.14) * size
    for _ in range(int(rng.integers(4, 9))):
        x, y = rng.normal((cx, cy), spread)
        cv2.circle(mark, (int(x), int(y)), max(1, int(round(rng.uniform(0.015, 0.035) * size))), 1.0, -1)
    return -rng.uniform(0.5, 0.7)


def _scratches(rng, size, mark):
    a = rng.uniform(0, math.pi)
    c = rng.uniform(0.25, 0.75, 2) * size
    half = rng.uniform(0.15, 0.35) * size
    p0 = (int(c[0] - half * math.cos(a)), int(c[1] - half * math.sin(a)))
    p1 = (int(c[0] + half * math.cos(a)), int(c[1] + half * math.sin(a)))
    cv2.line(mark, p0, p1, 1.0, thickness=max(1, size // 64))
    return rng.uniform(0.5, 0.65) * (1 if rng.random() < 0.5 else -1)


_DRAW = {"inclusion": _inclusion, "patches": _patches, "pits": _pits, "scratches": _scratches}


def _box(mark: np.ndarray, pad: int = 1) -> list[float] | None:
    ys, xs = np.nonzero(mark > 0.5)
    if len(xs) == 0:
        return None
    h, w = mark.shape
    return [float(max(0, xs.min() - pad)), float(max(0, ys.min() - pad)), float(min(w, xs.max() + 1 + pad)),
            float(min(h, ys.max() + 1 + pad))]


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def synth_detect_sample(seed: int, size: int = 96, background: bool = False
                        ) -> tuple[np.ndarray, list[list[float]], list[str]]:
    """(RGB uint8 (size, size, 3), boxes xyxy in pixels, class names), fully determined by `seed`."""
    rng = np.random.default_rng(seed)
    img = _background(rng, size)
    boxes: list[list[float]] = []
    names: list[str] = []
    wanted = 0 if background else int(rng.integers(1, 4))
    for _ in range(wanted * 4):  # a few tries to place non-overlapping defects
        if len(boxes) == wanted:
            break
        name = DETECT_CLASSES[int(rng.integers(len(DETECT_CLASSES)))]
        mark = np.zeros((size, size), np.float32)
        shift = _DRAW[name](rng, size, mark)
        box = _box(mark)
        if box is None or box[2] - box[0] < 3 or box[3] - box[1] < 3 or any(_iou(box, b) > 0.1 for b in boxes):
            continue
        soft = cv2.GaussianBlur(mark, (0, 0), 0.7)
        img = img + shift * soft * (1 - img) if shift > 0 else img * (1 + shift * soft)
        boxes.append(box)
        names.append(name)
    img = np.clip(img + 0.01 * rng.standard_normal(img.shape), 0, 1)
    return np.repeat((img[..., None] * 255).round().astype(np.uint8), 3, axis=2), boxes, names


def voc_xml(filename: str, width: int, height: int, boxes: list[list[float]], names: list[str]) -> str:
    objects = "".join(
        f"\t<object>\n\t\t<name>{escape(n)}</name>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n"
        f"\t\t\t<xmin>{b[0]:g}</xmin>\n\t\t\t<ymin>{b[1]:g}</ymin>\n\t\t\t<xmax>{b[2]:g}</xmax>\n"
        f"\t\t\t<ymax>{b[3]:g}</ymax>\n\t\t</bndbox>\n\t</object>\n" for b, n in zip(boxes, names, strict=True))
    return (f"<annotation>\n\t<filename>{escape(filename)}</filename>\n\t<size>\n\t\t<width>{width}</width>\n"
            f"\t\t<height>{height}</height>\n\t\t<depth>3</depth>\n\t</size>\n{objects}</annotation>\n")


def write_synthetic_detect(out: str | Path, n: int, size: int = 96, seed: int = 0) -> Path:
    """Write `n` images with VOC annotations and train/test split lists to OUT (see the module docstring)."""
    out = Path(out)
    for sub in ("images", "annotations", "splits"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    stems = []
    for i in range(n):
        stem = f"synth_{i:05d}"
        rgb, boxes, names = synth_detect_sample(seed * 1_000_003 + i, size, background=i % 10 == 9)
        cv2.imwrite(str(out / "images" / f"{stem}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        (out / "annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.png", size, size, boxes, names))
        stems.append(stem)
    n_test = n // 5 if n >= 5 else 0
    (out / "splits" / "train.txt").write_text("".join(f"{s}\n" for s in stems[:n - n_test]))
    (out / "splits" / "test.txt").write_text("".join(f"{s}\n" for s in stems[n - n_test:]))
    return out
