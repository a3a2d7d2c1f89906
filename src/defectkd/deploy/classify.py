"""Classification on the deploy side (no torch): ONNX Runtime classifier and the prediction loop.

A classifier sees every image resized to a square `imgsz` x `imgsz` (INTER_AREA), the same resize
the training code uses for validation and the PyTorch runtime uses for `predict`, so the three agree.
An exported classifier takes RGB float [0, 1] NCHW and returns logits (N, classes); its metadata
carries `task=classify`, `class_names` (JSON list) and `imgsz`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from defectkd.deploy.predict import Frames, Outputs, RunningFPS, Sink, emit, image_frames, video_name, where
from defectkd.deploy.visualize import label


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> (size, size, 3); INTER_AREA when shrinking, INTER_LINEAR when enlarging."""
    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return rgb
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interp)


def softmax_np(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top_class(probs: np.ndarray, names: list[str]) -> dict:
    """{"class", "class_index", "score", "probs": {name: p}} from one (C,) probability vector."""
    k = int(probs.argmax())
    return {"class": names[k] if k < len(names) else str(k), "class_index": k, "score": round(float(probs[k]), 6),
            "probs": {(names[i] if i < len(names) else str(i)): round(float(p), 6) for i, p in enumerate(probs)}}


class Classifier(Protocol):
    class_names: list[str]

    def classify(self, rgb: np.ndarray) -> tuple[np.ndarray, dict[str, float]]: ...


class OnnxClassifier:
    """`classify(rgb) -> (class probabilities (C,), {"preprocess_ms", "inference_ms", "postprocess_ms"})`."""

    def __init__(self, path: str | Path, threads: int | None = None, providers: list[str] | None = None,
                 backend=None) -> None:
        """`backend`: one already open on `path` (deploy.backends); else opened from the file name."""
        from defectkd.deploy.backends import open_backend

        self.path = Path(path)
        self.backend = backend or open_backend(self.path, threads, providers)
        meta = dict(self.backend.metadata)
        self.metadata = meta
        h = self.backend.input_shape[2]
        self.imgsz = int(h) if h is not None else int(meta.get("train_imgsz") or meta.get("imgsz", 224))
        self.class_names = json.loads(meta.get("class_names", "[]"))
        self.model_name = meta.get("model", self.path.stem)

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        img = resize_square(rgb, self.imgsz)
        return np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)

    def classify(self, rgb: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        t0 = time.perf_counter()
        x = self.prepare(rgb)
        t1 = time.perf_counter()
        logits = self.backend.run(x)[0][0]
        t2 = time.perf_counter()
        probs = softmax_np(logits.astype(np.float32))
        t3 = time.perf_counter()
        return probs, {"preprocess_ms": (t1 - t0) * 1e3, "inference_ms": (t2 - t1) * 1e3,
                       "postprocess_ms": (t3 - t2) * 1e3}


def classify_frames(classifier: Classifier, frames: Frames, save_dir: Path | None = None,
                    on_result: Callable[[dict], None] | None = None, sink: Sink | None = None,
                    video_fps: float | None = None) -> Iterator[dict]:
    """Yield one result per frame ((frame_id, rgb, info), e.g. sources.frames(...)): class name, its
    probability, every class's probability, times, running FPS; with `save_dir`, predictions.jsonl (and a
    labelled video for a video, camera or stream); with `sink`, send each result (and frame)."""
    out = Outputs(save_dir, video_fps, masks=False) if save_dir is not None else None
    fps = RunningFPS()
    try:
        for frame_id, rgb, info in frames:
            probs, times = classifier.classify(rgb)
            result = {**where(frame_id, info, rgb), **top_class(probs, classifier.class_names)}
            times = {"read_ms": info.get("read_ms", 0.0), **times}
            if out is not None and "image" not in info:
                out.video_frame(video_name(info), label(rgb, f"{result['class']} {result['score']:.2f}"))
            yield emit(result, times, out, fps, on_result, sink, None, rgb, "classify")
    finally:
        if out is not None:
            out.close()


def classify_images(classifier: Classifier, files: list[Path], save_dir: Path | None = None,
                    on_result: Callable[[dict], None] | None = None, sink: Sink | None = None) -> Iterator[dict]:
    """Yield one result per image: class name, its probability, every class's probability, times;
    with `save_dir`, also append each to save_dir/predictions.jsonl."""
    return classify_frames(classifier, image_frames(files), save_dir, on_result, sink)
