"""Torch datasets and splits for crack segmentation, with seeded training augmentation."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from defectkd.core.errors import ConfigError, DataError
from defectkd.core.tensors import image_tensor
from defectkd.data.corruptions import brightness_contrast
from defectkd.data.io import read_image, read_mask
from defectkd.data.layouts import Sample, SegmentationSource, discover, no_masks_message


def _warp(plane: np.ndarray, matrix: np.ndarray, interpolation: int) -> np.ndarray:
    """(H, W, C) `plane` through the affine `matrix` with mirrored borders. Nearest-neighbour planes (mask, soft
    labels) go one channel at a time: OpenCV's 2-channel nearest warp picks a few other pixels than its 1-channel
    one, which would move soft labels off the mask."""
    h, w = plane.shape[:2]
    step = 1 if interpolation == cv2.INTER_NEAREST else 4  # 4: OpenCV's most channels per call
    parts = [cv2.warpAffine(np.ascontiguousarray(plane[..., c:c + step]), matrix, (w, h), flags=interpolation,
                            borderMode=cv2.BORDER_REFLECT_101) for c in range(0, plane.shape[2], step)]
    return np.concatenate([p.reshape(h, w, -1) for p in parts], axis=2)


class SegmentAugment:
    """Joint augmentation of an image, its mask and (optionally) soft-label maps; cracks have no orientation.

    In order: with p 0.5 an affine warp (x and y scale each 0.75..1.25, rotation -30..30 degrees, about the
    centre, mirrored borders; image bilinear, mask and soft labels nearest), mirrored padding up to `imgsz`, a
    random `imgsz` crop, horizontal and vertical flips (each p 0.5), a random multiple of 90 degrees, and with
    p 0.5 brightness/contrast (image x (1 + a) + b x 255, a and b in -0.2..0.2). With `photometric="wide"` the
    last step is `wide_photometric` instead (with p 0.8): the lighting of other cameras and days.

    Crop, flips and rotations are torchvision.transforms.v2.functional / torch.rot90; the affine warp and
    padding are OpenCV (torchvision's affine has no mirrored border, its reflect padding stops at the image
    size). All parameters come from a numpy generator: `set_random_seed(seed)` fixes the stream, so the same
    seed gives the same augmented sample (`EpochSeeded` reseeds per sample, `seed_augmentation_worker` per
    worker). Called as `aug(image=rgb, mask=mask[, soft=soft])` and returns a dict of the same keys: image
    (H, W, 3) uint8, mask (H, W), soft (H, W, K) with `soft_targets`."""

    def __init__(self, imgsz: int, seed: int = 0, soft_targets: bool = False, photometric: str = "basic") -> None:
        if photometric not in PHOTOMETRIC:
            raise ConfigError(f"photometric: {photometric!r} is not one of {', '.join(PHOTOMETRIC)}")
        self.imgsz, self.soft_targets, self.photometric = imgsz, soft_targets, photometric
        self.set_random_seed(seed)

    def set_random_seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, *, image: np.ndarray, mask: np.ndarray, soft: np.ndarray | None = None
                 ) -> dict[str, np.ndarray]:
        if soft is not None and not self.soft_targets:
            raise ConfigError("SegmentAugment: got soft labels but was built without soft_targets=True")
        rng = self.rng  # a fixed number of draws per call, whatever is applied
        affine, hflip, vflip, photometric = rng.random(4) < 0.5
        scale_x, scale_y, angle = rng.uniform(0.75, 1.25), rng.uniform(0.75, 1.25), rng.uniform(-30, 30)
        crop_y, crop_x = rng.random(2)
        quarter_turns = int(rng.integers(4))
        alpha, beta = 1 + rng.uniform(-0.2, 0.2), 255 * rng.uniform(-0.2, 0.2)

        planes = [image, mask[..., None]] + ([soft] if soft is not None else [])
        if affine:
            h, w = image.shape[:2]
            cx, cy = w / 2 - 0.5, h / 2 - 0.5
            rad = np.deg2rad(angle)
            cos, sin = np.cos(rad), np.sin(rad)
            linear = np.array([[cos * scale_x, sin * scale_y], [-sin * scale_x, cos * scale_y]])
            matrix = np.hstack([linear, [[cx], [cy]] - linear @ [[cx], [cy]]])
            planes = [_warp(p, matrix, cv2.INTER_LINEAR if j == 0 else cv2.INTER_NEAREST)
                      for j, p in enumerate(planes)]
        h, w = planes[0].shape[:2]
        pad_y, pad_x = max(0, self.imgsz - h), max(0, self.imgsz - w)
        if pad_y or pad_x:
            planes = [cv2.copyMakeBorder(p, pad_y // 2, pad_y - pad_y // 2, pad_x // 2, pad_x - pad_x // 2,
                                         cv2.BORDER_REFLECT_101).reshape(h + pad_y, w + pad_x, -1) for p in planes]
        top, left = int(crop_y * (h + pad_y - self.imgsz + 1)), int(crop_x * (w + pad_x - self.imgsz + 1))
        out = []
        for p in planes:
            t = TF.crop(torch.from_numpy(np.ascontiguousarray(p)).permute(2, 0, 1), top, left, self.imgsz, self.imgsz)
            if hflip:
                t = TF.horizontal_flip(t)
            if vflip:
                t = TF.vertical_flip(t)
            out.append(np.ascontiguousarray(torch.rot90(t, quarter_turns, dims=(1, 2)).permute(1, 2, 0).numpy()))
        if self.photometric == "wide":  # its own draws after the basic ones: "basic" streams stay as they were
            image_out = wide_photometric(out[0], rng) if rng.random() < 0.8 else out[0]
        else:
            image_out = brightness_contrast(out[0], alpha, beta) if photometric else out[0]
        result = {"image": image_out, "mask": out[1][..., 0]}
        if soft is not None:
            result["soft"] = out[2]
        return result


def wide_photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting that another camera, day or site gives a crack photo, all at once: gamma 2^(-1..1) (over- to
    under-exposed), contrast x0.5..1.3 about the image mean, brightness -0.15..0.15, per-channel gains 0.8..1.2
    (light colour), greyscale with p 0.2 and with p 0.3 light falling off linearly across the image in a random
    direction down to 0.35..0.9. A fixed number of draws per call. Thin cracks are low-contrast structures: a
    model trained only on one camera's exposure loses them first when the light changes (docs/benchmarks.md,
    the cross-source check)."""
    gamma, contrast, brightness = 2.0 ** rng.uniform(-1, 1), rng.uniform(0.5, 1.3), rng.uniform(-0.15, 0.15)
    gains = rng.uniform(0.8, 1.2, 3).astype(np.float32)
    grey, ramp, ramp_low, ramp_angle = rng.random() < 0.2, rng.random() < 0.3, rng.uniform(0.35, 0.9), rng.uniform(
        0, 2 * np.pi)
    x = (image.astype(np.float32) / 255) ** gamma
    if grey:
        x = np.repeat(x @ np.array([0.299, 0.587, 0.114], np.float32), 3).reshape(x.shape)
    x = (x - x.mean()) * contrast + x.mean() + brightness
    x = x * gains
    if ramp:
        h, w = x.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = (xx - w / 2) * np.cos(ramp_angle) + (yy - h / 2) * np.sin(ramp_angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        x = x * (1 - (1 - ramp_low) * t)[..., None]
    return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)


