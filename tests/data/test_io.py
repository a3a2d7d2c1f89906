"""Mask readers: every encoding gives the same binary mask; CrackForest .mat uses Segmentation == 2."""

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from defectkd.core.errors import DataError
from defectkd.data.io import binarize_mask, read_image, read_mask

TRUTH = np.zeros((12, 16), np.uint8)
TRUTH[3:6, 2:14] = 1
TRUTH[8, 5] = 1


def test_png_0_255(tmp_path):
    cv2.imwrite(str(tmp_path / "m.png"), TRUTH * 255)
    assert np.array_equal(read_mask(tmp_path / "m.png"), TRUTH)


def test_png_0_1(tmp_path):
    cv2.imwrite(str(tmp_path / "m.png"), TRUTH)
    assert np.array_equal(read_mask(tmp_path / "m.png"), TRUTH)


def test_png_1bit(tmp_path):
    Image.fromarray(TRUTH.astype(bool)).convert("1").save(tmp_path / "m.png")
    assert Image.open(tmp_path / "m.png").mode == "1"
    assert np.array_equal(read_mask(tmp_path / "m.png"), TRUTH)


def test_soft_grey_thresholded_at_127():
    soft = np.array([[0, 60, 127, 128, 200, 255]], np.uint8)
    assert binarize_mask(soft).tolist() == [[0, 0, 0, 1, 1, 1]]


def test_jpeg_mask_survives_compression(tmp_path):
    big = cv2.resize(TRUTH, (64, 48), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(tmp_path / "m.jpg"), big * 255, [cv2.IMWRITE_JPEG_QUALITY, 75])
    got = read_mask(tmp_path / "m.jpg")
    assert (got != big).mean() < 0.02  # compression only blurs edges


def test_rgb_mask(tmp_path):
    rgb = np.stack([TRUTH * 255] * 3, axis=2)
    cv2.imwrite(str(tmp_path / "m.png"), rgb)
    assert np.array_equal(read_mask(tmp_path / "m.png"), TRUTH)


def test_crackforest_mat_struct(tmp_path):
    seg = np.ones((12, 16), np.uint16)
    seg[TRUTH == 1] = 2
    seg[0, 0] = 3  # extra region, not a crack
    savemat(tmp_path / "001.mat", {"groundTruth": {"Segmentation": seg, "Boundaries": np.zeros_like(seg)}})
    assert np.array_equal(read_mask(tmp_path / "001.mat"), TRUTH)


def test_crackforest_mat_cell_of_structs(tmp_path):
    seg = np.ones((12, 16), np.uint8)
    seg[TRUTH == 1] = 2
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = {"Segmentation": seg, "Boundaries": np.zeros_like(seg)}
    savemat(tmp_path / "002.mat", {"groundTruth": cell})
    assert np.array_equal(read_mask(tmp_path / "002.mat"), TRUTH)


def test_corrupt_image_names_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        read_image(bad)


def test_mat_without_groundtruth(tmp_path):
    savemat(tmp_path / "x.mat", {"other": np.ones((2, 2))})
    with pytest.raises(DataError, match="groundTruth"):
        read_mask(tmp_path / "x.mat")


def test_a_cut_short_jpeg_or_png_is_refused_by_every_reader(tmp_path):
    """OpenCV decodes the first half and greys the rest with only a warning: the file's end marker tells."""
    import cv2
    import numpy as np
    import pytest

    from defectkd.core.errors import DataError
    from defectkd.data.io import image_size, read_image
    from defectkd.deploy.sources import UnreadableImage, read_rgb

    rng = np.random.default_rng(0)
    for suffix in (".jpg", ".png"):
        whole = tmp_path / f"whole{suffix}"
        cv2.imwrite(str(whole), rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
        half = tmp_path / f"half{suffix}"
        half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        assert image_size(whole) == ((80, 64), "") and read_image(whole).shape == (64, 80, 3)
        assert image_size(half) == (None, "truncated image (the file ends before the image does)")
        with pytest.raises(DataError, match=f"half{suffix}: truncated image"):
            read_image(half)
        with pytest.raises(UnreadableImage, match="truncated image"):
            read_rgb(half)


def test_an_image_over_the_pixel_cap_is_refused_before_decoding(tmp_path, monkeypatch):
    """The size comes from the file's header (PNG IHDR, JPEG SOF, BMP): a 20000 x 20000 picture is refused without
    the gigabytes its decode would take."""
    import cv2

    from defectkd.core.imageheader import header_size
    from defectkd.data.io import image_size
    from defectkd.deploy.sources import UnreadableImage, read_rgb

    monkeypatch.setenv("DEFECTKD_MAX_PIXELS", "5000")
    for suffix in (".png", ".jpg", ".bmp"):
        path = tmp_path / f"big{suffix}"
        cv2.imwrite(str(path), np.zeros((64, 80, 3), np.uint8))  # 5120 pixels
        assert header_size(path.read_bytes()) == (80, 64)
        size, why = image_size(path)
        assert size is None and why.startswith("80x64 pixels, over the limit of 5000") and "DEFECTKD_MAX_PIXELS" in why
        with pytest.raises(DataError, match=f"big{suffix}: 80x64 pixels"):
            read_image(path)
        with pytest.raises(UnreadableImage, match="over the limit"):
            read_rgb(path)
    monkeypatch.setenv("DEFECTKD_MAX_PIXELS", "6000")
    assert read_image(tmp_path / "big.png").shape == (64, 80, 3)
