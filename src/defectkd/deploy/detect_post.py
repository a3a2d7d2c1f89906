"""torchvision RetinaNet's transform and post-processing in numpy (no torch), for exported detectors.

An exported detector (defectkd.tasks.detect.export) holds normalisation, backbone, FPN and heads only;
the steps around it are here, written to give torchvision's numbers:
- `preprocess`: the resize of GeneralizedRCNNTransform (scale = min(min_size / shorter side, max_size /
  longer side), output size floor(side x scale), bilinear, align_corners=False, no antialias: PyTorch's
  formula, not OpenCV's) and the padding to a multiple of `size_divisible` (32). torchvision pads with 0
  after normalising, so the padding here is the mean colour: 0 once the graph normalises;
- `anchors`: AnchorGenerator's anchors (rounded zero-centred cell anchors per aspect ratio x size, shifted by
  the level's integer stride padded_size // grid_size, ordered y, x, anchor);
- `postprocess`: per level, sigmoid scores above `score_thresh`, the best `topk_candidates`, box decoding
  (BoxCoder weights 1, 1, 1, 1, dw/dh clipped at log(1000/16)), clipping to the resized image; then
  class-wise NMS at `nms_thresh`, the best `detections_per_img`, and boxes scaled back to the input image.
Everything is float32, as in PyTorch; tests check the boxes against torchvision's to 1e-3.
"""

from __future__ import annotations

import math

import numpy as np

LEVEL_STRIDES = (8, 16, 32, 64, 128)  # P3..P7 (ResNet: every stride-2 layer maps n -> ceil(n / 2))


