"""Crack measurements reported by predict, checked on masks whose answers are known by hand."""

import math

import numpy as np

from defectkd.deploy.analysis import crack_stats


def test_diagonal_line_counts_sqrt2_per_step():
    mask = np.zeros((20, 20), bool)
    mask[np.arange(10), np.arange(10)] = True
    assert crack_stats(mask)["longest_crack_px"] == round(9 * math.sqrt(2) + 1, 1)


def test_longest_of_two_cracks_and_ratio():
    mask = np.zeros((30, 40), bool)
    mask[5, 2:32] = True  # 30 px
    mask[20, 3:8] = True  # 5 px
    stats = crack_stats(mask)
    assert stats == {"crack_ratio": 35 / 1200, "area_px": 35, "cracks": 2, "longest_crack_px": 30.0}


def test_l_shaped_corner_is_not_counted_twice():
    mask = np.zeros((20, 20), bool)
    mask[5, 2:12] = True
    mask[5:15, 11] = True  # 19 pixels along an L
    assert 18.0 <= crack_stats(mask)["longest_crack_px"] <= 19.0
