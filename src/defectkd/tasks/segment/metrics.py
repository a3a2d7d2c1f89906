"""Crack-segmentation metrics, each with an unambiguous name.

Exact metrics come from per-image histograms of the crack probability, split by ground truth:
with B bins, "crack if p >= k/B" gives TP, FP, FN for every threshold k/B at once. From them:
- `precision`, `recall`, `f1` (= Dice), `iou`: crack class, pooled over the set, at `threshold`;
- `f1_mean_img`, `iou_mean_img`: the same per image, then averaged (an image with no crack in
  either prediction or truth scores 1);
- `miou_2class`: mean of crack IoU and background IoU (what many papers call mIoU; far higher);
- `ods_f1` / `ois_f1`: best F1 with one threshold for the whole set / mean of per-image best F1.
Tolerant metrics (`*_tol`) follow the edge-detection protocol: prediction and truth are thinned to
one-pixel skeletons and a pixel counts as matched when the other skeleton lies within
maxDist = 0.0075 x image diagonal. Matching is by distance (not one-to-one bipartite assignment),
the usual fast approximation of the BSDS correspondPixels routine.
`recall_by_width` (with the tolerant metrics): the recall of ground-truth crack pixels at `threshold`, by the local
crack width (`crack_widths`): does the model find the thin cracks, or only the wide ones?
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

BINS = 100
TOL_THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))
MAX_DIST_FRACTION = 0.0075
WIDTH_BINS = ((0, 2, "1-2px"), (2, 4, "3-4px"), (4, 8, "5-8px"), (8, 1e9, ">8px"))  # (low, high], pixels


def crack_widths(truth: np.ndarray, skeleton: np.ndarray | None = None) -> np.ndarray:
    """Local width (pixels) at every crack pixel of a {0,1} mask, 0 elsewhere: the distance transform on the mask's
    skeleton gives the half-width there (width = 2 d - 1: a 1-px line has d = 1), and every crack pixel takes the
    width of its nearest skeleton pixel. `skeleton`: the mask's, when the caller has it already."""
    from skimage.morphology import skeletonize

    mask = truth > 0
    out = np.zeros(mask.shape, np.float32)
    if not mask.any():
        return out
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    skel = skeletonize(mask) if skeleton is None else skeleton
    if not skel.any():
        skel = dist >= dist.max()
    _, labels = cv2.distanceTransformWithLabels((~skel).astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(skel)
    width_of_label = np.zeros(labels.max() + 1, np.float32)
    width_of_label[labels[ys, xs]] = np.maximum(1.0, 2 * dist[ys, xs] - 1)
    out[mask] = width_of_label[labels[mask]]
    return out


def width_counts(pred: np.ndarray, truth: np.ndarray, skeleton: np.ndarray | None = None) -> np.ndarray:
    """(len(WIDTH_BINS), 2): [crack pixels found, crack pixels] per width bin."""
    widths = crack_widths(truth, skeleton)
    out = np.zeros((len(WIDTH_BINS), 2), np.int64)
    for i, (low, high, _) in enumerate(WIDTH_BINS):
        in_bin = (widths > low) & (widths <= high)
        out[i] = int((pred & in_bin).sum()), int(in_bin.sum())
    return out


def operating_threshold(metrics: dict) -> float:
    """The threshold of best pooled F1 (ODS) in `metrics`, kept within [0.01, 0.99] and rounded to 4 digits: what
    a calibration stores in the weights (training's `calibrate`, `val --calibrate`)."""
    return round(min(0.99, max(0.01, float(metrics["ods_threshold"]))), 4)


def _f1(tp, fp, fn):
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-12), 1.0)


def _f1_from_pr(precision, recall):
    """Harmonic mean of precision and recall, 0 where both are 0."""
    p, r = np.asarray(precision, np.float64), np.asarray(recall, np.float64)
    return np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)


def _ratio(num, den, empty: float = 1.0):
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.where(den > 0, num / np.maximum(den, 1e-12), empty)