PHOTOMETRIC = ("basic", "wide")


def train_transform(imgsz: int, seed: int = 0, soft_targets: bool = False, photometric: str = "basic"
                    ) -> SegmentAugment:
    """Affine, flips, 90-degree rotations and a random crop, then brightness/contrast (`SegmentAugment`).

    The transform keeps its own random stream (global seeds do not reach it): `seed` fixes it here,
    and `seed_augmentation_worker` gives each DataLoader worker its own reproducible stream.
    `soft_targets`: also move a `soft` (H, W, K) array of teacher probabilities with the mask.
    `photometric`: "basic" brightness/contrast or "wide" lighting (`wide_photometric`)."""
    return SegmentAugment(imgsz, seed, soft_targets, photometric)


class SegmentationDataset(Dataset):
    """Image/mask pairs as (float image (3,H,W) in [0,1], float mask (H,W) in {0,1}, index).

    Small sets are decoded once and kept in memory (`cache=True`): decoding is a noticeable share
    of a CPU training step otherwise. Masks can be dilated on load (the MCFF-L recipe: 3x3, x3).
    """

    def __init__(self, samples: list[Sample], transform: SegmentAugment | None = None, cache: bool = True,
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
        x = image_tensor(image)
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


def training_split(source: SegmentationSource, config: dict) -> tuple[list[Sample], list[Sample], str]:
    """The train/validation split a run with this config made (its `val_fraction`, `split_seed` and k-fold
    `folds`/`fold`, defaults 0.1, 0, none): training draws with it, and so do the views that score its 'val', so
    they never touch the images it trained on."""
    return split_train_val(source, float(config.get("val_fraction", 0.1)), int(config.get("split_seed", 0)),
                           config.get("folds"), config.get("fold"))


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


def labelled_split(data: str | Path, split: str) -> list[Sample]:
    """The labelled samples of DATA's split, or one line saying that no masks were found (and where they were looked
    for) or that the split has none: what `val`, `robustness` and `corrupt` read."""
    source = discover(data)
    samples = eval_samples(source, split)
    if not samples:
        raise DataError(no_masks_message(source, split))
    return samples


def scored_split(data: str | Path, split: str, config: dict | None = None) -> tuple[list[Sample], str]:
    """The labelled samples `val` scores for SPLIT, and where they come from. 'val' of a set that has
    no val split is the validation draw training made from its train split (the weights' `val_fraction` and
    `split_seed`, defaults 0.1 and 0), so a threshold chosen there never sees the test split; the same holds for
    a flat folder the weights were trained on. Any other flat folder is scored whole."""
    config = config or {}
    source = discover(data)
    # a k-fold run pooled train and val, so even a set's own val split is mostly images it trained on
    held_out = split == "val" and ("val" not in source.splits or bool(config.get("folds")))
    trained_here = config.get("data") and Path(str(config["data"])).resolve() == Path(data).resolve()
    if held_out and ("train" in source.splits or ("all" in source.splits and trained_here)):
        _, val, how = training_split(source, config)
        return val, f"held out of training: {how}"
    samples = eval_samples(source, split)
    if not samples:
        raise DataError(no_masks_message(source, split))
    return samples, f"split {split!r}" if split in source.splits else f"all {len(samples)} pairs of the folder"


def drop_bad(samples: list[Sample], bad: set[str]) -> list[Sample]:
    return [s for s in samples if str(s.image) not in bad]
