"""Detector -> ONNX: the network only (normalise, backbone, FPN, heads), post-processing in numpy on the deploy side.

The choice: NMS is NOT in the graph. torchvision's RetinaNet post-processing (per-level score threshold and top-k,
anchor decoding, class-wise NMS) exports only through data-dependent ops that differ between opsets and runtimes;
its raw head outputs export exactly. So the graph takes `images` (RGB float [0, 1], N x 3 x H x W, H and W
dynamic: already resized by the model's rule and padded to a multiple of 32) and returns `cls_logits` (N, A,
classes) and `bbox_regression` (N, A, 4) over the A anchors of P3-P7, and defectkd.deploy.detect_post (numpy, no
torch) does the rest: torchvision's resize (PyTorch's bilinear formula), padding with the mean colour, anchors,
decoding, thresholds, NMS, boxes back to the image's pixels. The metadata carries `task=detect`, `class_names`,
`threshold` (predict's score threshold) and `post` (JSON: sizes, anchors, NMS settings).

Parity is checked on an image (`--image`, else the run's first training image, else a synthetic one): raw outputs
ONNX Runtime vs PyTorch on the same input (< 1e-4), then boxes end to end, the deploy path (numpy + ONNX Runtime
from the raw image) vs torchvision's own forward: same boxes (< 1e-3 px) with the same labels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from defectkd.core.errors import ConfigError

RAW_TOLERANCE = 1e-4
BOX_TOLERANCE = 1e-3


def match_detections(ref: dict, got: dict, threshold: float, margin: float = 1e-4) -> tuple[float, int]:
    """(largest box-coordinate difference over matched boxes, number of unmatched boxes): each reference box is
    matched to the closest unused box of the same label; boxes scoring within `margin` of the threshold may be
    missing on one side (their scores differ by float rounding) and are not counted."""
    rb, rl, rs = (np.asarray(ref[k]) for k in ("boxes", "labels", "scores"))
    gb, gl, gs = (np.asarray(got[k]) for k in ("boxes", "labels", "scores"))
    used: set[int] = set()
    worst, unmatched = 0.0, 0
    for box, label, score in zip(rb.reshape(-1, 4), rl, rs, strict=True):
        cands = [j for j in range(len(gl)) if j not in used and gl[j] == label]
        diffs = [float(np.abs(gb[j] - box).max()) for j in cands]
        if not cands or min(diffs) > 0.5:  # no counterpart (half a pixel: not the same box)
            unmatched += bool(score >= threshold + margin)
            continue
        k = int(np.argmin(diffs))
        used.add(cands[k])
        worst = max(worst, diffs[k])
    unmatched += sum(1 for j in range(len(gl)) if j not in used and gs[j] >= threshold + margin)
    return worst, unmatched


def export_detector(model: torch.nn.Module, hp: dict, out: Path, parity: tuple[np.ndarray, str],
                    imgsz: int | None = None, opset: int = 17) -> dict:
    """Export a RetinaNetDetector (see the module docstring) and check it on `parity` (RGB uint8, its name);
    returns the summary `defectkd export` prints."""
    import onnx

    from defectkd.core.errors import ExportError
    from defectkd.deploy.detect import OnnxDetector
    from defectkd.models.detect import ExportHead
    from defectkd.models.onnx import save_checked, write_onnx
    from defectkd.tasks.detect.evaluate import model_class_names

    if imgsz is not None:
        raise ConfigError("export: a detector takes images of any size and resizes them itself (longer side = the "
                          "run's imgsz); drop --imgsz")
    config = hp.get("config", {})
    model = model.float().eval()
    post = model.post
    side = int(math.ceil(post["max_size"] / 32) * 32)
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "cls_logits": {0: "batch", 1: "anchors"},
            "bbox_regression": {0: "batch", 1: "anchors"}}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_onnx(ExportHead(model), torch.zeros(1, 3, side, side), out, opset, ("cls_logits", "bbox_regression"), axes)
    proto = onnx.load(str(out))
    threshold = float(config.get("threshold", 0.25))
    meta = {"model": hp["model_name"], "task": "detect", "classes": model.classes,
            "class_names": json.dumps(model_class_names(hp)), "threshold": threshold, "imgsz": post["max_size"],
            "input": "RGB float [0,1] NCHW, resized (torchvision's rule) and padded to a multiple of 32 with the mean",
            "output": "cls_logits (N, anchors, classes), bbox_regression (N, anchors, 4); P3-P7, y, x, anchor order",
            "post": json.dumps(post), "producer": "defectkd"}
    save_checked(proto, meta, out)

    rgb, source = parity
    detector = OnnxDetector(out)
    from defectkd.deploy.detect_post import preprocess

    x, _ = preprocess(rgb, post)
    with torch.no_grad():
        reference = [t.numpy() for t in model.head_outputs(torch.from_numpy(x))]
        got = detector.raw(x)
        raw_diff = max(float(np.abs(a - b).max()) for a, b in zip(reference, got, strict=True))
        previous = model.net.score_thresh
        model.net.score_thresh = threshold
        torch_dets = {k: v.numpy() for k, v in model([torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float() / 255])[0]
                      .items()}
        model.net.score_thresh = previous
    onnx_dets, _ = detector.detect(rgb, threshold)
    box_diff, unmatched = match_detections(torch_dets, onnx_dets, threshold)
    summary = {"file": str(out), "task": "detect", "model": hp["model_name"], "imgsz": post["max_size"],
               "dynamic": True, "opset": opset, "size_mb": round(out.stat().st_size / 2**20, 2), "parity_image": source,
               "max_abs_diff": raw_diff, "tolerance": RAW_TOLERANCE, "threshold": threshold,
               "boxes": int(len(torch_dets["boxes"])), "box_max_abs_diff": box_diff, "box_tolerance": BOX_TOLERANCE,
               "unmatched_boxes": unmatched}
    if not raw_diff < RAW_TOLERANCE:
        raise ExportError(f"{out}: ONNX Runtime head outputs differ from PyTorch by {raw_diff:.2e} "
                          f"(limit {RAW_TOLERANCE:g}) on {source}")
    if unmatched or not box_diff < BOX_TOLERANCE:
        raise ExportError(f"{out}: ONNX Runtime + numpy post-processing boxes differ from PyTorch's on {source} "
                          f"({unmatched} unmatched, largest difference {box_diff:.2e} px, limit {BOX_TOLERANCE:g})")
    return summary
