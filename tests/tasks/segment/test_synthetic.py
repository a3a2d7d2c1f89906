"""Synthetic cracks: deterministic, realistic crack fraction, binary masks, distractors present."""

import numpy as np

from defectkd.tasks.segment.synthetic import synth_crack_sample


def test_deterministic_by_seed():
    a_img, a_mask = synth_crack_sample(7, 128)
    b_img, b_mask = synth_crack_sample(7, 128)
    c_img, _ = synth_crack_sample(8, 128)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    assert not np.array_equal(a_img, c_img)


def test_crack_fraction_and_mask_values():
    fractions = []
    for seed in range(20):
        img, mask = synth_crack_sample(seed, 256)
        assert img.shape == (256, 256, 3) and img.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        fractions.append((mask > 0).mean())
    assert min(fractions) >= 0.01 and max(fractions) <= 0.06
    assert 0.015 <= float(np.mean(fractions)) <= 0.05


def test_cracks_are_darker_but_not_the_only_dark_things():
    """Crack pixels are darker than their surroundings, yet many non-crack pixels are as dark:
    intensity alone cannot segment the cracks (joints, stains, shadows)."""
    ratios = []
    for seed in range(10):
        img, mask = synth_crack_sample(seed, 256)
        grey = img.mean(axis=2)
        crack = mask > 0
        assert grey[crack].mean() < grey[~crack].mean()
        dark_cut = np.percentile(grey[crack], 75)
        dark_background = (grey[~crack] <= dark_cut).sum()
        ratios.append(dark_background / crack.sum())
    assert np.median(ratios) > 0.5  # at least half as many look-alike dark pixels as crack pixels
