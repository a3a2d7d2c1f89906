"""The corruption suite: shapes, severities that grow, determinism, bad names, NoisyMix's share, and each
corruption against its definition (exact salt counts, the brightness map, OpenCV blur and JPEG references)."""

import cv2
import numpy as np
import pytest

from defectkd.core.errors import ConfigError
from defectkd.data.corruptions import (
    BLUR_SIGMA,
    BRIGHTNESS_SHIFT,
    CONTRAST_DROP,
    CORRUPTIONS,
    JPEG_QUALITY,
    MOTION_KERNEL,
    NOISE_AMOUNT,
    NOISE_STD,
    SEVERITIES,
    NoisyMix,
    corrupt,
    select,
)
from defectkd.tasks.segment.synthetic import synth_crack_sample


@pytest.fixture(scope="module")
def image():
    rgb, _ = synth_crack_sample(5, 96)
    return rgb


def test_order_of_names():
    assert CORRUPTIONS == ("salt", "pepper", "salt-pepper", "gaussian-noise", "gaussian-blur", "motion-blur", "jpeg",
                           "brightness-contrast", "crack-texture")
    assert SEVERITIES == (1, 2, 3, 4, 5)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_every_severity_keeps_shape_and_changes_image(image, name):
    for severity in SEVERITIES:
        out = corrupt(image, name, severity, seed=1)
        assert out.shape == image.shape and out.dtype == np.uint8, (name, severity)
        assert not np.array_equal(out, image), (name, severity)
    rect = image[:40, :72].copy()  # not square, not a multiple of anything
    assert corrupt(rect, name, 3, seed=2).shape == rect.shape


def _changed(a, b):
    return float((a != b).any(axis=2).mean())


@pytest.mark.parametrize("name", ["salt", "pepper", "salt-pepper"])
def test_salt_pepper_changes_the_stated_share_of_pixels(image, name):
    fractions = [_changed(corrupt(image, name, s, seed=0), image) for s in SEVERITIES]
    assert fractions == sorted(fractions) and fractions[0] < fractions[-1]
    for frac, amount in zip(fractions, NOISE_AMOUNT, strict=True):
        assert frac == pytest.approx(amount, abs=0.003)  # pixels already 0/255 stay "unchanged"
    out = corrupt(image, name, 5, seed=0)
    hit = (out != image).any(axis=2)
    values = set(np.unique(out[hit]))
    assert values <= {0, 255} and ({255} if name == "salt" else {0} if name == "pepper" else {0, 255}) == values


def test_gaussian_noise_std_grows(image):
    flat = np.full((96, 96, 3), 128, np.uint8)  # no clipping: the measured std is the configured one
    stds = [float((corrupt(flat, "gaussian-noise", s, seed=0).astype(np.float64) - 128).std()) for s in SEVERITIES]
    assert stds == sorted(stds)
    for std, frac in zip(stds, NOISE_STD, strict=True):
        assert std == pytest.approx(frac * 255, rel=0.1)


@pytest.mark.parametrize("name", ["gaussian-blur", "motion-blur", "jpeg", "brightness-contrast", "crack-texture"])
def test_damage_grows_with_severity(image, name):
    err = [float(np.abs(corrupt(image, name, s, seed=0).astype(np.float64) - image).mean()) for s in (1, 5)]
    assert err[1] > err[0]


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_deterministic_by_seed(image, name):
    a = corrupt(image, name, 4, seed=11)
    assert np.array_equal(a, corrupt(image, name, 4, seed=11))
    if name not in ("gaussian-blur", "jpeg"):  # those draw nothing at random
        assert any(not np.array_equal(a, corrupt(image, name, 4, seed=s)) for s in (12, 13, 14))


def test_crack_texture_darkens_thin_lines_only(image):
    out = corrupt(image, "crack-texture", 3, seed=0)
    assert (out <= image).all()
    assert 0.0 < _changed(out, image) < 0.3


def test_unknown_name_or_severity(image):
    with pytest.raises(ConfigError, match="unknown corruption 'snow'.*salt, pepper"):
        corrupt(image, "snow", 1)
    with pytest.raises(ConfigError, match="severity 6"):
        corrupt(image, "salt", 6)
    with pytest.raises(ConfigError, match="severity 0"):
        corrupt(image, "salt", 0)