def tolerant_counts(prob: np.ndarray, truth: np.ndarray, thresholds=TOL_THRESHOLDS,
                    gt_skel: np.ndarray | None = None) -> np.ndarray:
    """(len(thresholds), 4) array of [matched_pred, n_pred, matched_truth, n_truth] on skeletons. `gt_skel`: the
    truth's skeleton, when the caller has it already."""
    from skimage.morphology import skeletonize

    h, w = truth.shape
    max_dist = MAX_DIST_FRACTION * float(np.hypot(h, w))
    gt_skel = skeletonize(truth > 0) if gt_skel is None else gt_skel
    n_truth = int(gt_skel.sum())
    dist_to_gt = cv2.distanceTransform((~gt_skel).astype(np.uint8), cv2.DIST_L2, 5) if n_truth else None
    out = np.zeros((len(thresholds), 4), np.int64)
    for k, t in enumerate(thresholds):
        pred = prob >= t
        pred_skel = skeletonize(pred) if pred.any() else pred
        n_pred = int(pred_skel.sum())
        matched_pred = int((dist_to_gt[pred_skel] <= max_dist).sum()) if (n_pred and n_truth) else 0
        if n_pred and n_truth:
            dist_to_pred = cv2.distanceTransform((~pred_skel).astype(np.uint8), cv2.DIST_L2, 5)
            matched_truth = int((dist_to_pred[gt_skel] <= max_dist).sum())
        else:
            matched_truth = 0
        out[k] = (matched_pred, n_pred, matched_truth, n_truth)
    return out


