"""COCO mAP50 that a paired bootstrap can resample: detections matched to true boxes once per image, the AP of any
multiset of images recomputed from those matches.

COCO matches each image's detections to its true boxes independently of every other image (per class, by falling
score, each detection to the unmatched true box it overlaps most, IoU >= 0.5, at most 100 detections), so a
resample of images only changes which matched detections are pooled and how often: the global score order is
fixed, and a resample's precision/recall curve is a weighted cumulative sum over it. AP is COCO's: precision made
monotone, read at the 101 recall points, averaged; mAP50 averages the classes that have true boxes.
"""

from __future__ import annotations

import numpy as np

IOU = 0.5
MAX_DETS = 100
RECALLS = np.linspace(0.0, 1.0, 101)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes a (n, 4) against b (m, 4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match_image(boxes, scores, labels, true_boxes, true_labels, classes: int) -> dict:
    """One image: per class, its detections' scores and true-positive flags (COCO's greedy match at IoU 0.5) and
    its number of true boxes."""
    boxes, scores, labels = (np.asarray(x) for x in (boxes, scores, labels))
    true_boxes, true_labels = np.asarray(true_boxes, np.float64).reshape(-1, 4), np.asarray(true_labels)
    out = {}
    for c in range(classes):
        d = np.flatnonzero(labels == c)
        d = d[np.argsort(-scores[d], kind="mergesort")][:MAX_DETS]
        g = true_boxes[true_labels == c]
        tp = np.zeros(len(d), bool)
        if len(d) and len(g):
            iou = _iou(np.asarray(boxes, np.float64).reshape(-1, 4)[d], g)
            taken = np.zeros(len(g), bool)
            for i in range(len(d)):
                cand = np.where(taken, -1.0, iou[i])
                j = int(np.argmax(cand))
                if cand[j] >= IOU:
                    taken[j], tp[i] = True, True
        # COCO ignores an unmatched detection whose area falls outside the "all" range (a flipped box)
        if len(d):
            b = np.asarray(boxes, np.float64).reshape(-1, 4)[d]
            keep = tp | ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) >= 0)
            d, tp = d[keep], tp[keep]
        out[c] = (scores[d].astype(np.float64), tp, len(g))
    return out


class MatchedSet:
    """The matches of N images, pooled per class in one global score order, ready for weighted resamples."""

    def __init__(self, images: list[dict], classes: int) -> None:
        self.n = len(images)
        self.classes = []
        for c in range(classes):
            scores = np.concatenate([m[c][0] for m in images]) if images else np.zeros(0)
            tp = np.concatenate([m[c][1] for m in images]) if images else np.zeros(0, bool)
            owner = np.concatenate([np.full(len(m[c][0]), i) for i, m in enumerate(images)]) if images else scores
            order = np.argsort(-scores, kind="mergesort")
            truth = np.asarray([m[c][2] for m in images], np.float64)
            self.classes.append((tp[order].astype(np.float64), owner[order].astype(np.int64), truth))

    def map50(self, counts: np.ndarray) -> np.ndarray:
        """mAP50 of the image multisets whose per-image multiplicities are the rows of `counts` (r, N)."""
        counts = np.atleast_2d(counts).astype(np.float64)
        aps, valid = [], []
        for tp, owner, truth in self.classes:
            n_true = counts @ truth
            w = counts[:, owner]  # (r, D): how often each detection is drawn
            tps, fps = np.cumsum(w * tp, axis=1), np.cumsum(w * (1 - tp), axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                recall = tps / n_true[:, None]
                precision = np.where(tps + fps > 0, tps / (tps + fps), 0.0)
            precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
            ap = np.zeros(len(counts))
            for r in range(len(counts)):
                if n_true[r] <= 0 or not tp.size:
                    continue
                idx = np.searchsorted(recall[r], RECALLS, side="left")
                ok = idx < tp.size
                ap[r] = np.where(ok, precision[r][np.minimum(idx, tp.size - 1)], 0.0).sum() / len(RECALLS)
            aps.append(ap)
            valid.append(n_true > 0)
        aps, valid = np.asarray(aps), np.asarray(valid)
        return np.where(valid.any(0), (aps * valid).sum(0) / np.maximum(valid.sum(0), 1), 0.0)


class ImageRows(np.ndarray):
    """Image indices that carry their MatchedSet through numpy indexing (`rows[idx]` in a paired bootstrap)."""

    matched: MatchedSet | None = None

    def __array_finalize__(self, obj) -> None:  # noqa: ANN001
        self.matched = getattr(obj, "matched", None)


def image_rows(images: list[dict], classes: int) -> ImageRows:
    rows = np.arange(len(images)).view(ImageRows)
    rows.matched = MatchedSet(images, classes)
    return rows


def rows_map50(rows: ImageRows, chunk: int = 200) -> np.ndarray | float:
    """mAP50 of a set of image indices (N,), or of each row of resampled indices (r, N)."""
    matched = rows.matched
    flat = np.asarray(rows)
    single = flat.ndim == 1
    flat = np.atleast_2d(flat)
    out = []
    for start in range(0, len(flat), chunk):
        part = flat[start:start + chunk]
        counts = np.zeros((len(part), matched.n))
        np.add.at(counts, (np.repeat(np.arange(len(part)), part.shape[1]), part.ravel()), 1.0)
        out.append(matched.map50(counts))
    result = np.concatenate(out)
    return float(result[0]) if single else result