def test_select_parses_comma_lists():
    assert select(None, None) == (CORRUPTIONS, SEVERITIES)
    assert select("salt, jpeg", "1,5") == (("salt", "jpeg"), (1, 5))
    assert select(["pepper"], [3]) == (("pepper",), (3,))
    with pytest.raises(ConfigError, match="unknown corruption 'fog'"):
        select("salt,fog", None)
    with pytest.raises(ConfigError, match="severity 'x'"):
        select(None, "1,x")


def test_noisy_mix_corrupts_about_a_third(image):
    small = image[:32, :32].copy()
    mix = NoisyMix(seed=0)
    hits = sum(not np.array_equal(mix(small), small) for _ in range(300))
    assert 0.25 <= hits / 300 <= 0.42
    mix.set_random_seed(7)
    first = [mix(small) for _ in range(20)]
    mix.set_random_seed(7)
    assert all(np.array_equal(a, b) for a, b in zip(first, [mix(small) for _ in range(20)], strict=True))
    assert all(not np.array_equal(NoisyMix(p=1.0, seed=s)(small), small) for s in range(10))
    assert all(np.array_equal(NoisyMix(p=0.0, seed=s)(small), small) for s in range(10))
    with pytest.raises(ConfigError, match="unknown corruption"):
        NoisyMix(corruptions=["rain"])


def test_salt_pepper_hits_an_exact_pixel_count():
    grey = np.full((50, 70, 3), 128, np.uint8)  # no pixel is 0 or 255 already
    for name in ("salt", "pepper", "salt-pepper"):
        for severity, amount in zip(SEVERITIES, NOISE_AMOUNT, strict=True):
            hit = (corrupt(grey, name, severity, seed=3) != grey).any(axis=2)
            assert int(hit.sum()) == int(50 * 70 * amount), (name, severity)


def test_brightness_contrast_is_the_documented_map(image):
    for severity in SEVERITIES:
        c, b = CONTRAST_DROP[severity - 1], BRIGHTNESS_SHIFT[severity - 1]
        out = corrupt(image, "brightness-contrast", severity, seed=severity).astype(np.float64)
        options = [np.clip((image - 127.5) * (1 - c) + 127.5 + s * b * 255, 0, 255) for s in (1, -1)]
        assert min(np.abs(out - o).max() for o in options) <= 1.0  # one of the two signs, up to truncation


def test_blur_and_jpeg_match_opencv_references(image):
    for severity, sigma in zip(SEVERITIES, BLUR_SIGMA, strict=True):
        size = int(sigma * 3.5) * 2 + 1
        kernel = cv2.getGaussianKernel(size, sigma)
        ref = cv2.sepFilter2D(image, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT_101)
        assert np.abs(corrupt(image, "gaussian-blur", severity).astype(int) - ref).max() <= 1
    for severity, quality in zip(SEVERITIES, JPEG_QUALITY, strict=True):
        bgr = cv2.imdecode(cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1], 1)
        assert np.abs(corrupt(image, "jpeg", severity).astype(float) - bgr[..., ::-1]).mean() < 0.5


def test_motion_blur_smears_a_dot_along_one_line():
    dot = np.zeros((41, 41, 3), np.uint8)
    dot[20, 20] = 255
    for severity, length in zip(SEVERITIES, MOTION_KERNEL, strict=True):
        out = corrupt(dot, "motion-blur", severity, seed=severity)[..., 0]
        ys, xs = np.nonzero(out)
        assert 2 <= len(ys) <= length and out.sum() == pytest.approx(255, abs=length)
        assert (length - 1) // 2 <= max(np.ptp(ys), np.ptp(xs)) <= length - 1


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_read_only_and_strided_inputs_are_left_alone(image, name):
    frozen = image.copy()
    frozen.setflags(write=False)
    strided = np.ascontiguousarray(np.repeat(image, 2, axis=1))[:, ::2]
    for source in (frozen, strided):
        out = corrupt(source, name, 3, seed=4)
        assert out.flags.c_contiguous and out.dtype == np.uint8 and out.shape == image.shape
        assert np.array_equal(out, corrupt(image, name, 3, seed=4))
    assert np.array_equal(frozen, image)
