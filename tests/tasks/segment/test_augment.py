"""Training augmentations (segmentation and classification): seeded streams, joint moves, independent draws."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from defectkd.core.errors import ConfigError
from defectkd.tasks.classify.dataset import classify_train_transform
from defectkd.tasks.segment.dataset import train_transform


def _pair(h=64, w=64, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = (rng.random((h, w)) < 0.2).astype(np.uint8)
    return image, mask


def test_same_seed_same_sample_and_other_seeds_differ():
    image, mask = _pair()
    soft = np.stack([1.0 - mask, mask, np.random.default_rng(1).random(mask.shape)], axis=2).astype(np.float32)
    aug = train_transform(48, seed=0, soft_targets=True)
    runs = []
    for _ in range(2):
        aug.set_random_seed(123)
        runs.append([aug(image=image, mask=mask, soft=soft) for _ in range(4)])
    for a, b in zip(*runs, strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in ("image", "mask", "soft"))
    outs = []
    for seed in range(6):
        aug.set_random_seed(seed)
        outs.append(aug(image=image, mask=mask, soft=soft)["image"])
    assert len({o.tobytes() for o in outs}) == len(outs)
    assert np.array_equal(train_transform(48, seed=5)(image=image, mask=mask)["image"],
                          train_transform(48, seed=5)(image=image, mask=mask)["image"])


def test_shapes_dtypes_padding_and_crops():
    aug = train_transform(48, seed=0, soft_targets=True)
    for h, w in ((64, 64), (30, 40), (100, 52), (48, 48)):
        image, mask = _pair(h, w)
        soft = np.repeat(mask[..., None].astype(np.float32), 6, axis=2)  # more channels than OpenCV warps at once
        for _ in range(8):
            out = aug(image=image, mask=mask, soft=soft)
            assert out["image"].shape == (48, 48, 3) and out["image"].dtype == np.uint8
            assert out["mask"].shape == (48, 48) and out["mask"].dtype == np.uint8
            assert out["soft"].shape == (48, 48, 6) and out["soft"].dtype == np.float32
            assert np.array_equal(out["soft"][..., 5], out["mask"])  # nearest everywhere: labels stay labels
            assert set(np.unique(out["mask"])) <= {0, 1}
    with pytest.raises(ConfigError, match="soft_targets"):
        train_transform(48)(image=image, mask=mask, soft=soft)


def test_mask_moves_with_the_image():
    """Blocky image whose red channel is 255 x mask: after any augmentation a threshold of red is the mask,
    but for bilinear seams along the block edges under the affine warp."""
    blocks = (np.random.default_rng(2).random((8, 8)) < 0.4).astype(np.uint8)
    mask = np.kron(blocks, np.ones((8, 8), np.uint8))
    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 0] = mask * 255
    image[..., 1] = 90
    aug = train_transform(56, seed=0)
    for seed in range(30):
        aug.set_random_seed(seed)
        out = aug(image=image, mask=mask)
        agree = float(((out["image"][..., 0] > 127) == (out["mask"] > 0)).mean())
        assert agree > 0.97, (seed, agree)


def test_flips_are_drawn_independently_so_mirror_images_occur():
    """Two blobs in a soft map around the centre: rotations keep the sign of the cross product of their centroids,
    mirrors flip it. (albumentations 2.0.8 reseeded every transform of a Compose with the same seed, so both flips
    fired together and a mirror image never came out.)"""
    size, c = 64, 31.5
    yy, xx = np.mgrid[:size, :size]
    right = ((xx - c - 8) ** 2 + (yy - c) ** 2 <= 9).astype(np.float32)
    up = ((xx - c) ** 2 + (yy - c + 8) ** 2 <= 4).astype(np.float32)
    soft = np.stack([right, up], axis=2)
    image, mask = np.full((size, size, 3), 100, np.uint8), np.zeros((size, size), np.uint8)
    centre = (xx - c) ** 2 + (yy - c) ** 2 <= 16 ** 2
    aug = train_transform(size, seed=0, soft_targets=True)
    signs = []
    for seed in range(120):
        aug.set_random_seed(seed)
        moved = aug(image=image, mask=mask, soft=soft)["soft"] * centre[..., None]
        (x0, y0), (x1, y1) = ((float((xx * m).sum() / m.sum()) - c, float((yy * m).sum() / m.sum()) - c)
                              for m in (moved[..., 0], moved[..., 1]))
        signs.append(np.sign(x0 * y1 - y0 * x1))
    mirrored = signs.count(1.0) / len(signs)  # the input's own sign is -1
    assert 0.3 < mirrored < 0.7


def test_epoch_seeded_items_do_not_depend_on_what_came_before(tiny_seg):
    from defectkd.data.layouts import discover
    from defectkd.engine.epoch_seed import EpochSeeded
    from defectkd.tasks.segment.dataset import SegmentationDataset

    samples = discover(tiny_seg).labelled("all")[:6]
    data = EpochSeeded(SegmentationDataset(samples, train_transform(48, seed=0)), seed=3)
    first = data[2]
    for key in (0, 5, 8, 3):
        data[key]
    again = data[2]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], data[2 + 6][0])  # the same image in the next epoch is augmented anew
    fresh = EpochSeeded(SegmentationDataset(samples, train_transform(48, seed=99)), seed=3)
    assert torch.equal(fresh[2][0], first[0])  # the key's seed, not the transform's initial one, decides


def test_classify_augment_is_seeded_and_flips_independently():
    image = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    aug = classify_train_transform(32, seed=0)
    aug.set_random_seed(4)
    a = [aug(image=image)["image"] for _ in range(5)]
    aug.set_random_seed(4)
    assert all(np.array_equal(x, aug(image=image)["image"]) for x in a)
    assert all(x.shape == image.shape and x.dtype == np.uint8 for x in a)
    seen = set()
    for seed in range(60):
        aug.set_random_seed(seed)
        out = aug(image=image)["image"].astype(int)
        for name, view in (("none", image), ("h", image[:, ::-1]), ("v", image[::-1]), ("hv", image[::-1, ::-1])):
            if np.corrcoef(out.ravel(), view.astype(int).ravel())[0, 1] > 0.9:  # brightness/contrast aside
                seen.add(name)
    assert seen == {"none", "h", "v", "hv"}


def test_no_albumentations_import():
    code = ("import sys, defectkd.data.corruptions, defectkd.tasks.segment.dataset, defectkd.tasks.classify.dataset;"
            "assert 'albumentations' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_wide_photometric_follows_its_draws_and_leaves_geometry_alone():
    """wide_photometric recomputed by hand from the same draws (gamma, contrast about the mean, brightness, gains,
    grey, ramp) on a flat image; with "wide" the mask moves as with "basic" (same geometric draws) and only the
    image's lighting differs; an unknown name is refused."""
    from defectkd.tasks.segment.dataset import wide_photometric

    flat = np.full((8, 8, 3), 100, np.uint8)
    rng = np.random.default_rng(7)
    g, _contrast, b = 2.0 ** rng.uniform(-1, 1), rng.uniform(0.5, 1.3), rng.uniform(-0.15, 0.15)
    gains = rng.uniform(0.8, 1.2, 3)
    _grey, ramp = rng.random() < 0.2, rng.random() < 0.3
    assert not ramp  # a flat image stays flat without the ramp: one value per channel
    x = (100 / 255) ** g  # a grey image's grey is itself; contrast about the mean leaves a flat image as it was
    expected = np.clip((x + b) * gains * 255 + 0.5, 0, 255).astype(np.uint8)
    out = wide_photometric(flat, np.random.default_rng(7))
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1  # float32 there, float64 here

    image, mask = _pair()
    basic, wide = train_transform(48, seed=3), train_transform(48, seed=3, photometric="wide")
    a, w = basic(image=image, mask=mask), wide(image=image, mask=mask)
    assert np.array_equal(a["mask"], w["mask"]) and not np.array_equal(a["image"], w["image"])
    with pytest.raises(ConfigError, match="photometric"):
        train_transform(48, photometric="strong")
