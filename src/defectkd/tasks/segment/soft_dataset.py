"""Training pairs plus the teacher's cached soft labels, augmented together."""

from __future__ import annotations

import numpy as np
import torch

from defectkd.core.tensors import image_tensor
from defectkd.tasks.segment.dataset import SegmentationDataset
from defectkd.tasks.segment.soft_labels import SoftLabelCache


class SoftLabelDataset(SegmentationDataset):
    """(image, mask, index, {"soft": {head: probabilities (C, H, W)}, "labelled": bool}): the soft labels
    follow every spatial augmentation of the image (flips, crops, affine), so each pixel keeps its
    teacher's answer."""

    def __init__(self, samples, cache_dir: SoftLabelCache, transform=None, cache: bool = True,
                 mask_dilate: int = 0) -> None:
        super().__init__(samples, transform, cache, mask_dilate)
        self.soft_cache = cache_dir
        self._soft: dict[int, np.ndarray] = {}

    def _soft_stack(self, i: int) -> np.ndarray:
        """(H, W, heads*C) float16, in manifest head order."""
        if i in self._soft:
            return self._soft[i]
        arrays = self.soft_cache.load(self.samples[i].image)
        stack = np.concatenate([arrays[h] for h in self.soft_cache.heads], axis=0).transpose(1, 2, 0)
        stack = np.ascontiguousarray(stack)
        if self.cache:
            self._soft[i] = stack
        return stack

    def __getitem__(self, i: int):
        image, mask = self.load(i)
        soft = self._soft_stack(i).astype(np.float32)
        if soft.shape[:2] != image.shape[:2]:
            raise ValueError(f"{self.samples[i].image}: soft labels are {soft.shape[1]}x{soft.shape[0]}, "
                             f"image {image.shape[1]}x{image.shape[0]}")
        if self.transform is not None:
            out = self.transform(image=image, mask=mask, soft=soft)
            image, mask, soft = out["image"], out["mask"], out["soft"]
        x = image_tensor(image)
        y = torch.from_numpy(np.ascontiguousarray(mask)).float()
        s = torch.from_numpy(np.ascontiguousarray(np.asarray(soft).transpose(2, 0, 1))).float()
        c = self.soft_cache.classes
        soft_heads = {h: s[k * c:(k + 1) * c] for k, h in enumerate(self.soft_cache.heads)}
        return x, y, i, {"soft": soft_heads, "labelled": self.samples[i].mask is not None}
