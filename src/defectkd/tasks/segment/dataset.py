"""Torch datasets and splits for crack segmentation, with albumentations augmentation."""

from __future__ import annotations

import random

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from defectkd.core.errors import DataError
from defectkd.data.io import read_image, read_mask
from defectkd.data.layouts import Sample, SegmentationSource


def train_transform(imgsz: int, seed: int = 0, soft_targets: bool = False) -> A.Compose:
    """Flips, 90-degree rotations, scale/rotate, then a random crop: cracks have no orientation.

    albumentations keeps its own random state (global seeds do not reach it): `seed` fixes it here,
    and `seed_augmentation_worker` gives each DataLoader worker its own reproducible stream.
    `soft_targets`: also move a `soft` (H, W, K) array of teacher probabilities with the mask."""
    return A.Compose([
        A.Affine(scale=(0.75, 1.25), rotate=(-30, 30), border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        A.PadIfNeeded(imgsz, imgsz, border_mode=cv2.BORDER_REFLECT_101),
        A.RandomCrop(imgsz, imgsz),
        A.HorizontalFlip(),
        A.VerticalFlip(),
        A.RandomRotate90(),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
    ], seed=seed, additional_targets={"soft": "mask"} if soft_targets else None)


class SegmentationDataset(Dataset):
    """Image/mask pairs as (float image (3,H,W) in [0,1], float mask (H,W) in {0,1}, index).

    Small sets are decoded once and kept in memory (`cache=True`): decoding is a noticeable share
    of a CPU training step otherwise. Masks can be dilated on load (the MCFF-L recipe: 3x3, x3).
    """

    def __init__(self, samples: list[Sample], transform: A.Compose | None = None, cache: bool = True,
                 mask_dilate: int = 0) -> None:
        self.samples = samples
        self.transform = transform
        self.mask_dilate = mask_dilate
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.cache = cache

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i in self._cache:
            return self._cache[i]
        sample = self.samples[i]
        image = read_image(sample.image)
        if sample.mask is None:
            mask = np.zeros(image.shape[:2], np.uint8)
        else:
            mask = read_mask(sample.mask)
            if mask.shape != image.shape[:2]:
                raise DataError(f"{sample.mask}: mask is {mask.shape[1]}x{mask.shape[0]} "
                                f"but image is {image.shape[1]}x{image.shape[0]}")
            if self.mask_dilate:
                mask = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=self.mask_dilate)
        if self.cache:
            self._cache[i] = (image, mask)
        return image, mask

    def __getitem__(self, i: int):
        image, mask = self.load(i)
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255)
        y = torch.from_numpy(np.ascontiguousarray(mask)).float()
        return x, y, i


def split_train_val(
    source: SegmentationSource, val_fraction: float, seed: int, folds: int | None = None, fold: int | None = None
) -> tuple[list[Sample], list[Sample], str]:
    """Train and validation samples; a set without a `val` split gets one drawn from train with `seed`.
    With `folds` (k-fold cross-validation) the train and val splits are pooled, shuffled with `seed`
    and cut into `folds` parts; part `fold` validates and the others train.

    Returns (train, val, how) where `how` records the origin of the validation split for the run.
    """
    train_key = "train" if "train" in source.splits else "all"
    train = source.labelled(train_key)
    if folds:
        return _fold_split(train + (source.labelled("val") if "val" in source.splits else []), folds, fold or 0,
                           seed, train_key)
    if "val" in source.splits and source.labelled("val"):
        return train, source.labelled("val"), "val split of the data set"
    if len(train) < 2:
        raise DataError(f"{source.root}: needs at least 2 labelled pairs to train, found {len(train)}")
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(train) * val_fraction))
    val_idx = set(order[:n_val])
    return ([s for i, s in enumerate(train) if i not in val_idx],
            [s for i, s in enumerate(train) if i in val_idx],
            f"{n_val} of {len(train)} '{train_key}' pairs drawn with seed {seed}")


def _fold_split(pool: list[Sample], folds: int, fold: int, seed: int, key: str):
    if len(pool) < folds:
        raise DataError(f"{folds}-fold cross-validation needs at least {folds} labelled pairs, found {len(pool)}")
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    held = set(order[fold::folds])  # fold sizes differ by at most one
    return ([s for i, s in enumerate(pool) if i not in held], [s for i, s in enumerate(pool) if i in held],
            f"fold {fold + 1} of {folds} over {len(pool)} '{key}' pairs shuffled with seed {seed}")


def eval_samples(source: SegmentationSource, split: str) -> list[Sample]:
    """Labelled samples of a split for evaluation; `test` falls back to the only split of flat sets."""
    if split in source.splits:
        return source.labelled(split)
    if "all" in source.splits:
        return source.labelled("all")
    raise DataError(f"{source.root}: no '{split}' split (found: {', '.join(source.splits)})")


def drop_bad(samples: list[Sample], bad: set[str]) -> list[Sample]:
    return [s for s in samples if str(s.image) not in bad]
