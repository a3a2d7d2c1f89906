"""Synthetic steel-surface defect classes for classification, deterministic by seed.

Every image is a noisy, rolled-steel-like grey background (horizontal rolling streaks, grain,
an illumination gradient) with one kind of defect:

| class      | what                                                                     |
|------------|--------------------------------------------------------------------------|
| crazing    | a fine network of low-contrast dark cracks (edges of random cells)       |
| inclusion  | a few short dark streaks along the rolling (horizontal) direction         |
| patches    | two to four large soft-edged dark or bright irregular regions            |
| scratches  | one to three long thin straight or gently curved lines, any direction    |
| spots      | many small round dark pits                                               |

The classes differ by shape and scale rather than by brightness, so a model has to look at
texture, as on real steel (NEU-DET's crazing, inclusion, patches, pitted surface, scratches).
`write_synthetic_classify` writes OUT/<class>/<class>_<i>.png: an ImageFolder set that the
stem-prefix reader also understands.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from defectkd.data.draw import steel_background as _background
from defectkd.data.draw import steel_field as _field

SYNTH_CLASSES = ("crazing", "inclusion", "patches", "scratches", "spots")


def _crazing(rng, img, size):
    n = int(rng.integers(18, 40))
    pts = rng.uniform(-0.1, 1.1, (n, 2)) * size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    d = np.stack([(xx - x) ** 2 + (yy - y) ** 2 for x, y in pts])
    label = d.argmin(0).astype(np.int32)
    edges = np.zeros((size, size), np.float32)
    edges[:, 1:] += label[:, 1:] != label[:, :-1]
    edges[1:, :] += label[1:, :] != label[:-1, :]
    soft = cv2.GaussianBlur((edges > 0).astype(np.float32), (0, 0), 0.6)
    return img * (1 - rng.uniform(0.35, 0.5) * np.clip(soft, 0, 1))


def _inclusion(rng, img, size):
    mark = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        c = (int(rng.uniform(0.1, 0.9) * size), int(rng.uniform(0.1, 0.9) * size))
        axes = (max(2, int(rng.uniform(0.08, 0.25) * size)), max(1, int(rng.uniform(0.015, 0.04) * size)))
        cv2.ellipse(mark, c, axes, float(rng.uniform(-8, 8)), 0, 360, 1.0, -1)
    soft = cv2.GaussianBlur(mark, (0, 0), 0.8)
    return img * (1 - rng.uniform(0.35, 0.55) * soft)


def _patches(rng, img, size):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for _ in range(int(rng.integers(2, 5))):
        cx, cy = rng.uniform(0.1, 0.9, 2)
        rx, ry = rng.uniform(0.12, 0.3, 2)
        blob = (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 + 0.6 * _field(rng, 6, 6, size) < 1).astype(np.float32)
        soft = cv2.GaussianBlur(blob, (0, 0), max(1.0, size / 40))
        shift = rng.uniform(0.15, 0.3) * (1 if rng.random() < 0.3 else -1)
        img = img + shift * soft
    return img


def _scratches(rng, img, size):
    mark = np.zeros((size, size), np.float32)
    bright = rng.random() < 0.5
    for _ in range(int(rng.integers(1, 4))):
        a = rng.uniform(0, math.pi)
        c = rng.uniform(0.2, 0.8, 2) * size
        half = rng.uniform(0.3, 0.6) * size
        bend = rng.uniform(-0.15, 0.15) * size
        t = np.linspace(-1, 1, 24)
        x = c[0] + half * t * math.cos(a) - bend * (1 - t ** 2) * math.sin(a)
        y = c[1] + half * t * math.sin(a) + bend * (1 - t ** 2) * math.cos(a)
        pts = np.stack([x, y], 1).round().astype(np.int32)
        cv2.polylines(mark, [pts], False, 1.0, thickness=int(rng.integers(1, 3)) * max(1, size // 128))
    soft = cv2.GaussianBlur(mark, (0, 0), 0.5)
    depth = rng.uniform(0.45, 0.65)
    return img + depth * soft * (1 - img) if bright else img * (1 - depth * soft)


def _spots(rng, img, size):
    mark = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(15, 40))):
        c = (int(rng.uniform(0, size)), int(rng.uniform(0, size)))
        cv2.circle(mark, c, max(1, int(round(rng.uniform(0.01, 0.035) * size))), float(rng.uniform(0.6, 1.0)), -1)
    soft = cv2.GaussianBlur(mark, (0, 0), 0.6)
    return img * (1 - rng.uniform(0.45, 0.65) * soft)


_DRAW = {"crazing": _crazing, "inclusion": _inclusion, "patches": _patches, "scratches": _scratches,
         "spots": _spots}


def synth_defect_sample(cls: str, seed: int, size: int = 64) -> np.ndarray:
    """One RGB uint8 (size, size, 3) image of class `cls` (one of SYNTH_CLASSES), fully determined by `seed`."""
    if cls not in _DRAW:
        raise ValueError(f"unknown synthetic class {cls!r} (known: {', '.join(SYNTH_CLASSES)})")
    rng = np.random.default_rng(seed)
    img = _DRAW[cls](rng, _background(rng, size), size)
    img = np.clip(img + 0.01 * rng.standard_normal(img.shape), 0, 1)
    return np.repeat((img[..., None] * 255).round().astype(np.uint8), 3, axis=2)  # grey content, 3 channels


def write_synthetic_classify(out: str | Path, n: int, size: int = 64, seed: int = 0,
                             classes: tuple[str, ...] = SYNTH_CLASSES) -> Path:
    """Write `n` images, classes in turn, to OUT/<class>/<class>_<i>.png; returns OUT."""
    out = Path(out)
    for cls in classes:
        (out / cls).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cls = classes[i % len(classes)]
        rgb = synth_defect_sample(cls, seed * 1_000_003 + i, size)
        cv2.imwrite(str(out / cls / f"{cls}_{i:05d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return out
