"""RFKD's mixed inputs: the teacher sees the clean image, the student a corrupted copy of part of them.

The copy is made after the spatial augmentation, so image, mask, soft labels and the student's noisy
input stay pixel-aligned; the noise never touches the mask (corruptions are distractors, not cracks).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from defectkd.core.tensors import image_tensor


class NoisyStudentDataset(Dataset):
    """Wraps a distillation training set; each item gains extras["student_image"], corrupted with
    probability `fraction` (1/3 = the RFKD paper's clean:noisy 2:1) by one of `corruptions` at a
    random severity, else the clean image itself."""

    def __init__(self, base: Dataset, fraction: float, corruptions: list[str], seed: int = 0) -> None:
        from defectkd.data.corruptions import NoisyMix

        self.base = base
        self.noise_mix = NoisyMix(p=fraction, corruptions=list(corruptions), seed=seed)

    @property
    def transform(self):  # seed_augmentation_worker reseeds the spatial augmentation through this
        return self.base.transform

    @property
    def samples(self):
        return self.base.samples

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        item = self.base[i]
        x = item[0]
        image = np.ascontiguousarray((x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
        noisy = self.noise_mix(image)
        extras = dict(item[3]) if len(item) > 3 else {}
        extras["student_image"] = image_tensor(noisy)
        return (*item[:3], extras)
