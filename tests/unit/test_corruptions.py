"""The corruption suite: shapes, severities that grow, determinism, bad names, NoisyMix's share."""

import numpy as np
import pytest

from defectkd.core.errors import ConfigError
from defectkd.data.corruptions import CORRUPTIONS, NOISE_AMOUNT, NOISE_STD, SEVERITIES, NoisyMix, corrupt, select
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
