"""The paired bootstrap of `distill --baseline`: pooled metrics and verdicts against hand-computed values."""

import numpy as np
import pytest

from defectkd.engine.compare import paired_bootstrap
from defectkd.tasks import TASKS


def test_segment_rows_pool_pixels_over_images():
    rows = np.array([[2, 0, 0], [0, 2, 0], [1, 0, 1]], dtype=float)  # tp, fp, fn per image
    assert TASKS["segment"].rows_metric(rows) == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))  # pooled, not per image


def test_verdicts_of_the_interval():
    task = TASKS["classify"]
    right, wrong = np.ones((40, 1)), np.zeros((40, 1))
    r = paired_bootstrap(task, right, wrong, n=200)
    assert (r["gain"], r["low"], r["high"], r["verdict"]) == (1.0, 1.0, 1.0, "better")
    assert paired_bootstrap(task, wrong, right, n=200)["verdict"] == "worse"
    same = paired_bootstrap(task, right, right, n=200)
    assert (same["gain"], same["low"], same["high"], same["verdict"]) == (0.0, 0.0, 0.0, "within noise")
    mixed = paired_bootstrap(task, np.r_[right[:20], wrong[:20]], np.r_[wrong[:20], right[:20]], n=500)
    assert mixed["gain"] == 0.0 and mixed["low"] < 0 < mixed["high"] and mixed["verdict"] == "within noise"


def test_a_paired_interval_is_narrower_than_the_gap_between_two_unpaired_ones():
    """Pairing is the point: 30 of 200 images flip from wrong to right; resampled together the gain's interval
    stays above 0 although each model's own accuracy varies by more than the gain."""
    rng = np.random.default_rng(1)
    b = (rng.random((200, 1)) < 0.7).astype(float)
    a = b.copy()
    a[np.flatnonzero(b[:, 0] == 0)[:30]] = 1.0
    r = paired_bootstrap(TASKS["classify"], a, b, n=1000)
    assert r["gain"] == pytest.approx(30 / 200) and r["low"] > 0 and r["verdict"] == "better"


def test_different_image_counts_are_refused():
    with pytest.raises(ValueError, match="40 and 3 images"):
        paired_bootstrap(TASKS["classify"], np.ones((40, 1)), np.ones((3, 1)))
