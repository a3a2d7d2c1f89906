"""Soft-label cache: float16 round trip against the teacher, manifest, and refusal of stale caches."""

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from defectkd.core.errors import DataError
from defectkd.data.layouts import discover
from defectkd.models.loading import load_checkpoint_model
from defectkd.tasks.segment.soft_labels import SoftLabelCache, write_soft_labels


@pytest.fixture
def data(tmp_path, tiny_seg):
    copy = tmp_path / "data"
    shutil.copytree(tiny_seg, copy)
    return copy


def test_round_trip_matches_the_teacher_softened_at_T(tmp_path, data, tiny_weights):
    out = tmp_path / "soft"
    manifest = write_soft_labels(tiny_weights, data, 10.0, out)
    saved = json.loads((out / "manifest.json").read_text())
    assert saved == manifest and saved["T"] == 10.0 and saved["dtype"] == "float16"
    assert saved["heads"] == ["standard", "dilated", "rect", "mix"] and saved["teacher_model"] == "mcff-l"
    assert len(saved["images"]) == 24 and len(list(out.glob("*.npz"))) == 24
    samples = discover(data).labelled("all")
    cache = SoftLabelCache(out, 10.0, data, samples)
    teacher, _ = load_checkpoint_model(tiny_weights)
    image = samples[5].image
    x = torch.from_numpy(cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB).transpose(2, 0, 1)).float() / 255
    with torch.no_grad():
        expected = {h: torch.softmax(z / 10.0, dim=1)[0].numpy() for h, z in teacher.forward_heads(x[None]).items()}
    got = cache.load(image)
    for head, probs in expected.items():
        assert got[head].dtype == np.float16 and got[head].shape == (2, 64, 64)
        assert np.abs(got[head].astype(np.float32) - probs).max() < 1e-3  # float16 precision, not 8-bit (4e-3)


def test_stale_or_mismatched_cache_is_refused(tmp_path, data, tiny_weights):
    out = tmp_path / "soft"
    write_soft_labels(tiny_weights, data, 10.0, out)
    samples = discover(data).labelled("all")
    with pytest.raises(DataError, match=r"made at T=10 but the run asks T=5"):
        SoftLabelCache(out, 5.0, data, samples)
    img = cv2.imread(str(samples[3].image))
    img[0, 0] = 255 - img[0, 0]
    cv2.imwrite(str(samples[3].image), img)  # the image changes after the cache was made
    with pytest.raises(DataError, match=f"soft labels of {samples[3].image} are stale"):
        SoftLabelCache(out, 10.0, data, samples)
    extra = data / "images" / "new.png"
    shutil.copy(samples[0].image, extra)
    with pytest.raises(DataError, match="no soft labels for .*new.png"):
        SoftLabelCache(out, 10.0, data, [type(samples[0])(extra, None)])
    with pytest.raises(DataError, match="no soft-label manifest"):
        SoftLabelCache(tmp_path, 10.0, data, samples)


def test_an_existing_cache_is_never_overwritten(tmp_path, data, tiny_weights):
    out = tmp_path / "soft"
    write_soft_labels(tiny_weights, data, 10.0, out)
    before = (out / "manifest.json").read_text()
    with pytest.raises(DataError, match="not empty"):
        write_soft_labels(tiny_weights, data, 5.0, out)
    assert (out / "manifest.json").read_text() == before


def test_soft_labels_follow_the_spatial_augmentation(data):
    """With soft labels equal to the one-hot mask, the augmented soft labels must still equal the
    augmented mask pixel for pixel (affine, crop, flips, rotations move both the same way)."""
    from defectkd.data.io import read_mask
    from defectkd.tasks.segment.dataset import train_transform
    from defectkd.tasks.segment.soft_dataset import SoftLabelDataset

    samples = discover(data).labelled("all")[:4]

    class MaskAsSoftLabels:
        heads, classes = ["mix"], 2

        def load(self, image):
            mask = read_mask(next(s.mask for s in samples if s.image == image)).astype(np.float16)
            return {"mix": np.stack([1 - mask, mask])}

    dataset = SoftLabelDataset(samples, MaskAsSoftLabels(), transform=train_transform(48, seed=1, soft_targets=True))
    moved = 0
    for i in range(4):
        for _ in range(3):
            x, y, _, extras = dataset[i]
            soft = extras["soft"]
            assert extras["labelled"] and x.shape == (3, 48, 48) and soft["mix"].shape == (2, 48, 48)
            assert torch.equal(soft["mix"][1], y) and torch.equal(soft["mix"][0], 1 - y)
            moved += int(y.sum() > 0)
    assert moved > 0  # cracks were in view, so the equality above was not between empty maps