class SegmentationMetrics:
    """Accumulates per-image statistics; `compute()` returns a flat dict of named metrics."""

    def __init__(self, threshold: float = 0.5, tolerant: bool = False) -> None:
        self.threshold = threshold
        self.tolerant = tolerant
        self.reset()

    def reset(self) -> None:
        self.pos_hist: list[np.ndarray] = []  # per image: crack pixels per probability bin
        self.neg_hist: list[np.ndarray] = []
        self.tol: list[np.ndarray] = []
        self.widths: list[np.ndarray] = []

    @torch.no_grad()
    def update(self, prob: torch.Tensor, truth: torch.Tensor) -> None:
        """prob: crack probability (N,H,W) or (H,W); truth: {0,1} mask of the same shape."""
        if prob.dim() == 2:
            prob, truth = prob[None], truth[None]
        bins = (prob.float().clamp(0, 1) * BINS).long().clamp_(max=BINS - 1)
        for b, t, p in zip(bins, truth.bool(), prob, strict=True):
            self.pos_hist.append(torch.bincount(b[t], minlength=BINS).cpu().numpy())
            self.neg_hist.append(torch.bincount(b[~t], minlength=BINS).cpu().numpy())
            if self.tolerant:
                from skimage.morphology import skeletonize

                prob_np, truth_np = p.float().cpu().numpy(), t.cpu().numpy()
                skel = skeletonize(truth_np > 0)  # once per image, for both the tolerant and the width counts
                self.tol.append(tolerant_counts(prob_np, truth_np, gt_skel=skel))
                self.widths.append(width_counts(prob_np >= self.threshold, truth_np, skel))

    def _counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """TP, FP, FN, TN per image and threshold index: arrays (images, BINS)."""
        pos = np.stack(self.pos_hist).astype(np.int64)
        neg = np.stack(self.neg_hist).astype(np.int64)
        tp = np.cumsum(pos[:, ::-1], axis=1)[:, ::-1]  # tp[:, k] = pixels with bin >= k
        fp = np.cumsum(neg[:, ::-1], axis=1)[:, ::-1]
        fn = pos.sum(1, keepdims=True) - tp
        tn = neg.sum(1, keepdims=True) - fp
        return tp, fp, fn, tn

    @property
    def threshold_index(self) -> int:
        """Index k of the histogram threshold k/BINS that stands for `threshold`."""
        return min(BINS - 1, max(0, round(self.threshold * BINS)))

    def pr_curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pooled (thresholds, precision, recall) over the BINS thresholds k/BINS."""
        tp, fp, fn, _ = self._counts()
        TP, FP, FN = tp.sum(0), fp.sum(0), fn.sum(0)
        return np.arange(BINS) / BINS, _ratio(TP, TP + FP, empty=0.0), _ratio(TP, TP + FN, empty=0.0)

    def compute(self) -> dict[str, float]:
        if not self.pos_hist:
            return {}
        tp, fp, fn, tn = self._counts()
        k = self.threshold_index
        TP, FP, FN, TN = tp[:, k].sum(), fp[:, k].sum(), fn[:, k].sum(), tn[:, k].sum()
        iou_crack = _ratio(TP, TP + FP + FN)
        iou_bg = _ratio(TN, TN + FN + FP)
        f1_img = _f1(tp[:, k], fp[:, k], fn[:, k])
        iou_img = _ratio(tp[:, k], tp[:, k] + fp[:, k] + fn[:, k])
        pooled_f1 = _f1(tp.sum(0), fp.sum(0), fn.sum(0))
        best = int(np.argmax(pooled_f1))
        out = {
            "precision": float(_ratio(TP, TP + FP, empty=0.0)),
            "recall": float(_ratio(TP, TP + FN, empty=0.0)),
            "f1": float(_f1(TP, FP, FN)),
            "iou": float(iou_crack),
            "f1_mean_img": float(f1_img.mean()),
            "iou_mean_img": float(iou_img.mean()),
            "miou_2class": float((iou_crack + iou_bg) / 2),
            "ods_f1": float(pooled_f1[best]),
            "ods_threshold": best / BINS,
            "ois_f1": float(_f1(tp, fp, fn).max(axis=1).mean()),
            "images": len(self.pos_hist),
        }
        if self.tolerant and self.tol:
            out.update(self._tolerant())
        if self.widths:
            found, total = np.stack(self.widths).sum(0).T
            out["recall_by_width"] = {name: (round(float(f / n), 4) if n else None)
                                      for (_, _, name), f, n in zip(WIDTH_BINS, found, total, strict=True)}
            out["pixels_by_width"] = {name: int(n) for (_, _, name), n in zip(WIDTH_BINS, total, strict=True)}
        return out

    def _tolerant(self) -> dict[str, float]:
        tol = np.stack(self.tol).astype(np.float64)  # (images, thresholds, 4)
        prec = _ratio(tol[..., 0], tol[..., 1], empty=1.0)
        rec = _ratio(tol[..., 2], tol[..., 3], empty=1.0)
        per_img_f1 = _f1_from_pr(prec, rec)
        s = tol.sum(0)
        p_set = _ratio(s[:, 0], s[:, 1], empty=0.0)
        r_set = _ratio(s[:, 2], s[:, 3], empty=0.0)
        set_f1 = _f1_from_pr(p_set, r_set)
        best = int(np.argmax(set_f1))
        k = int(np.argmin([abs(t - self.threshold) for t in TOL_THRESHOLDS]))
        return {
            "precision_tol": float(p_set[k]),
            "recall_tol": float(r_set[k]),
            "f1_tol": float(set_f1[k]),
            "ods_f1_tol": float(set_f1[best]),
            "ods_threshold_tol": TOL_THRESHOLDS[best],
            "ois_f1_tol": float(per_img_f1.max(axis=1).mean()),
        }


def plot_pr_curve(metrics: SegmentationMetrics, out, title: str = "") -> None:
    """Precision-recall curve of the crack class with the ODS point and the fixed threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thresholds, precision, recall = metrics.pr_curve()
    f1 = _f1_from_pr(precision, recall)
    best = int(np.argmax(f1))
    k = metrics.threshold_index
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(recall[1:], precision[1:], label="crack class (pooled)")
    ax.scatter([recall[best]], [precision[best]], color="red", zorder=3,
               label=f"ODS F1 {f1[best]:.3f} @ {thresholds[best]:.2f}")
    ax.scatter([recall[k]], [precision[k]], color="black", marker="x", zorder=3,
               label=f"F1 {f1[k]:.3f} @ {metrics.threshold:.2f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
