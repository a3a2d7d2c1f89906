"""Synthetic pavement / concrete crack images with pixel masks, deterministic by seed.

Cracks are branching, tapering random walks 1-6 px wide. The backgrounds carry things that are
dark or line-like but are NOT cracks: sawn joints (straight, uniform width), stains and shadows
(blobs), paint marks (bright strips), aggregate speckle and an illumination gradient. A model can
only separate them by shape, which is what real data asks of it too.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from defectkd.data.draw import crack_walk as _walk

CRACK_FRACTION = (0.01, 0.05)


def _smooth_noise(rng: np.random.Generator, size: int, scale: int) -> np.ndarray:
    """Value noise: low-resolution random field upsampled, zero mean, unit-ish amplitude."""
    small = rng.standard_normal((max(2, size // scale),) * 2).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Grey asphalt (coarse aggregate) or concrete (smooth, with pores) in [0, 1]."""
    if rng.random() < 0.5:  # asphalt
        base = rng.uniform(0.35, 0.55)
        tex = base + 0.04 * _smooth_noise(rng, size, 32) + 0.05 * rng.standard_normal((size, size))
        stones = rng.random((size, size)) < 0.02
        stones = cv2.dilate(stones.astype(np.uint8), np.ones((2, 2), np.uint8)).astype(bool)
        tex[stones] += rng.uniform(-0.12, 0.15, int(stones.sum()))
        tex = cv2.GaussianBlur(tex.astype(np.float32), (0, 0), 0.8)
    else:  # concrete
        base = rng.uniform(0.55, 0.75)
        tex = base + 0.05 * _smooth_noise(rng, size, 48) + 0.02 * rng.standard_normal((size, size))
        pores = rng.random((size, size)) < 0.002
        tex[pores] -= rng.uniform(0.1, 0.25, int(pores.sum()))
        tex = cv2.GaussianBlur(tex.astype(np.float32), (0, 0), 0.6)
    return tex.astype(np.float32)


def _crack_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """Add cracks until the crack fraction lies in CRACK_FRACTION (1-5 %)."""
    target = rng.uniform(*CRACK_FRACTION)
    mask = np.zeros((size, size), np.float32)
    for _ in range(12):
        start = (rng.uniform(0, size), rng.uniform(0, size))
        angle = rng.uniform(0, 2 * math.pi)
        candidate = mask.copy()
        _walk(rng, start, angle, rng.uniform(0.6, 1.6) * size, rng.uniform(2.0, 6.0), size, candidate, 0, 2)
        frac = candidate.mean()
        if frac <= CRACK_FRACTION[1]:
            mask = candidate
        if mask.mean() >= target:
            break
    if mask.mean() < CRACK_FRACTION[0]:  # rare: widen what is there
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    return mask


def _distractors(rng: np.random.Generator, size: int, img: np.ndarray) -> np.ndarray:
    """Non-crack look-alikes: joints, stains, shadows, paint, illumination gradient."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if rng.random() < 0.5:  # sawn joint: straight, uniform, dark, across the whole image
        joint = np.zeros_like(img)
        a = rng.uniform(0, math.pi)
        c = rng.uniform(0.2, 0.8) * size
        dx, dy = math.cos(a) * size * 2, math.sin(a) * size * 2
        p0 = (int(c - dx), int(c - dy))
        p1 = (int(c + dx), int(c + dy))
        cv2.line(joint, p0, p1, 1.0, thickness=int(rng.integers(3, 9)))
        img = img * (1 - rng.uniform(0.35, 0.55) * cv2.GaussianBlur(joint, (0, 0), 0.8))
    for _ in range(int(rng.integers(1, 4))):  # stains: dark, irregular, oil- or water-like blobs
        cx, cy = rng.uniform(0, 1, 2)
        rx, ry = rng.uniform(0.04, 0.2, 2)
        ellipse = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        blob = (ellipse + 0.8 * _smooth_noise(rng, size, 24) < 1.0).astype(np.float32)
        img = img * (1 - rng.uniform(0.3, 0.6) * cv2.GaussianBlur(blob, (0, 0), 2.5))
    if rng.random() < 0.5:  # aggregate speckle: many small dark spots, crack-dark but round
        spots = (rng.random((size, size)) < 0.0015).astype(np.float32)
        spots = cv2.dilate(spots, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
        img = img * (1 - rng.uniform(0.3, 0.55) * cv2.GaussianBlur(spots, (0, 0), 0.8))
    if rng.random() < 0.6:  # shadow: a large soft-edged polygon
        shadow = np.zeros_like(img)
        pts = rng.uniform(-0.3, 1.3, (int(rng.integers(3, 6)), 2)) * size
        cv2.fillPoly(shadow, [pts.astype(np.int32)], 1.0)
        img = img * (1 - rng.uniform(0.25, 0.5) * cv2.GaussianBlur(shadow, (0, 0), size / 40))
    if rng.random() < 0.35:  # paint marking: a bright strip or rectangle
        paint = np.zeros_like(img)
        a = rng.uniform(0, math.pi)
        c = rng.uniform(0.1, 0.9, 2) * size
        half = rng.uniform(0.2, 0.6) * size
        p0 = (int(c[0] - half * math.cos(a)), int(c[1] - half * math.sin(a)))
        p1 = (int(c[0] + half * math.cos(a)), int(c[1] + half * math.sin(a)))
        cv2.line(paint, p0, p1, 1.0, thickness=int(rng.integers(6, 20)))
        paint = cv2.GaussianBlur(paint, (0, 0), 1.0)
        img = img * (1 - paint) + paint * rng.uniform(0.85, 0.97)
    gx, gy = rng.uniform(-0.25, 0.25, 2)
    return img * (1 + gx * (xx - 0.5) + gy * (yy - 0.5))


def synth_crack_sample(seed: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One RGB uint8 image (H, W, 3) and its 0/255 uint8 mask (H, W), fully determined by `seed`."""
    rng = np.random.default_rng(seed)
    img = _texture(rng, size)
    img = _distractors(rng, size, img)
    coverage = _crack_mask(rng, size)
    depth = rng.uniform(0.35, 0.65)
    soft = cv2.GaussianBlur(coverage, (0, 0), 0.7)
    img = img * (1 - depth * np.clip(soft, 0, 1))
    img = np.clip(img + 0.015 * rng.standard_normal(img.shape), 0, 1)
    tint = np.array([1.0, rng.uniform(0.97, 1.03), rng.uniform(0.93, 1.05)], np.float32)
    rgb = np.clip(img[..., None] * tint * 255, 0, 255).astype(np.uint8)
    mask = (coverage > 0.5).astype(np.uint8) * 255
    return rgb, mask


def write_synthetic_segment(out: str | Path, n: int, size: int = 256, seed: int = 0) -> Path:
    """Write `n` pairs to OUT/images/*.png and OUT/masks/*.png; returns OUT."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rgb, mask = synth_crack_sample(seed * 1_000_003 + i, size)
        stem = f"synth_{i:05d}"
        cv2.imwrite(str(out / "images" / f"{stem}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out / "masks" / f"{stem}.png"), mask)
    return out
