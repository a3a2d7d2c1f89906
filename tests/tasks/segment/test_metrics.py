"""Segmentation metrics against numbers computed by hand on tiny masks."""

import numpy as np
import pytest
import torch

from defectkd.tasks.segment.metrics import SegmentationMetrics, tolerant_counts


def _masks():
    truth = torch.zeros(4, 4)
    truth[0, 0] = truth[0, 1] = truth[1, 1] = 1  # 3 crack pixels
    prob = torch.zeros(4, 4)
    prob[0, 0] = 0.9  # TP
    prob[0, 1] = 0.6  # TP
    prob[1, 1] = 0.3  # FN at 0.5, TP at 0.3
    prob[2, 2] = 0.7  # FP
    prob[3, 3] = 0.2  # TN at 0.5, FP at 0.2
    return prob, truth


def test_pooled_metrics_by_hand():
    prob, truth = _masks()
    m = SegmentationMetrics(threshold=0.5)
    m.update(prob, truth)
    r = m.compute()
    # TP 2, FP 1, FN 1, TN 12
    assert r["precision"] == pytest.approx(2 / 3)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3)
    assert r["iou"] == pytest.approx(2 / 4)
    assert r["miou_2class"] == pytest.approx((2 / 4 + 12 / 14) / 2)
    # best single threshold: t in (0.3, 0.6] except... t=0.3 gives TP 3, FP 1 (0.7), FN 0 -> F1 6/7
    assert r["ods_f1"] == pytest.approx(6 / 7)
    assert 0.21 <= r["ods_threshold"] <= 0.3
    assert r["ois_f1"] == pytest.approx(6 / 7)


def test_pooled_vs_per_image_mean():
    prob, truth = _masks()
    empty_prob, empty_truth = torch.zeros(4, 4), torch.zeros(4, 4)
    m = SegmentationMetrics(threshold=0.5)
    m.update(torch.stack([prob, empty_prob]), torch.stack([truth, empty_truth]))
    r = m.compute()
    assert r["f1"] == pytest.approx(2 / 3)  # pooled: the empty image adds nothing
    assert r["f1_mean_img"] == pytest.approx((2 / 3 + 1.0) / 2)  # empty vs empty counts as perfect
    assert r["iou_mean_img"] == pytest.approx((0.5 + 1.0) / 2)
    assert r["images"] == 2


def test_ods_differs_from_ois():
    # image A is best at a low threshold, image B at a high one
    truth_a = torch.tensor([[1.0, 0.0]])
    prob_a = torch.tensor([[0.3, 0.1]])
    truth_b = torch.tensor([[1.0, 0.0]])
    prob_b = torch.tensor([[0.9, 0.6]])
    m = SegmentationMetrics()
    m.update(prob_a, truth_a)
    m.update(prob_b, truth_b)
    r = m.compute()
    assert r["ois_f1"] == pytest.approx(1.0)  # each image separable on its own
    # one threshold: t in (0.1,0.3] -> A: TP1; B: TP1 FP1 -> F1 = 4/5; t in (0.6,0.9] -> TP1 FN1 -> 2/3
    assert r["ods_f1"] == pytest.approx(4 / 5)


def test_no_prediction_has_zero_precision():
    m = SegmentationMetrics()
    m.update(torch.zeros(3, 3), torch.eye(3))
    r = m.compute()
    assert r["precision"] == 0.0 and r["recall"] == 0.0 and r["f1"] == 0.0


def test_matches_torchmetrics():
    from torchmetrics.functional.classification import binary_f1_score, binary_jaccard_index

    g = torch.Generator().manual_seed(0)
    prob = torch.rand(3, 40, 40, generator=g)
    truth = (torch.rand(3, 40, 40, generator=g) > 0.8).float()
    m = SegmentationMetrics(threshold=0.5)
    m.update(prob, truth)
    r = m.compute()
    assert r["f1"] == pytest.approx(binary_f1_score(prob, truth.long()).item(), abs=1e-6)
    assert r["iou"] == pytest.approx(binary_jaccard_index(prob, truth.long()).item(), abs=1e-6)


def test_tolerant_accepts_small_shift_exact_does_not():
    h, w = 200, 300  # diagonal 360.6 -> maxDist 2.7 px
    truth = np.zeros((h, w), np.uint8)
    truth[100, 20:280] = 1
    prob = np.zeros((h, w), np.float32)
    prob[102, 20:280] = 0.9  # 2 px below the true crack
    counts = tolerant_counts(prob, truth, thresholds=(0.5,))
    matched_pred, n_pred, matched_truth, n_truth = counts[0]
    assert matched_pred == n_pred and matched_truth == n_truth
    m = SegmentationMetrics(tolerant=True)
    m.update(torch.from_numpy(prob), torch.from_numpy(truth))
    r = m.compute()
    assert r["f1"] == 0.0
    assert r["f1_tol"] == pytest.approx(1.0)
    far = np.zeros((h, w), np.float32)
    far[110, 20:280] = 0.9  # 10 px away: not matched
    assert tolerant_counts(far, truth, thresholds=(0.5,))[0][0] == 0


def test_pr_curve_points_match_thresholded_metrics():
    prob, truth = _masks()
    m = SegmentationMetrics()
    m.update(prob, truth)
    thresholds, precision, recall = m.pr_curve()
    k = 50  # threshold 0.5
    assert thresholds[k] == pytest.approx(0.5)
    assert precision[k] == pytest.approx(2 / 3) and recall[k] == pytest.approx(2 / 3)
    assert recall[0] == pytest.approx(1.0) and precision[0] == pytest.approx(3 / 16)  # t=0: all pixels crack


def test_crack_width_and_recall_by_width():
    """A 1-px line and a 7-px band: widths 1 and 7 along them; finding only the band gives recall 0 on the thinnest
    bin and 1 on the 5-8 px bin (pixels counted by hand)."""
    import numpy as np
    import torch

    from defectkd.tasks.segment.metrics import SegmentationMetrics, crack_widths

    m = np.zeros((40, 60), np.uint8)
    m[10, 5:55] = 1  # 50 pixels, 1 wide
    m[20:27, 5:55] = 1  # 350 pixels, 7 wide
    w = crack_widths(m)
    assert set(np.unique(w[10, 5:55])) == {1.0} and np.median(w[20:27, 5:55]) == 7.0 and (w[m == 0] == 0).all()
    prob = np.zeros_like(m, np.float32)
    prob[20:27, 5:55] = 0.9
    metrics = SegmentationMetrics(threshold=0.5, tolerant=True)
    metrics.update(torch.from_numpy(prob), torch.from_numpy(m))
    out = metrics.compute()
    assert out["pixels_by_width"]["1-2px"] == 50 and out["recall_by_width"]["1-2px"] == 0.0
    assert out["recall_by_width"]["5-8px"] == 1.0 and out["recall_by_width"][">8px"] is None
    assert sum(out["pixels_by_width"].values()) == 400