def resized_size(h: int, w: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(height, width) after torchvision's resize (scale factor recomputed from the floored size)."""
    scale = min(min_size / min(h, w), max_size / max(h, w))
    return int(math.floor(h * scale)), int(math.floor(w * scale))


def _axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale = np.float32(n_in / n_out)
    src = np.maximum((np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), 0)
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def resize_bilinear(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """(H, W, C) float32 -> (out_h, out_w, C): torch.nn.functional.interpolate(mode="bilinear",
    align_corners=False, antialias=False) with the scale taken from the sizes."""
    h, w = img.shape[:2]
    if (h, w) == (out_h, out_w):
        return img.astype(np.float32, copy=True)
    y0, y1, ly = _axis(h, out_h)
    x0, x1, lx = _axis(w, out_w)
    ly, lx = ly[:, None, None], lx[None, :, None]
    top = (1 - lx) * img[y0][:, x0] + lx * img[y0][:, x1]
    bottom = (1 - lx) * img[y1][:, x0] + lx * img[y1][:, x1]
    return ((1 - ly) * top + ly * bottom).astype(np.float32)


def preprocess(rgb: np.ndarray, post: dict) -> tuple[np.ndarray, tuple[int, int]]:
    """RGB uint8 (H, W, 3) -> ((1, 3, Hp, Wp) float32 in [0, 1], padded with the mean colour; resized (h, w))."""
    h, w = rgb.shape[:2]
    rh, rw = resized_size(h, w, post["min_size"], post["max_size"])
    img = resize_bilinear(rgb.astype(np.float32) / np.float32(255), rh, rw)
    d = int(post.get("size_divisible", 32))
    ph, pw = int(math.ceil(rh / d) * d), int(math.ceil(rw / d) * d)
    out = np.empty((ph, pw, 3), np.float32)
    out[:] = np.asarray(post["image_mean"], np.float32)
    out[:rh, :rw] = img
    return np.ascontiguousarray(out.transpose(2, 0, 1)[None]), (rh, rw)


def grid_sizes(ph: int, pw: int) -> list[tuple[int, int]]:
    """Feature-map sizes of P3..P7 for a padded input (every stride-2 conv: n -> ceil(n / 2))."""
    sizes, h, w = [], ph, pw
    for level in range(1, 8):
        h, w = -(-h // 2), -(-w // 2)
        if level >= 3:
            sizes.append((h, w))
    return sizes


def cell_anchors(sizes: list[int], aspect_ratios: list[float]) -> np.ndarray:
    scales = np.asarray(sizes, np.float32)
    ratios = np.asarray(aspect_ratios, np.float32)
    h_ratios = np.sqrt(ratios)
    w_ratios = np.float32(1) / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2)).astype(np.float32)


def anchors(padded: tuple[int, int], post: dict) -> list[np.ndarray]:
    """Anchors of every level (A_l, 4) xyxy for a padded input size, as torchvision's AnchorGenerator."""
    out = []
    for (gh, gw), sizes in zip(grid_sizes(*padded), post["anchor_sizes"], strict=True):
        sh, sw = padded[0] // gh, padded[1] // gw
        ys, xs = np.meshgrid(np.arange(gh, dtype=np.int32) * sh, np.arange(gw, dtype=np.int32) * sw, indexing="ij")
        xs, ys = xs.reshape(-1), ys.reshape(-1)
        shifts = np.stack([xs, ys, xs, ys], axis=1).astype(np.float32)
        base = cell_anchors(sizes, post["aspect_ratios"])
        out.append((shifts[:, None, :] + base[None, :, :]).reshape(-1, 4))
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (np.float32(1) / (np.float32(1) + np.exp(-x.astype(np.float32)))).astype(np.float32)


def decode(rel: np.ndarray, boxes: np.ndarray, clip: float) -> np.ndarray:
    """BoxCoder(weights=(1, 1, 1, 1)).decode_single in float32."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + np.float32(0.5) * widths
    ctr_y = boxes[:, 1] + np.float32(0.5) * heights
    dx, dy = rel[:, 0], rel[:, 1]
    dw = np.minimum(rel[:, 2], np.float32(clip))
    dh = np.minimum(rel[:, 3], np.float32(clip))
    pcx, pcy = dx * widths + ctr_x, dy * heights + ctr_y
    half_w, half_h = np.float32(0.5) * (np.exp(dw) * widths), np.float32(0.5) * (np.exp(dh) * heights)
    return np.stack([pcx - half_w, pcy - half_h, pcx + half_w, pcy + half_h], axis=1).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS (torchvision.ops.nms): indices kept, highest score first; a box goes when IoU > iou."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    suppressed = np.zeros(len(boxes), bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2) - np.maximum(x1[i], x1))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2) - np.maximum(y1[i], y1))
        inter = w * h
        suppressed |= inter / (areas[i] + areas - inter) > iou
    return np.asarray(keep, np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float) -> np.ndarray:
    """NMS within each class; kept indices sorted by score, highest first."""
    keep = [idx[nms(boxes[idx], scores[idx], iou)] for idx in (np.flatnonzero(labels == c) for c in np.unique(labels))]
    if not keep:
        return np.zeros(0, np.int64)
    keep = np.concatenate(keep)
    return keep[np.argsort(-scores[keep], kind="stable")]


def postprocess(cls_logits: np.ndarray, bbox_regression: np.ndarray, padded: tuple[int, int],
                resized: tuple[int, int], original: tuple[int, int], post: dict,
                score_thresh: float | None = None) -> dict[str, np.ndarray]:
    """One image's raw outputs (A, classes) and (A, 4) -> {"boxes" (n, 4) xyxy in the original image's pixels,
    "scores" (n,), "labels" (n,) 0-based}, as RetinaNet.postprocess_detections + transform.postprocess."""
    thresh = post["score_thresh"] if score_thresh is None else score_thresh
    level_anchors = anchors(padded, post)
    counts = [len(a) for a in level_anchors]
    if sum(counts) != len(cls_logits):
        raise ValueError(f"the model returned {len(cls_logits)} anchors for a {padded[0]}x{padded[1]} input, "
                         f"expected {sum(counts)} (P3-P7)")
    k = cls_logits.shape[1]
    all_boxes, all_scores, all_labels = [], [], []
    start = 0
    for level, n in zip(level_anchors, counts, strict=True):
        scores = sigmoid(cls_logits[start:start + n]).reshape(-1)
        reg = bbox_regression[start:start + n]
        start += n
        idx = np.flatnonzero(scores > np.float32(thresh))
        top = np.argsort(-scores[idx], kind="stable")[:min(len(idx), int(post["topk_candidates"]))]
        idx = idx[top]
        anchor_idx, labels = idx // k, idx % k
        boxes = decode(reg[anchor_idx].astype(np.float32), level[anchor_idx], post["bbox_xform_clip"])
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, resized[1])
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, resized[0])
        all_boxes.append(boxes)
        all_scores.append(scores[idx])
        all_labels.append(labels)
    boxes, scores, labels = np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_labels)
    keep = batched_nms(boxes, scores, labels, post["nms_thresh"])[: int(post["detections_per_img"])]
    ratio_h = np.float32(original[0]) / np.float32(resized[0])
    ratio_w = np.float32(original[1]) / np.float32(resized[1])
    boxes = boxes[keep] * np.array([ratio_w, ratio_h, ratio_w, ratio_h], np.float32)
    return {"boxes": boxes.astype(np.float32), "scores": scores[keep].astype(np.float32),
            "labels": labels[keep].astype(np.int64)}
