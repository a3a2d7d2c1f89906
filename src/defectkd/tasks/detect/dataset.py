"""Torch dataset for defect detection: images as they are (the detector resizes them itself), boxes moved by flips."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from defectkd.core.tensors import image_tensor
from defectkd.data.io import read_image
from defectkd.tasks.detect.data import DetectSample


class DetectAugment:
    """Horizontal and vertical flips (boxes flipped with the image) and mild brightness/contrast, seeded per
    worker (`seed_augmentation_worker`). No rotations: rolled steel has a direction."""

    def __init__(self, seed: int = 0, p_flip: float = 0.5, jitter: float = 0.15) -> None:
        self.rng = np.random.default_rng(seed)
        self.p_flip, self.jitter = p_flip, jitter

    def set_random_seed(self, seed: int) -> None:  # called by seed_augmentation_worker
        self.rng = np.random.default_rng(seed)

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        boxes = boxes.copy()
        if self.rng.random() < self.p_flip:
            image = image[:, ::-1]
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        if self.rng.random() < self.p_flip:
            image = image[::-1]
            boxes[:, [1, 3]] = h - boxes[:, [3, 1]]
        if self.rng.random() < 0.5:
            alpha = 1 + self.rng.uniform(-self.jitter, self.jitter)
            beta = 255 * self.rng.uniform(-self.jitter, self.jitter) / 2
            image = np.clip(image.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(image), boxes


class DetectDataset(Dataset):
    """(float image (3, H, W) in [0, 1], {"boxes": (n, 4) float xyxy px, "labels": (n,) int64}, index).
    Decoded images are kept in memory with `cache=True`; samples must come from a validated source (pixel boxes)."""

    def __init__(self, samples: list[DetectSample], transform: DetectAugment | None = None, cache: bool = True) -> None:
        self.samples = samples
        self.transform = transform
        self.cache = cache
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> np.ndarray:
        if i in self._cache:
            return self._cache[i]
        image = read_image(self.samples[i].image)
        if self.cache:
            self._cache[i] = image
        return image

    def __getitem__(self, i: int):
        s = self.samples[i]
        image = self.load(i)
        boxes = np.asarray(s.boxes, np.float32).reshape(-1, 4)
        if self.transform is not None:
            image, boxes = self.transform(image, boxes)
        x = image_tensor(image)
        target = {"boxes": torch.from_numpy(boxes), "labels": torch.as_tensor(s.labels, dtype=torch.int64)}
        return x, target, i


def collate_detect(batch):
    """Images of any sizes: (list of images, list of targets, tensor of indices)."""
    images, targets, idx = zip(*batch, strict=True)
    return list(images), list(targets), torch.as_tensor(idx)
