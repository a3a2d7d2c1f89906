"""Layout detection and pairing, and the data-check report."""

import cv2
import numpy as np
import pytest
from scipy.io import savemat

from defectkd.core.errors import DataError
from defectkd.data import discover
from defectkd.tasks.segment.check import check_dataset
from defectkd.tasks.segment.dataset import split_train_val


def _img(path, h=16, w=24):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 120, np.uint8))


def _mask(path, h=16, w=24, frac_rows=2):
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((h, w), np.uint8)
    m[:frac_rows] = 255
    cv2.imwrite(str(path), m)


def test_splits_layout(tmp_path):
    for split in ("train", "test"):
        for i in range(3):
            _img(tmp_path / split / "images" / f"{split}{i}.jpg")
            _mask(tmp_path / split / "masks" / f"{split}{i}.png")
    src = discover(tmp_path)
    assert src.layout == "splits" and set(src.splits) == {"train", "test"}
    report = check_dataset(tmp_path)
    assert report["splits"] == {"train": {"pairs": 3, "unlabelled": 0}, "test": {"pairs": 3, "unlabelled": 0}}
    assert report["crack_fraction"]["mean"] == pytest.approx(2 / 16)
    assert report["image_sizes"] == {"24x16": 6} and report["problems"] == []


def test_images_masks_problems_listed(tmp_path):
    _img(tmp_path / "images" / "a.jpg")
    _mask(tmp_path / "masks" / "a.png")
    _img(tmp_path / "images" / "b.jpg")
    _mask(tmp_path / "masks" / "b.png", h=8)  # wrong size
    _img(tmp_path / "images" / "c.jpg")  # no mask
    _mask(tmp_path / "masks" / "d.png")  # no image
    (tmp_path / "images" / "e.jpg").write_bytes(b"garbage")  # corrupt
    _mask(tmp_path / "masks" / "e.png")
    report = check_dataset(tmp_path)
    assert report["layout"] == "images-masks"
    assert report["pairs"] == 1 and report["unlabelled"] == 1
    messages = {p["file"].rsplit("/", 1)[-1]: p["message"] for p in report["problems"]}
    assert "24x8" in messages["b.png"] and "24x16" in messages["b.png"]
    assert "no mask" in messages["c.jpg"]
    assert "no image" in messages["d.png"]
    assert "corrupt" in messages["e.jpg"]


def test_crackforest_layout(tmp_path):
    (tmp_path / "groundTruth").mkdir()
    for i in range(2):
        _img(tmp_path / "image" / f"00{i}.jpg", 8, 8)
        seg = np.ones((8, 8), np.uint8)
        seg[2:4] = 2
        savemat(tmp_path / "groundTruth" / f"00{i}.mat", {"groundTruth": {"Segmentation": seg}})
    _img(tmp_path / "image" / "009.jpg", 8, 8)  # unlabelled, as in CFD
    report = check_dataset(tmp_path)
    assert report["layout"] == "crackforest"
    assert report["pairs"] == 2 and report["unlabelled"] == 1
    assert report["crack_fraction"]["mean"] == pytest.approx(2 / 8)
    assert all(not p["blocking"] for p in report["problems"])


def test_images_only(tmp_path):
    for i in range(3):
        _img(tmp_path / f"{i}.png")
    src = discover(tmp_path)
    assert src.layout == "images-only" and len(src.splits["all"]) == 3
    assert all(s.mask is None for s in src.splits["all"])


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_bad_paths(tmp_path, make):
    path = tmp_path / "x"
    if make == "empty":
        path.mkdir()
    elif make == "file":
        path.write_text("hi")
    with pytest.raises(DataError, match=str(path)):
        discover(path)


def test_validation_split_is_seeded(tmp_path):
    for i in range(20):
        _img(tmp_path / "images" / f"{i:02d}.jpg")
        _mask(tmp_path / "masks" / f"{i:02d}.png")
    src = discover(tmp_path)
    a = split_train_val(src, 0.2, seed=1)
    b = split_train_val(src, 0.2, seed=1)
    c = split_train_val(src, 0.2, seed=2)
    assert [s.image for s in a[1]] == [s.image for s in b[1]] and len(a[1]) == 4
    assert [s.image for s in a[1]] != [s.image for s in c[1]]
    assert not {s.image for s in a[0]} & {s.image for s in a[1]}
    assert "seed 1" in a[2]
