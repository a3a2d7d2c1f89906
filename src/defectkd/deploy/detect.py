"""Detection on the deploy side (no torch): ONNX Runtime detector, the prediction loop and box drawings.

An exported detector takes the resized, padded RGB float [0, 1] image and returns the raw head outputs
`cls_logits` (N, A, classes) and `bbox_regression` (N, A, 4); its metadata carries `task=detect`,
`class_names` (JSON), `threshold` (the score threshold of `predict`) and `post` (JSON: resize sizes,
anchors, NMS settings). Pre- and post-processing are detect_post's numpy twins of torchvision's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from defectkd.deploy.detect_post import postprocess, preprocess
from defectkd.deploy.predict import Frames, Outputs, RunningFPS, Sink, emit, image_frames, video_name, where

_PALETTE = ((230, 60, 60), (60, 120, 255), (255, 170, 0), (190, 70, 230), (0, 190, 190), (240, 90, 170),
            (150, 200, 40), (120, 120, 255))
_TRUTH = (40, 220, 40)


class Detector(Protocol):
    class_names: list[str]
    threshold: float

    def detect(self, rgb: np.ndarray, threshold: float | None = None
               ) -> tuple[dict[str, np.ndarray], dict[str, float]]: ...


class OnnxDetector:
    """`detect(rgb, threshold) -> ({"boxes" (n, 4) xyxy px, "scores", "labels"}, times)`; the score threshold is
    applied before NMS, as torchvision does (default: the exported `threshold`)."""

    def __init__(self, path: str | Path, threads: int | None = None, providers: list[str] | None = None,
                 backend=None) -> None:
        """`backend`: one already open on `path` (deploy.backends); else opened from the file name."""
        from defectkd.deploy.backends import open_backend

        self.path = Path(path)
        self.backend = backend or open_backend(self.path, threads, providers)
        self.metadata = dict(self.backend.metadata)
        self.class_names = json.loads(self.metadata.get("class_names", "[]"))
        self.threshold = float(self.metadata.get("threshold", 0.25))
        self.post = json.loads(self.metadata["post"])
        self.model_name = self.metadata.get("model", self.path.stem)

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        return preprocess(rgb, self.post)[0]

    def raw(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cls_logits, bbox_regression = self.backend.run(x)[:2]
        return cls_logits, bbox_regression

    def detect(self, rgb: np.ndarray, threshold: float | None = None
               ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        t0 = time.perf_counter()
        x, resized = preprocess(rgb, self.post)
        t1 = time.perf_counter()
        cls_logits, bbox_regression = self.raw(x)
        t2 = time.perf_counter()
        dets = postprocess(cls_logits[0], bbox_regression[0], x.shape[2:], resized, rgb.shape[:2], self.post,
                           score_thresh=self.threshold if threshold is None else threshold)
        t3 = time.perf_counter()
        return dets, {"preprocess_ms": (t1 - t0) * 1e3, "inference_ms": (t2 - t1) * 1e3,
                      "postprocess_ms": (t3 - t2) * 1e3}


def class_name(names: list[str], k: int) -> str:
    return names[k] if 0 <= k < len(names) else str(k)


def draw_detections(rgb: np.ndarray, dets: dict[str, np.ndarray], names: list[str],
                    truth: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """RGB image with true boxes (green, thin) and predicted boxes (a colour per class, 'class score')."""
    out = np.ascontiguousarray(rgb.copy())
    scale = max(rgb.shape[:2]) / 400
    font, thick = max(0.3, 0.9 * scale), max(1, round(2 * scale))
    if truth is not None:
        for box in np.asarray(truth["boxes"]).reshape(-1, 4):
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            cv2.rectangle(out, (x1, y1), (x2, y2), _TRUTH, max(1, thick - 1))
    for box, label, score in zip(np.asarray(dets["boxes"]).reshape(-1, 4), dets["labels"], dets["scores"],
                                 strict=True):
        colour = _PALETTE[int(label) % len(_PALETTE)]
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
        text = f"{class_name(names, int(label))} {float(score):.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        ty = max(th + base, y1)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), colour, -1)
        cv2.putText(out, text, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def detection_result(dets: dict[str, np.ndarray], names: list[str]) -> dict:
    """JSON-ready boxes (xyxy px, 2 decimals), class names, class indices and scores, best first."""
    labels = [int(k) for k in dets["labels"]]
    return {"count": len(labels), "boxes": [[round(float(v), 2) for v in b] for b in np.asarray(dets["boxes"])],
            "labels": [class_name(names, k) for k in labels], "label_indices": labels,
            "scores": [round(float(s), 5) for s in dets["scores"]]}


def detect_frames(detector: Detector, frames: Frames, save_dir: Path | None = None, threshold: float | None = None,
                  on_result: Callable[[dict], None] | None = None, sink: Sink | None = None,
                  video_fps: float | None = None) -> Iterator[dict]:
    """Yield one result per frame ((frame_id, rgb, info), e.g. sources.frames(...)): boxes, labels, scores,
    per-stage times, running FPS; with `save_dir`, the boxes drawn to overlays/<stem>.jpg (images) or one video
    (a video, camera or stream) and predictions.jsonl; with `sink`, send each result (and frame)."""
    thr = detector.threshold if threshold is None else threshold
    out = Outputs(save_dir, video_fps, masks=False) if save_dir is not None else None
    fps = RunningFPS()
    try:
        for frame_id, rgb, info in frames:
            dets, times = detector.detect(rgb, thr)
            result = {**where(frame_id, info, rgb), "threshold": thr, **detection_result(dets, detector.class_names)}
            times = {"read_ms": info.get("read_ms", 0.0), **times}
            if out is not None:
                t1 = time.perf_counter()
                drawn = draw_detections(rgb, dets, detector.class_names)
                if "image" in info:
                    result.update(out.image(Path(info["image"]).stem, None, drawn))
                else:
                    out.video_frame(video_name(info), drawn)
                times["draw_ms"] = (time.perf_counter() - t1) * 1e3
            yield emit(result, times, out, fps, on_result, sink, None, rgb, "detect")
    finally:
        if out is not None:
            out.close()


def detect_images(detector: Detector, files: list[Path], save_dir: Path | None = None, threshold: float | None = None,
                  on_result: Callable[[dict], None] | None = None, sink: Sink | None = None) -> Iterator[dict]:
    """Yield one result per image (boxes, labels, scores, per-stage times); with `save_dir`, also the drawn boxes
    (overlays/<stem>.jpg) and save_dir/predictions.jsonl."""
    return detect_frames(detector, image_frames(files), save_dir, threshold, on_result, sink)
